"""TDX quote verification cost: in-process dcap_qvl vs the DcapPool worker pipe.

Run: .venv/bin/python benchmarks/bench_dcap.py [--calls N]
Prints a Markdown table (throughput, median and p95 latency per call) for a real fixture quote
(dcap-qvl sample TDX v4) at its manifest verify time. Bounded: N calls per mode (default 1000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import dcap_qvl

ROOT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT_DIR))

from verifier.adapters.dcap.pool import DcapPool  # noqa: E402
from verifier.core.trust import production_anchors  # noqa: E402

CASE = "dcapqvl-tdx-v4-uptodate"


def _case() -> tuple[bytes, str, int]:
    fixtures = ROOT_DIR / "fixtures" / "tdx"
    case = next(c for c in json.loads((fixtures / "manifest.json").read_text())["cases"] if c["id"] == CASE)
    return (fixtures / case["quote"]).read_bytes(), (fixtures / case["collateral"]).read_text(), case["verify_at"]


def _row(mode: str, latencies: list[float], wall: float) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return f"| {mode} | {len(ms)} | {len(ms) / wall:,.0f} | {statistics.median(ms):.3f} | {p95:.3f} |"


def bench_in_process(
    quote: bytes, collateral: str, now: int, root: bytes, calls: int, *, with_claims: bool = False
) -> str:
    """What the worker does per request, minus the pipe: verify, optionally + claims_only JSON."""
    coll = dcap_qvl.QuoteCollateralV3.from_json(collateral)
    verifier = dcap_qvl.QuoteVerifier(root)

    def once() -> None:
        dcap_qvl.verify_with_root_ca(quote, coll, root, now)
        if with_claims:
            json.loads(verifier.verify_with_policy(quote, coll, now, dcap_qvl.QuotePolicy.claims_only(now)).to_json())

    once()  # warm-up
    latencies = []
    start = time.perf_counter()
    for _ in range(calls):
        t = time.perf_counter()
        once()
        latencies.append(time.perf_counter() - t)
    mode = "in-process `verify_with_root_ca`" + (" + `claims_only` claims" if with_claims else "")
    return _row(mode, latencies, time.perf_counter() - start)


async def bench_pool(
    quote: bytes, collateral: str, now: int, root: bytes, calls: int, size: int, concurrency: int
) -> str:
    async with DcapPool(size=size) as pool:
        for _ in range(2 * size):  # warm-up: every worker has parsed (cached) the collateral
            await pool.verify(quote, collateral, now, root)
        latencies: list[float] = []

        async def one() -> None:
            t = time.perf_counter()
            await pool.verify(quote, collateral, now, root)
            latencies.append(time.perf_counter() - t)

        async def lane(n: int) -> None:
            for _ in range(n):
                await one()

        start = time.perf_counter()
        await asyncio.gather(*(lane(calls // concurrency) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    kind = "sequential" if concurrency == 1 else f"{concurrency} concurrent callers"
    return _row(f"DcapPool size {size}, {kind} (verify + claims)", latencies, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per mode (default 1000)")
    calls = parser.parse_args().calls
    quote, collateral, now = _case()
    root = production_anchors().intel_root_ca_der
    print(
        f"machine: nproc={os.cpu_count()}, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, dcap-qvl {dcap_qvl.__version__}; quote {CASE} at {now}\n"
    )
    print("| mode | calls | quotes/s | median ms | p95 ms |")
    print("|---|---:|---:|---:|---:|")
    print(bench_in_process(quote, collateral, now, root, calls))
    print(bench_in_process(quote, collateral, now, root, calls, with_claims=True))
    for size, concurrency in [(1, 1), (1, 4), (2, 1), (2, 4)]:
        print(asyncio.run(bench_pool(quote, collateral, now, root, calls, size, concurrency)))


if __name__ == "__main__":
    main()
