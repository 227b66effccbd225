"""Verification CPU runs off the service loop: a slow engine step does not delay `/healthz`; the engine's I/O
ports keep running on the service loop (their sessions, pipes and locks live there)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web_env import post, start

import verifier.engine.gpus as engine
from verifier.app.offload import Offloader, bridge


class Port:
    def __init__(self) -> None:
        self.loops: list[asyncio.AbstractEventLoop] = []

    async def fetch(self, x: int) -> int:
        self.loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return x * 2

    def version(self) -> str:
        return "1"


@dataclass(frozen=True)
class Ctx:
    port: Port | None
    name: str = "ctx"


async def test_bridged_ports_run_on_the_home_loop_while_the_engine_runs_on_its_own() -> None:
    home = asyncio.get_running_loop()
    port, offloader = Port(), Offloader()
    engine_threads: list[str] = []

    async def engine_step(ctx: Ctx) -> int:
        engine_threads.append(threading.current_thread().name)
        assert ctx.port is not None and ctx.port.version() == "1" and ctx.name == "ctx"
        return await ctx.port.fetch(21)

    try:
        assert await offloader.run(engine_step, bridge(Ctx(port), home)) == 42
    finally:
        offloader.close()
    assert port.loops == [home] and engine_threads == ["verifier-engine"]


async def test_an_error_in_the_engine_reaches_the_caller() -> None:
    offloader = Offloader()

    async def boom() -> None:
        raise ValueError("from the engine")

    try:
        with pytest.raises(ValueError, match="from the engine"):
            await offloader.run(boom)
    finally:
        offloader.close()


async def test_a_slow_engine_step_does_not_delay_healthz(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = engine.verify_gpu  # the engine's GPU step (pure-Python work between C calls)

    def slow_verify_gpu(*args: Any, **kwargs: Any) -> Any:
        end = time.monotonic() + 0.8
        while time.monotonic() < end:  # Python bytecode: the GIL switches every few ms
            sum(range(200))
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "verify_gpu", slow_verify_gpu)
    env = await start(aiohttp_client, aiohttp_server, tmp_path)
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            t0 = time.monotonic()
            assert (await env.client.get("/healthz")).status == 200
            lags.append(time.monotonic() - t0)
            await asyncio.sleep(0.01)

    async def verification() -> Any:
        try:
            return await post(env)
        finally:
            done.set()

    resp, _ = await asyncio.gather(verification(), probe())
    assert resp.status == 201 and (await resp.json())["status"] == "pass"
    assert len(lags) > 10 and max(lags) < 0.3, (len(lags), max(lags))  # on the service loop it would be >= 0.8 s


def test_bridge_leaves_plain_data_alone() -> None:
    loop = asyncio.new_event_loop()
    try:
        for value in ("v_1", 5, None, b"x", Ctx(None)):
            assert bridge(value, loop) is value
        bundle_like = Ctx(Port())
        bridged = bridge(bundle_like, loop)
        assert bridged is not bundle_like and bridged.name == "ctx" and bridged.port is not bundle_like.port
    finally:
        loop.close()
