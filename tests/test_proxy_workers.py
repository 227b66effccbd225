"""The proxy's verifier worker processes (``--verify-workers``, ``verifier.app.verify_pool``): the same verdicts as
in-process, the gateway key nowhere on disk or in any log, a killed worker an honest answer, a full backlog a 503
before the gateway is contacted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from test_proxy import ID_HEADER, MODEL, STATUS_HEADER, Proxied, messages, start, verdict_by_id
from web_env import API_KEY, clock

from verifier.adapters.transport import secret_forms
from verifier.app.keys import Role
from verifier.app.services import open_services
from verifier.app.verify_pool import VerifierPool
from verifier.demo import simulator_settings
from verifier.engine.pipeline import Exchange
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig
from verifier.web.errors import SERVICES
from verifier.web.proxy import ERROR_HEADER

# verdict fields that differ between any two runs of the same verification (the wall clock, the ledger id)
VOLATILE_TIMES = ("duration_ms", "evaluated_at")


def pool_of(env: Proxied) -> VerifierPool:
    assert env.app is not None
    pool = env.app[SERVICES].verifiers
    assert pool is not None, "this proxy verifies in-process"
    return pool


def comparable(verdict: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(verdict))
    out.pop("id", None)
    for name in VOLATILE_TIMES:
        out.get("times", {}).pop(name, None)
    return out


async def post(env: Proxied, session: aiohttp.ClientSession, *, stream: bool = False) -> aiohttp.ClientResponse:
    resp = await session.post(
        f"{env.proxy_url}/v1/chat/completions",
        data=json.dumps({"model": MODEL, "messages": messages(), "stream": stream}),
        headers={"X-Verifier-Key": env.keys[Role.SUBMIT], "Authorization": f"Bearer {API_KEY}"},
    )
    await resp.read()
    return resp


async def ticket_answer(env: Proxied, session: aiohttp.ClientSession, ticket: str) -> tuple[int, dict[str, Any]]:
    async with session.get(
        f"{env.proxy_url}/v1/verifications/{ticket}",
        params={"wait": "60"},
        headers={"X-Verifier-Key": env.keys[Role.SUBMIT]},
    ) as resp:
        return resp.status, await resp.json()


class Hold:
    """Gateway middleware: signature calls wait until ``release`` (so a verification is caught mid-way)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.released = asyncio.Event()

        @web.middleware
        async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path.startswith("/v1/signature/") and not self.released.is_set():
                self.entered.set()
                await asyncio.wait_for(self.released.wait(), 60)
            return await handler(request)

        self.middleware = hold


async def test_the_existing_flow_runs_in_a_worker_process(aiohttp_server: Any, tmp_path: Path) -> None:
    env = await start(aiohttp_server, tmp_path)
    raw = await env.sdk().chat.completions.with_raw_response.create(model=MODEL, messages=messages())
    assert raw.headers[STATUS_HEADER] == "pass"
    pool = pool_of(env)
    assert pool.completed == 1 and len(pool.pids()) == 1 and os.getpid() not in pool.pids()


