"""Peak memory of the service under 100 concurrent verifications whose attestation reports are near the 16 MiB cap.

Run: ``.venv/bin/python benchmarks/bench_memory.py [--concurrency 100] [--report-mib 15.5]``. Starts the simulated
gateway in this process (its report answers padded to ``--report-mib``), then ``verifier serve`` as a subprocess on
loopback (``--insecure-no-auth``, simulator trust), fires the verifications all at once, and reads the service's peak
resident set (``VmHWM`` in /proc, the service process alone; the dcap-qvl workers are separate processes of a few
MiB each). Runs once with admission control at its default (256 MiB in flight) and once with it effectively off.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig


def padded_gateway(report_bytes: int) -> web.Application:
    gateway = SimulatedGateway(SimulatorWorld(), SimulatorConfig())

    @web.middleware
    async def pad(request: web.Request, handler):  # type: ignore[no-untyped-def]
        response = await handler(request)
        if request.path != "/v1/attestation/report" or response.status != 200:
            return response
        report = json.loads(response.body)
        report["padding"] = "p" * max(0, report_bytes - len(response.body) - 16)
        return web.Response(body=json.dumps(report).encode(), content_type="application/json")

    app = gateway.app()
    app.middlewares.append(pad)
    return app


def vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


async def run(concurrency: int, report_bytes: int, inflight_mib: int) -> dict[str, object]:
    runner = web.AppRunner(padded_gateway(report_bytes), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    gw = f"http://127.0.0.1:{runner.addresses[0][1]}"
    db = Path(tempfile.mkdtemp(prefix="bench-memory-")) / "v.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from verifier.cli import run; run()",
        "serve",
        "--insecure-no-auth",
        "--port",
        "0",
        "--db",
        str(db),
        "--trust",
        "simulator",
        "--pcs-url",
        gw,
        "--pccs",
        "--nras-url",
        gw,
        "--allow-gateway",
        gw,
        "--workers",
        "2",
        "--upstream-budget",
        "0",
        "--rate-limit",
        "0",
        "--max-inflight-mib",
        str(inflight_mib),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None
    while not (line := (await proc.stdout.readline()).decode()).startswith("listening on "):
        assert line, "the service did not start"
    url = line.split()[-1]
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(200):
            try:
                async with session.get(f"{url}/readyz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        baseline = vm(proc.pid, "VmRSS")

        async def one(i: int) -> int:
            request = json.dumps({"model": "sim/echo-1", "messages": [{"role": "user", "content": f"q{i}"}]}).encode()
            async with session.post(f"{gw}/v1/chat/completions", data=request) as r:
                response = await r.read()
            body = {
                "request_b64": base64.b64encode(request).decode(),
                "response_b64": base64.b64encode(response).decode(),
                "model": "sim/echo-1",
                "gateway": gw,
            }
            async with session.post(f"{url}/v1/verifications", json=body) as r:
                await r.read()
                return r.status

        started = time.monotonic()
        statuses = await asyncio.gather(*(one(i) for i in range(concurrency)))
        elapsed = time.monotonic() - started
    peak = vm(proc.pid, "VmHWM")
    os.killpg(proc.pid, signal.SIGTERM)
    await proc.wait()
    await runner.cleanup()
    return {
        "inflight_mib": inflight_mib,
        "baseline_mib": baseline / 2**20,
        "peak_mib": peak / 2**20,
        "seconds": elapsed,
        "201": statuses.count(201),
        "503": statuses.count(503),
        "other": len(statuses) - statuses.count(201) - statuses.count(503),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--report-mib", type=float, default=15.5)
    args = parser.parse_args()
    report_bytes = int(args.report_mib * 2**20)
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}")
    print(f"{args.concurrency} concurrent verifications, reports of {report_bytes} bytes\n")
    print("| max in flight (MiB) | service RSS at start (MiB) | peak RSS (MiB) | 201 | 503 | other | wall (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for inflight in (256, 1_000_000):
        r = asyncio.run(run(args.concurrency, report_bytes, inflight))
        print(
            f"| {'off' if inflight == 1_000_000 else inflight} | {r['baseline_mib']:.0f} | {r['peak_mib']:.0f} | "
            f"{r['201']} "
            f"| {r['503']} | {r['other']} | {r['seconds']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
