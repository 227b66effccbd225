"""Throughput of a batch re-verification job: ``verifier reverify --all --jobs P`` over N stored verdicts.

Run: ``.venv/bin/python benchmarks/bench_jobs.py [--count N] [--processes 1,2]``. Builds a ledger of N verdicts
(alternately the real Phala 1-GPU/ecdsa and NEAR 8-GPU/ed25519 fixture bundles, each evaluated once and stored
N/2 times), then runs the job command once per process count and prints a Markdown table: wall time, verdicts/s,
CPU per verdict (the command and every process it waited for: worker processes and their dcap-qvl workers), the
speed-up over one process, and the CPU per verdict of ``evaluate()`` itself measured in this process in the same
run (the engine alone, sequentially, with a memo as the services have, no ledger). A job over no verdicts is run first
and subtracted (start-up).
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fixture_bundles import NEAR_AT, PHALA_FLAT_AT, near_two_layer, phala_flat

from verifier.adapters.dcap.pool import DcapPool
from verifier.adapters.ledger import Ledger
from verifier.appraise.policy import default_policy
from verifier.core.trust import production_anchors
from verifier.engine.evaluate import Context, evaluate
from verifier.evidence.bundle import Bundle
from verifier.verify.memo import VerificationMemo

CASES: tuple[tuple[Bundle, int], ...] = ((phala_flat(), PHALA_FLAT_AT), (near_two_layer(), NEAR_AT))


async def _verdicts(rounds: int) -> tuple[list[tuple[dict[str, object], dict[str, bytes]]], float]:
    """Each fixture's verdict JSON and evidence, and the engine's CPU seconds per verdict (both fixtures alike)."""
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
            started = time.process_time()
            for _ in range(rounds):
                await evaluate(bundle, ctx)
            cpu += time.process_time() - started
    return out, cpu / (rounds * len(CASES))


def _ledger(path: Path, count: int, verdicts: list[tuple[dict[str, object], dict[str, bytes]]]) -> None:
    with Ledger.open(path) as ledger, ledger.transaction():
        for i in range(count):
            verdict, files = verdicts[i % len(verdicts)]
            ledger.save({**verdict, "id": None}, files)


def _job(db: Path, processes: int, *where: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and every process it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    select = [arg for w in where for arg in ("--where", w)] or ["--all"]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "verifier",
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
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--processes", default="1,2")
    args = parser.parse_args()
    verdicts, engine_cpu = asyncio.run(_verdicts(50))
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        _ledger(db, args.count, verdicts)
        print(
            f"Machine: {platform.processor() or platform.machine()}, nproc = {os.cpu_count()}, "
            f"CPython {platform.python_version()}; {args.count} verdicts (half Phala 1 GPU, half NEAR 8 GPUs)\n"
        )
        print("| processes | wall s | verdicts/s | CPU ms/verdict | speed-up | job CPU / engine CPU |")
        print("|---:|---:|---:|---:|---:|---:|")
        base: float | None = None
        for p in (int(x) for x in args.processes.split(",")):
            idle_wall, idle_cpu = _job(db, p, "status=indeterminate", "model=none")  # start-up: selects nothing
            wall, cpu = _job(db, p)
            wall, cpu = wall - idle_wall, cpu - idle_cpu
            base = base or wall
            per = cpu / args.count
            print(
                f"| {p} | {wall:.1f} | {args.count / wall:,.0f} | {per * 1e3:.2f} | {base / wall:.2f}× | "
                f"{per / engine_cpu:.2f} |"
            )
        print(f"\nengine alone (evaluate in one process, sequential): {engine_cpu * 1e3:.2f} ms CPU per verdict")


if __name__ == "__main__":
    main()
