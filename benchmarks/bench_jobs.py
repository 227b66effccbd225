"""Throughput of a batch re-verification job: ``verifier reverify --all --jobs P`` over N stored verdicts.

Run: ``.venv/bin/python benchmarks/bench_jobs.py [--count N] [--processes 1,2] [--rounds R] [--one-core P]``.
Builds a ledger of N verdicts (alternately the real Phala 1-GPU/ecdsa and NEAR 8-GPU/ed25519 fixture bundles, each
evaluated once and stored N/2 times), then runs the job command once per process count and prints a Markdown table:
wall time, verdicts/s, CPU per verdict (the command and every process it waited for: worker processes and their
dcap-qvl workers), the main process's own CPU per verdict and its share, the speed-up over the first process count,
and the ratios to the CPU per verdict of ``evaluate()`` itself measured in this process in the same run (the engine
alone, sequentially, with a memo as the services have, no ledger; its dcap-qvl worker's CPU included) and to the
primitive sum (below). A job over no verdicts is run first and subtracted (start-up; worker processes start only
with the first item, so their own start-up is not subtracted). Then the ``--one-core`` process count runs once more
pinned to one CPU: wall time on one core over wall time on all of them is the core scaling of one configuration.

In the same run it times the bare cryptographic primitives each verdict cannot avoid, with the libraries the product
uses, on the inputs the engine verifies (extracted untimed with the product's parsers): dcap-qvl
``verify_with_root_ca`` of each verified quote with its (already parsed) collateral, the response signature (EIP-191:
Keccak + secp256k1 recovery via coincurve; ed25519 via ``cryptography``) when the bundle carries one, each SPDM
ECDSA P-384 / SHA-384 verification with the leaf key, and each NRAS token's ES384 verification of its signing input
(no JWT decoding). The job's CPU per verdict is reported as a ratio to that sum.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import base64
import json

import dcap_qvl
from coincurve import PublicKey
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fixture_bundles import NEAR_AT, PHALA_FLAT_AT, near_two_layer, phala_flat

from verifier.adapters.dcap.pool import DcapPool
from verifier.adapters.ledger import Ledger
from verifier.appraise.policy import default_policy
from verifier.core.trust import production_anchors
from verifier.engine.evaluate import Context, evaluate, gather
from verifier.evidence.bundle import Bundle
from verifier.evidence.gpu_cert import device_chain
from verifier.evidence.spdm import SIG_LEN, parse_spdm
from verifier.verify.memo import VerificationMemo
from verifier.verify.signature import eip191_digest

CASES: tuple[tuple[Bundle, int], ...] = ((phala_flat(), PHALA_FLAT_AT), (near_two_layer(), NEAR_AT))


async def _verdicts(rounds: int) -> tuple[list[tuple[dict[str, object], dict[str, bytes]]], float]:
    """Each fixture's verdict JSON and evidence, and the engine's CPU seconds per verdict (both fixtures alike; this
    process plus its dcap-qvl worker)."""
    out = []
    policy, anchors = default_policy(), production_anchors()
    async with DcapPool(size=1) as pool:
        cpu = 0.0
        for bundle, at in CASES:
            ctx = Context(
                policy=policy,
                now=at,
                anchors=anchors,
                quotes=pool,
                dcap_version=pool.version(),
                memo=VerificationMemo(),
            )  # as the services have: validated chains and keys are remembered
            first = await evaluate(bundle, ctx)
            out.append((first.verdict.to_json(), first.bundle.files()))
            started, workers = time.process_time(), _proc_cpu(pool.pids())
            for _ in range(rounds):
                await evaluate(bundle, ctx)
            cpu += time.process_time() - started + _proc_cpu(pool.pids()) - workers
    return out, cpu / (rounds * len(CASES))


def _proc_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of running processes (the dcap-qvl workers), from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15 of stat)
    return total


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _recover(signature: bytes, message: bytes) -> PublicKey:
    """EIP-191: the Keccak digest of the prefixed message and the secp256k1 key recovery (coincurve)."""
    return PublicKey.from_signature_and_message(
        signature[:64] + bytes([signature[64] % 27]), eip191_digest(message), hasher=None
    )


def _p384(key: Any, der: bytes, message: bytes) -> None:
    key.verify(der, message, ec.ECDSA(hashes.SHA384()))


async def _primitives(rounds: int) -> tuple[float, list[str]]:
    """CPU seconds per verdict of the bare primitives (both fixtures alike), and a line per fixture saying which."""
    policy, anchors = default_policy(), production_anchors()
    calls: list[list[Callable[[], object]]] = []  # per fixture: one zero-argument call per primitive the verdict runs
    notes = []
    async with DcapPool(size=1) as pool:
        for bundle, at in CASES:
            ctx = Context(policy=policy, now=at, anchors=anchors, quotes=pool, dcap_version=pool.version())
            facts, _ = await gather(bundle, ctx)
            ops: list[Callable[[], object]] = []
            root = anchors.intel_root_ca_der
            for tdx in facts.tdx:
                assert tdx.quote.value is not None and tdx.collateral.value is not None and tdx.dcap.value is not None
                coll = dcap_qvl.QuoteCollateralV3.from_json(tdx.collateral.value.json_text)  # parsed once, as cached
                ops.append(partial(dcap_qvl.verify_with_root_ca, tdx.quote.value.raw, coll, root, at))
            sig = facts.signature.signature.value
            if sig is not None:
                raw = bytes.fromhex(sig.signature.removeprefix("0x"))
                text = sig.text.encode()
                if sig.signing_algo == "ecdsa":
                    ops.append(partial(_recover, raw, text))
                else:
                    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(sig.signing_address.removeprefix("0x")))
                    ops.append(partial(key.verify, raw, text))
            spdm = nras = 0
            assert facts.gpus.value is not None
            for n, g in enumerate(facts.gpus.value):
                for ev in g.payload.evidence:
                    report = parse_spdm(ev.evidence)
                    leaf = device_chain(ev.certificate_pem, "bench")[0].public_key()
                    half = SIG_LEN // 2
                    der = encode_dss_signature(
                        int.from_bytes(report.signature[:half], "big"), int.from_bytes(report.signature[half:], "big")
                    )
                    ops.append(partial(_p384, leaf, der, report.signed_bytes))
                    spdm += 1
                head, detached = json.loads(bundle.nras["response.json" if n == 0 else f"response-{n}.json"])
                keys = {k["kid"]: k for k in json.loads(bundle.nras["jwks.json"])["keys"]}
                for compact in (head[1], *detached.values()):
                    h, p, s = compact.split(".")
                    kid = json.loads(_b64url(h))["kid"]
                    cert = x509.load_der_x509_certificate(base64.b64decode(keys[kid]["x5c"][0]))
                    sig_raw = _b64url(s)
                    n = len(sig_raw) // 2
                    der = encode_dss_signature(int.from_bytes(sig_raw[:n], "big"), int.from_bytes(sig_raw[n:], "big"))
                    ops.append(partial(_p384, cert.public_key(), der, f"{h}.{p}".encode()))
                    nras += 1
            for op in ops:
                op()  # warm, and any failure shows before timing
            calls.append(ops)
            notes.append(
                f"{bundle.meta.model}: {len(facts.tdx)} dcap verify, "
                f"{'1 signature' if sig is not None else 'no signature in the bundle'}, {spdm} SPDM, {nras} NRAS"
            )
    started = time.process_time()
    for _ in range(rounds):
        for ops in calls:
            for op in ops:
                op()
    return (time.process_time() - started) / (rounds * len(CASES)), notes


def _ledger(path: Path, count: int, verdicts: list[tuple[dict[str, object], dict[str, bytes]]]) -> None:
    with Ledger.open(path) as ledger, ledger.transaction():
        for i in range(count):
            verdict, files = verdicts[i % len(verdicts)]
            ledger.save({**verdict, "id": None}, files)


_MAIN = (
    "import resource, runpy, sys\n"
    "try:\n"
    "    runpy.run_module('verifier', run_name='__main__')\n"
    "finally:\n"
    "    u = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    print('main-cpu', u.ru_utime + u.ru_stime, file=sys.stderr)\n"
)  # ``python -m verifier`` that also reports its own CPU (the main process alone) on its last stderr line


def _job(db: Path, processes: int, *where: str, cores: set[int] | None = None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of the command and every process it waited for, CPU seconds of the main process).
    ``cores``: run the command (and so every process it starts) on these CPUs only (``sched_setaffinity``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    select = [arg for w in where for arg in ("--where", w)] or ["--all"]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _MAIN,
            "reverify",
            *select,
            "--jobs",
            str(processes),
            "--batch",
            "64",
            "--db",
            str(db),
            "--json",
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=db.parent,  # imports come from the environment (PYTHONPATH), never from the current directory
        preexec_fn=None if cores is None else lambda: os.sched_setaffinity(0, cores),
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 3):
        raise SystemExit(f"the job failed ({done.returncode}): {done.stderr[-2000:]}")
    main_cpu = float(done.stderr.strip().splitlines()[-1].split()[-1])
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), main_cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--rounds", type=int, default=50, help="evaluations / primitive rounds per fixture")
    parser.add_argument(
        "--one-core", type=int, default=2, help="also run this process count pinned to one core (0: skip)"
    )
    args = parser.parse_args()
    verdicts, engine_cpu = asyncio.run(_verdicts(args.rounds))
    primitive_cpu, notes = asyncio.run(_primitives(args.rounds))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        _ledger(db, args.count, verdicts)
        print(
            f"Machine: {_cpu_model()}, nproc = {os.cpu_count()}, "
            f"CPython {platform.python_version()}, dcap-qvl {dcap_qvl.__version__}; "
            f"{args.count} verdicts (half Phala 1 GPU, half NEAR 8 GPUs)\n"
        )
        print(
            "| processes | wall s | verdicts/s | CPU ms/verdict | main process CPU ms/verdict (share) | speed-up "
            "| job CPU / engine CPU | job CPU / primitive sum |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        base: float | None = None
        walls: dict[int, float] = {}
        for p in (int(x) for x in args.processes.split(",")):
            # start-up: a job that selects nothing (the command, its worker processes and their dcap-qvl workers)
            idle_wall, idle_cpu, idle_main = _job(db, p, "status=indeterminate", "model=none")
            wall, cpu, main_cpu = _job(db, p)
            wall, cpu, main_cpu = wall - idle_wall, cpu - idle_cpu, main_cpu - idle_main
            base = base or wall
            per = cpu / args.count
            print(
                f"| {p} | {wall:.1f} | {args.count / wall:,.0f} | {per * 1e3:.2f} | "
                f"{main_cpu / args.count * 1e3:.2f} ({main_cpu / cpu:.0%}) | {base / wall:.2f}× | "
                f"{per / engine_cpu:.2f} | {per / primitive_cpu:.2f} |"
            )
            walls[p] = wall
        if args.one_core and args.one_core in walls:
            p, one = args.one_core, {min(os.sched_getaffinity(0))}
            idle_wall, _, _ = _job(db, p, "status=indeterminate", "model=none", cores=one)
            wall, cpu, main_cpu = _job(db, p, cores=one)
            wall -= idle_wall
            print(
                f"\nthe same {p}-process job pinned to one core (CPU {min(one)}): {wall:.1f} s, "
                f"{args.count / wall:,.0f} verdicts/s; on {len(os.sched_getaffinity(0))} cores it took "
                f"{walls[p]:.1f} s: core scaling {wall / walls[p]:.2f}×"
            )
        print(
            "\nengine alone (evaluate in one process and its dcap-qvl worker, sequential, with a memo): "
            f"{engine_cpu * 1e3:.2f} ms CPU per verdict = {engine_cpu / primitive_cpu:.2f}× the primitive sum"
        )
        print(f"primitive sum: {primitive_cpu * 1e3:.2f} ms CPU per verdict ({'; '.join(notes)})")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
