"""`kill -9` of the service under load loses no acknowledged verdict, and the ledger stays sound.

`verifier serve` runs as a subprocess on loopback against the simulated gateway (in this test's loop); eight
callers keep verifying; the service is killed with SIGKILL mid-load, restarted, killed again. Afterwards every
verdict that was answered with a 201 is in the ledger, `PRAGMA integrity_check` is ok and `ledger check` finds
nothing to report.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from verifier.adapters.ledger import Ledger, check_ledger
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig

KILLS = 3
CALLERS = 8


async def start_service(db: Path, gateway_url: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from verifier.cli import run; run()",
        "serve",
        "--insecure-no-auth",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--db",
        str(db),
        "--trust",
        "simulator",
        "--pcs-url",
        gateway_url,
        "--pccs",
        "--nras-url",
        gateway_url,
        "--allow-gateway",
        gateway_url,
        "--workers",
        "1",
        "--upstream-budget",
        "0",
        "--rate-limit",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if line.startswith("listening on "):
            url = line.split()[-1]
            break
        assert line, "the service exited before listening"
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return proc, url
            await asyncio.sleep(0.05)
    raise AssertionError("the service never became ready")


async def caller(
    session: aiohttp.ClientSession, gateway_url: str, service_url: str, acked: list[str], stop: asyncio.Event
) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        request = json.dumps({"model": "sim/echo-1", "messages": [{"role": "user", "content": f"q{i}"}]}).encode()
        async with session.post(f"{gateway_url}/v1/chat/completions", data=request) as resp:
            response = await resp.read()
        body = {
            "request_b64": base64.b64encode(request).decode(),
            "response_b64": base64.b64encode(response).decode(),
            "model": "sim/echo-1",
            "gateway": gateway_url,
        }
        try:
            async with session.post(f"{service_url}/v1/verifications", json=body) as answer:
                if answer.status == 201:
                    acked.append((await answer.json())["id"])  # acknowledged: it must survive any crash from here on
        except (TimeoutError, aiohttp.ClientError):
            await asyncio.sleep(0.05)  # the service died under us: this one was never acknowledged


async def test_kill_9_under_load_loses_no_acknowledged_verdict(aiohttp_server: Any, tmp_path: Path) -> None:
    gateway = SimulatedGateway(SimulatorWorld(), SimulatorConfig())
    server = await aiohttp_server(gateway.app())
    gateway_url = str(server.make_url("")).rstrip("/")
    db = tmp_path / "ledger.db"
    acked: list[str] = []
    for round_ in range(KILLS):
        proc, url = await start_service(db, gateway_url)
        before = len(acked)
        stop = asyncio.Event()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            callers = [asyncio.create_task(caller(session, gateway_url, url, acked, stop)) for _ in range(CALLERS)]
            deadline = time.monotonic() + 30
            while len(acked) < before + 12 + round_ * 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            os.killpg(proc.pid, signal.SIGKILL)  # the service and its dcap workers, mid-load
            await proc.wait()
            stop.set()
            await asyncio.gather(*callers)
        assert len(acked) > before, "no verdict was acknowledged before the kill"
    with Ledger.open_readonly(db) as ledger:
        missing = [vid for vid in acked if ledger.get(vid) is None]
        assert missing == []
        assert [row[0] for row in ledger.db.execute("PRAGMA integrity_check")] == ["ok"]
        report = check_ledger(ledger)
        assert report.ok, report.problems
        assert report.verdicts >= len(acked) >= KILLS * 12
        # the transparency log: a leaf per verdict, the latest signed checkpoint covers every acknowledged verdict
        assert report.log_size == report.verdicts and (report.checkpoint_size or 0) >= len(acked)
    # and it starts again on the same file
    proc, _ = await start_service(db, gateway_url)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 30) is not None


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
