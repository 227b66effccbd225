"""The reuse window in practice: a stream of completions from one signer through the verifying proxy.

Run: ``.venv/bin/python benchmarks/bench_reuse.py [--completions N] [--concurrency C]``. The simulated gateway and
the proxy (sync mode, JSON completions) run on loopback; the stream is sent twice: under a policy with
``max_attestation_age = 0`` (a fresh nonce-bound report per verdict) and ``= 600`` (a verdict may cite the
attestation an earlier verdict of this verifier fetched and verified, within 600 s). Prints a Markdown table of
report fetches, verdict statuses and wall time per completion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from verifier.adapters.ledger import Ledger
from verifier.app.keys import KeyStore, Role
from verifier.demo import serve, simulator_settings
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig
from verifier.web.proxy import STATUS_HEADER, create_proxy_app


async def run(max_age: int, completions: int, concurrency: int, workdir: Path) -> dict[str, object]:
    policy = workdir / f"age-{max_age}.toml"
    policy.write_text(f'[policy]\nid = "reuse-{max_age}"\n[attestation]\nmax_attestation_age = {max_age}\n')
    db = workdir / f"age-{max_age}.db"
    with Ledger.open(db) as ledger:
        _, key = KeyStore(ledger).create(Role.SUBMIT, "bench")
    gateway = SimulatedGateway(SimulatorWorld(), SimulatorConfig())
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    async with serve(gateway.app()) as gw:
        settings = simulator_settings(
            db, gw, policy_path=str(policy), dcap_workers=2, upstream_per_minute=0, rate_per_minute=0
        )
        async with serve(create_proxy_app(settings, mode="sync")) as proxy, aiohttp.ClientSession() as client:
            headers = {"Authorization": "Bearer sk-bench", "X-Verifier-Key": key}

            async def one(i: int) -> None:
                body = json.dumps({"model": "sim/echo-1", "messages": [{"role": "user", "content": f"n {i}"}]})
                started = time.perf_counter()
                async with client.post(f"{proxy}/v1/chat/completions", data=body, headers=headers) as resp:
                    await resp.read()
                    statuses[resp.headers.get(STATUS_HEADER, f"http {resp.status}")] += 1
                latencies.append(time.perf_counter() - started)

            await one(0)  # the first verdict fetches (and verifies) the report the others may reuse
            queue = iter(range(1, completions))

            async def worker() -> None:
                for i in queue:
                    await one(i)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            wall = time.perf_counter() - started
    return {
        "max_age": max_age,
        "completions": completions,
        "report_fetches": len(gateway.requests_seen),
        "statuses": dict(statuses),
        "median_ms": statistics.median(latencies) * 1000,
        "per_s": (completions - 1) / wall,
    }


async def main(completions: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-reuse-") as tmp:
        rows = [await run(age, completions, concurrency, Path(tmp)) for age in (0, 600)]
    print(
        f"{completions} completions, {concurrency} concurrent clients after the first, one signer (ecdsa), "
        "phala_flat, 1 GPU\n"
    )
    print("| max_attestation_age | report fetches | verdicts | median ms / completion | completions/s |")
    print("|---:|---:|---|---:|---:|")
    for r in rows:
        verdicts = ", ".join(f"{n} {s}" for s, n in sorted(r["statuses"].items()))  # type: ignore[attr-defined]
        print(f"| {r['max_age']} | {r['report_fetches']} | {verdicts} | {r['median_ms']:.1f} | {r['per_s']:.1f} |")
    fresh, reused = rows[0]["report_fetches"], rows[1]["report_fetches"]
    print(f"\nreport fetches cut {fresh}/{reused} = {int(fresh) / max(1, int(reused)):.0f}x")  # type: ignore[call-overload]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completions", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.completions, args.concurrency))
