"""Degraded and hostile upstreams, a locked ledger: never a 5xx, never a `pass`, the loop stays responsive.

- a redirect from an allowed gateway to another port is not followed and nothing of the target is stored
- an upstream that echoes the caller's key (any length) gets it redacted; the verdict is still committed
- a lone surrogate in an upstream answer is a committed verdict, not a 500
- a writer blocked past the busy timeout is a 503 ``ledger_busy`` with Retry-After, while `/healthz` and reads
  keep answering (SQLite runs on the ledger's threads, never on the event loop)
- every simulator fault knob ends in a 201 whose verdict is not `pass`
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from web_env import API_KEY, Env, clock, post, start

from verifier.app.keys import Role
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import FAULTS, TLS_FAULTS, SimulatedGateway, SimulatorConfig

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def with_overrides(gateway: SimulatedGateway, overrides: dict[str, Handler]) -> web.Application:
    """The simulated gateway, with some paths answered by ``overrides`` (path prefix -> handler)."""

    @web.middleware
    async def override(request: web.Request, handler: Handler) -> web.StreamResponse:
        for prefix, fn in overrides.items():
            if request.path.startswith(prefix):
                return await fn(request)
        return await handler(request)

    app = gateway.app()
    app.middlewares.append(override)
    return app


async def env_with(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path, overrides: dict[str, Handler], **settings: Any
) -> Env:
    gateway = SimulatedGateway(SimulatorWorld(), SimulatorConfig(clock=clock))
    return await start(
        aiohttp_client,
        aiohttp_server,
        tmp_path,
        gateway_app=with_overrides(gateway, overrides),
        signature_deadline=0.0,
        **settings,
    )


def checks(verdict: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {c["id"]: (c["status"], c["reason"]) for c in verdict["checks"]}


async def test_a_redirect_to_a_host_not_allowed_is_not_followed_and_nothing_of_it_is_stored(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    hits: list[dict[str, str]] = []

    async def elsewhere(request: web.Request) -> web.Response:
        hits.append({"path": request.path, "auth": request.headers.get("Authorization", "")})
        return web.json_response({"signing_address": "0xTARGET-MARKER", "intel_quote": "TARGET-MARKER"})

    target = await aiohttp_server(web.Application(middlewares=[web.middleware(lambda r, h: elsewhere(r))]))
    target_url = str(target.make_url("/v1/attestation/report"))

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{target_url}?{request.query_string}")

    env = await env_with(aiohttp_client, aiohttp_server, tmp_path, {"/v1/attestation/report": redirect})
    resp = await post(env)
    assert resp.status == 201
    verdict = await resp.json()
    assert verdict["status"] == "indeterminate"
    report = next(c for c in verdict["checks"] if c["id"] == "report.signer")
    assert report["reason"] == "upstream_rejected" and target_url in report["message"]
    assert hits == []  # never followed: the target saw nothing (and so never saw the key)
    assert b"TARGET-MARKER" not in env.db_path.read_bytes()
    bundle = await env.client.get(f"/v1/verifications/{verdict['id']}/bundle", headers=env.auth())
    assert b"TARGET-MARKER" not in await bundle.read()


@pytest.mark.parametrize("upstream_key", [API_KEY, "abc", "k" * 7])
async def test_an_upstream_echo_of_the_key_is_redacted_whatever_its_length_and_the_verdict_is_committed(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path, upstream_key: str
) -> None:
    async def echo_error(request: web.Request) -> web.Response:
        return web.json_response({"error": f"invalid key {request.headers.get('Authorization')}"}, status=401)

    async def echo_report(request: web.Request) -> web.Response:
        return web.json_response({"debug": {"authorization": request.headers.get("Authorization")}})

    env = await env_with(
        aiohttp_client, aiohttp_server, tmp_path, {"/v1/signature/": echo_error, "/v1/attestation/report": echo_report}
    )
    resp = await post(env, upstream_key=upstream_key)
    text = await resp.text()
    assert resp.status == 201, text
    verdict = await resp.json()
    assert verdict["status"] != "pass" and verdict["id"]
    signature = next(c for c in verdict["checks"] if c["id"] == "signature.valid")
    assert signature["reason"] == "upstream_rejected" and "[redacted]" in signature["message"]
    assert f"Bearer {upstream_key}" not in text
    assert "upstream_key_redacted" in {n["code"] for n in verdict["notes"]}  # the report echoed it too
    stored = await env.client.get(f"/v1/verifications/{verdict['id']}/bundle", headers=env.auth())
    assert f"Bearer {upstream_key}".encode() not in await stored.read()
    assert f"Bearer {upstream_key}".encode() not in env.db_path.read_bytes()


async def test_a_lone_surrogate_in_an_upstream_answer_is_a_committed_verdict(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    async def signature(request: web.Request) -> web.Response:
        return web.Response(
            body=b'{"text": "\\ud800:\\udfff", "signature": "0x00", "signing_address": "0x\\ud800", '
            b'"signing_algo": "ecdsa"}',
            content_type="application/json",
        )

    async def report(request: web.Request) -> web.Response:
        return web.Response(
            body=b'{"signing_address": "\\ud800", "intel_quote": "\\udc00"}', content_type="application/json"
        )

    env = await env_with(
        aiohttp_client, aiohttp_server, tmp_path, {"/v1/signature/": signature, "/v1/attestation/report": report}
    )
    resp = await post(env)
    assert resp.status == 201, await resp.text()
    verdict = await resp.json()
    assert verdict["status"] == "fail"
    again = await env.client.get(f"/v1/verifications/{verdict['id']}", headers=env.auth())
    assert again.status == 200 and (await again.json())["checks"] == verdict["checks"]


def hold_write_lock(db: Path, seconds: float) -> Callable[[], None]:
    """Another process-like connection holds the SQLite write lock for ``seconds`` (in a thread)."""
    import threading

    held = threading.Event()

    def run() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    held.wait(5)
    return lambda: thread.join(seconds + 5)


async def test_a_writer_blocked_past_the_busy_timeout_is_a_503_while_the_loop_stays_responsive(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    env = await start(aiohttp_client, aiohttp_server, tmp_path, db_busy_timeout=0.5)
    earlier = await (await post(env)).json()
    assert earlier["status"] == "pass"
    release = hold_write_lock(env.db_path, 3.0)
    lags: list[float] = []

    async def probe() -> None:  # the loop-lag probe: /healthz every 20 ms for as long as the lock is held
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            t0 = time.monotonic()
            assert (await env.client.get("/healthz")).status == 200
            lags.append(time.monotonic() - t0)
            await asyncio.sleep(0.02)

    async def read_back() -> int:
        await asyncio.sleep(0.3)
        return (await env.client.get(f"/v1/verifications/{earlier['id']}", headers=env.auth(Role.READ))).status

    busy, _, read_status = await asyncio.gather(post(env), probe(), read_back())
    release()
    assert busy.status == 503
    body = await busy.json()
    assert body["error"]["code"] == "ledger_busy" and int(busy.headers["Retry-After"]) >= 1
    assert read_status == 200  # reads run on reader threads, which never wait for a writer
    assert len(lags) > 50 and max(lags) < 0.5, max(lags)
    after = await post(env)
    assert after.status == 201 and (await after.json())["status"] == "pass"


async def test_a_lock_held_from_the_start_stalls_neither_the_collateral_cache_nor_healthz(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    # the first verification fetches collateral and writes it to the cache while the lock is held: that write waits
    # on the ledger's writer thread (and gives up after the busy timeout), never on the event loop
    env = await start(aiohttp_client, aiohttp_server, tmp_path, db_busy_timeout=0.5)
    release = hold_write_lock(env.db_path, 2.0)
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            t0 = time.monotonic()
            assert (await env.client.get("/healthz")).status == 200
            lags.append(time.monotonic() - t0)
            await asyncio.sleep(0.02)

    async def verification() -> Any:
        try:
            return await post(env)
        finally:
            done.set()

    busy, _ = await asyncio.gather(verification(), probe())
    release()
    assert busy.status == 503 and (await busy.json())["error"]["code"] == "ledger_busy"
    assert len(lags) > 10 and max(lags) < 0.5, max(lags)
    assert (await post(env)).status == 201  # the lock is gone: the next one commits (and caches the collateral)


KNOWN_PASS_FIRST = {"replayed_report"}  # its first report is genuine: the second verification is the replay


# the TLS faults need the simulator served over TLS, and tls.binds_peer is advisory by default: they are not-pass
# verdicts under a policy that requires the binding (tests/test_tls_binding.py)
@pytest.mark.parametrize("fault", sorted(set(FAULTS) - TLS_FAULTS))
async def test_every_fault_knob_is_a_201_whose_verdict_is_not_pass(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path, fault: str
) -> None:
    # the model-substitution faults act on NEAR two-layer reports with 3-part signed texts
    near = fault in ("signed_other_model", "attested_other_model")
    config = SimulatorConfig(
        clock=clock,
        faults=frozenset({fault}),
        hang_seconds=1.5,
        report_format="near_two_layer" if near else "phala_flat",
        three_part_text=near,
    )
    env = await start(
        aiohttp_client, aiohttp_server, tmp_path, config=config, upstream_timeout=0.5, signature_deadline=0.2
    )
    rounds = 2 if fault in KNOWN_PASS_FIRST else 1
    statuses = []
    for _ in range(rounds):
        resp = await post(env, stream=fault != "reserialized_response")  # it re-serializes JSON answers only
        assert resp.status == 201, await resp.text()
        statuses.append((await resp.json())["status"])
    assert statuses[-1] != "pass"
