"""Per-verdict cost of the offline core: ``evaluate()`` on real fixture bundles, dcap-qvl in its worker.

Run: ``.venv/bin/python benchmarks/bench_verdict.py [--rounds N]``. Prints a Markdown table: wall time
per verdict (median, p95) sequentially, this process's CPU per verdict, and throughput with several
verdicts in flight on a pool of two workers. The cryptographic
floor is about 1.8 ms (1 GPU, ecdsa) and 7 ms (8 GPUs, ed25519) of CPU per verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fixture_bundles import NEAR_AT, PHALA_FLAT_AT, near_two_layer, phala_flat

from verifier.adapters.dcap.pool import DcapPool
from verifier.appraise.policy import default_policy
from verifier.core.trust import production_anchors
from verifier.engine.evaluate import Context, evaluate
from verifier.evidence.bundle import Bundle
from verifier.verify.memo import VerificationMemo

CASES: dict[str, tuple[Bundle, int]] = {
    "Phala flat, 1 GPU, ecdsa signer": (phala_flat(), PHALA_FLAT_AT),
    "NEAR two-layer, 8 GPUs, ed25519 signer": (near_two_layer(), NEAR_AT),
}


async def bench(rounds: int) -> list[tuple[str, float, float, float, float]]:
    rows = []
    policy, anchors = default_policy(), production_anchors()
    memo = VerificationMemo()  # as the running services keep one: validated chains and keys are remembered
    async with DcapPool(size=2) as pool:
        for name, (bundle, at) in CASES.items():
            ctx = Context(policy=policy, now=at, anchors=anchors, quotes=pool, dcap_version=pool.version(), memo=memo)
            first = await evaluate(bundle, ctx)
            assert first.verdict.checks, name
            for _ in range(10):
                await evaluate(bundle, ctx)
            walls = []
            cpu0 = time.process_time()
            for _ in range(rounds):
                t0 = time.perf_counter()
                await evaluate(bundle, ctx)
                walls.append(time.perf_counter() - t0)
            cpu = (time.process_time() - cpu0) / rounds
            t0 = time.perf_counter()
            for _ in range(rounds // 4):
                await asyncio.gather(*(evaluate(bundle, ctx) for _ in range(4)))
            throughput = (rounds // 4) * 4 / (time.perf_counter() - t0)
            walls.sort()
            rows.append(
                (name, statistics.median(walls) * 1e3, walls[int(len(walls) * 0.95)] * 1e3, cpu * 1e3, throughput)
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    rows = asyncio.run(bench(args.rounds))
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {args.rounds} verdicts per case\n")
    print(
        "| bundle | wall median (ms) | wall p95 (ms) | service CPU / verdict (ms) | verdicts/s, 4 in flight, 2 "
        "workers |"
    )
    print("|---|---|---|---|---|")
    for name, median, p95, cpu, rate in rows:
        print(f"| {name} | {median:.2f} | {p95:.2f} | {cpu:.2f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