async def test_worker_verdicts_equal_in_process_verdicts_for_the_same_exchange(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    """The same captured exchange verified in-process and in a worker: with the reuse window both cite the same
    prior attestation (so the same nonce and report), and the verdicts are equal field for field; fresh, every
    check has the same status and reason."""
    policy = tmp_path / "reuse.toml"
    policy.write_text('[policy]\nid = "reuse-600"\n[attestation]\nmax_attestation_age = 600\n')
    gateway = SimulatedGateway(SimulatorWorld(), SimulatorConfig(clock=clock))
    server = await aiohttp_server(gateway.app())
    url = str(server.make_url("")).rstrip("/")
    request = json.dumps({"model": MODEL, "messages": messages()}).encode()
    async with aiohttp.ClientSession() as session, session.post(f"{url}/v1/chat/completions", data=request) as resp:
        response = await resp.read()
    exchange = Exchange(request=request, response=response, model=MODEL, gateway=url)
    fresh: dict[str, dict[str, Any]] = {}
    for name, policy_path in (("fresh", None), ("reuse", str(policy))):
        settings = simulator_settings(tmp_path / f"{name}.db", url, dcap_workers=1, policy_path=policy_path)
        async with open_services(settings, clock=clock) as svc:
            pool = VerifierPool(
                settings, svc.policy, svc.refs, workers=1, nice=0, collateral_store=svc.collateral.store
            )
            await pool.start()
            try:
                source = await svc.records.verify(exchange, api_key=API_KEY)  # in-process; the reuse source
                in_process = await svc.records.verify(exchange, api_key=API_KEY, record=False)
                svc.verifiers = pool
                in_worker = await svc.records.verify(exchange, api_key=API_KEY, record=False)
                assert pool.completed == 1
            finally:
                svc.verifiers = None
                await pool.close()
        assert source["status"] == in_process["status"] == in_worker["status"] == "pass"
        if name == "reuse":
            assert in_worker["attestation"]["origin"] == "reused"
            assert in_worker["attestation"]["reused_from"] == source["id"]
            assert comparable(in_worker) == comparable(in_process)
        fresh[name] = in_worker
        checks = {c["id"]: (c["status"], c.get("reason")) for c in in_process["checks"]}
        assert {c["id"]: (c["status"], c.get("reason")) for c in in_worker["checks"]} == checks
    assert fresh["fresh"]["nonce"]["value"] != fresh["reuse"]["nonce"]["value"]


async def test_the_upstream_key_never_appears_in_the_ledger_bundle_logs_or_any_file_the_workers_write(
    aiohttp_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    work = tmp_path / "work"
    (work / "tmp").mkdir(parents=True)
    monkeypatch.chdir(work)  # the workers (and their dcap-qvl processes) inherit this directory and TMPDIR
    monkeypatch.setenv("TMPDIR", str(work / "tmp"))
    echo = {"on": False}

    @web.middleware
    async def echo_key(request: web.Request, handler: Any) -> web.StreamResponse:
        if echo["on"] and request.path.startswith("/v1/signature/"):
            return web.json_response({"error": f"bad key {request.headers.get('Authorization')}"}, status=401)
        if echo["on"] and request.path == "/v1/attestation/report":
            return web.json_response({"debug": {"authorization": request.headers.get("Authorization")}})
        return await handler(request)

    env = await start(aiohttp_server, work, middlewares=(echo_key,))
    pids = pool_of(env).pids()
    async with aiohttp.ClientSession() as session:
        plain = await post(env, session)
        streamed = await post(env, session, stream=True)
        status, verdict = await ticket_answer(env, session, streamed.headers[ID_HEADER])
        assert status == 200
        echo["on"] = True
        echoed = await post(env, session)
    assert [plain.headers[STATUS_HEADER], verdict["status"]] == ["pass", "pass"]
    assert echoed.headers[STATUS_HEADER] != "pass"  # the echo is a rejected signature call
    echoed_verdict = await verdict_by_id(env, echoed.headers[ID_HEADER])
    assert "upstream_key_redacted" in {n["code"] for n in echoed_verdict["notes"]}  # redacted in the worker
    assert pool_of(env).completed == 3

    forms = {f.encode() for f in secret_forms([API_KEY])}
    found = []
    for path in work.rglob("*"):  # the ledger and its WAL, and whatever a worker wrote in its cwd or TMPDIR
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {form!r}" for form in forms if form in data]
    for pid in pids:  # nor was it handed to a worker in its command line or environment
        for part in ("cmdline", "environ"):
            data = Path(f"/proc/{pid}/{part}").read_bytes()
            found += [f"/proc/{pid}/{part}" for form in forms if form in data]
    out, err = capfd.readouterr()  # the workers' stdout and stderr (inherited file descriptors)
    logged = out + err + "".join(repr(vars(r)) for r in caplog.records)
    found += [f"logs: {form!r}" for form in forms if form.decode() in logged]
    assert found == []


@pytest.mark.parametrize("mode", ["async", "sync"])
async def test_a_worker_killed_mid_verification_gives_an_honest_answer_and_the_proxy_keeps_relaying(
    aiohttp_server: Any, tmp_path: Path, mode: str
) -> None:
    hold = Hold()
    env = await start(aiohttp_server, tmp_path, mode=mode, middlewares=(hold.middleware,))
    pool = pool_of(env)
    (victim,) = pool.pids()
    async with aiohttp.ClientSession() as session:
        pending = asyncio.ensure_future(post(env, session))
        await asyncio.wait_for(hold.entered.wait(), 30)  # the worker is waiting for the signature
        os.kill(victim, signal.SIGKILL)
        first = await asyncio.wait_for(pending, 60)
        assert first.status == 200  # the completion itself was relayed
        if mode == "sync":
            assert first.headers[STATUS_HEADER] == "not_verified"
            assert first.headers[ERROR_HEADER] == "verifier_worker_died"
        else:
            status, answer = await ticket_answer(env, session, first.headers[ID_HEADER])
            assert status == 502 and answer["error"]["code"] == "verification_failed"
            assert "verifier_worker_died" in answer["error"]["message"]
        hold.released.set()
        second = await post(env, session)  # relayed and verified by the replacement worker
        assert second.status == 200
        if mode == "sync":
            assert second.headers[STATUS_HEADER] == "pass"
        else:
            status, verdict = await ticket_answer(env, session, second.headers[ID_HEADER])
            assert (status, verdict["status"]) == (200, "pass")
    assert pool.restarts >= 1 and victim not in pool.pids() and len(pool.pids()) == 1


async def test_a_full_backlog_is_a_503_before_the_gateway_is_contacted(aiohttp_server: Any, tmp_path: Path) -> None:
    hold = Hold()
    env = await start(aiohttp_server, tmp_path, mode="async", backlog=1, middlewares=(hold.middleware,))
    async with aiohttp.ClientSession() as session:
        first = await post(env, session)  # relayed; its verification holds the one slot
        assert first.status == 200
        await asyncio.wait_for(hold.entered.wait(), 30)
        completions = len(env.gateway.chats)
        refused = await post(env, session)
        assert refused.status == 503 and refused.headers["Retry-After"] == "1"
        assert (await refused.json())["error"]["code"] == "verification_backlog_full"
        assert len(env.gateway.chats) == completions  # the gateway never heard of it
        hold.released.set()
        status, verdict = await ticket_answer(env, session, first.headers[ID_HEADER])
        assert (status, verdict["status"]) == (200, "pass")
        again = await post(env, session)  # the slot is free again
        assert again.status == 200
        status, verdict = await ticket_answer(env, session, again.headers[ID_HEADER])
        assert (status, verdict["status"]) == (200, "pass")


async def test_the_call_budget_stays_the_relays_with_workers(aiohttp_server: Any, tmp_path: Path) -> None:
    """Two calls a minute are one verification: the second completion is relayed, not verified, nothing called."""
    env = await start(aiohttp_server, tmp_path, upstream_per_minute=2)
    async with aiohttp.ClientSession() as session:
        first = await post(env, session)
        calls = len(env.seen)
        second = await post(env, session)
    assert first.headers[STATUS_HEADER] == "pass"
    assert (second.headers[STATUS_HEADER], second.headers[ERROR_HEADER]) == (
        "not_verified",
        "upstream_budget_exhausted",
    )
    assert len(env.seen) == calls + 1  # the completion only: no signature or report call


def test_a_result_that_does_not_pickle_still_answers_its_job() -> None:
    import pickle

    from verifier.app.verify_worker import result_frame

    deep: list[Any] = []
    for _ in range(200_000):  # deeper than pickle's recursion limit
        deep = [deep]
    for unsendable in ((lambda: None), deep):
        data = result_frame(7, ("done", 7, {"v": unsendable}, None))
        kind, jid, error = pickle.loads(data[8:])
        assert (kind, jid) == ("internal", 7) and error in ("PicklingError", "AttributeError", "RecursionError")
    assert pickle.loads(result_frame(8, ("done", 8, {"v": 1}, None))[8:]) == ("done", 8, {"v": 1}, None)
