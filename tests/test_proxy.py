"""The verifying proxy through the official openai SDK: only base_url and one default header differ from a direct
call; the bytes the SDK receives are the bytes the gateway sent; every completion gets a passing verdict."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from web_env import API_KEY, clock, make_keys

from verifier.adapters.ledger import Ledger
from verifier.app.keys import Role
from verifier.demo import simulator_settings
from verifier.evidence.bundle import Bundle
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import FALLBACK_MODEL, SimulatedGateway, SimulatorConfig
from verifier.web.proxy import ID_HEADER, STATUS_HEADER, create_proxy_app

MODEL = "sim/echo-1"


@dataclass
class Proxied:
    gateway: SimulatedGateway
    gateway_url: str
    proxy_url: str
    db: Path
    keys: dict[Role, str]
    seen: list[dict[str, str]] = field(default_factory=list)  # headers of every request the gateway received
    app: web.Application | None = None  # the proxy's

    def sdk(self, role: Role = Role.SUBMIT) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.proxy_url}/v1",
            api_key=API_KEY,
            default_headers={"X-Verifier-Key": self.keys[role]},
            max_retries=0,
        )

    def direct(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.gateway_url}/v1", api_key=API_KEY, max_retries=0)


async def start(
    aiohttp_server: Any,
    tmp_path: Path,
    *,
    mode: str = "sync",
    faults: frozenset[str] = frozenset(),
    verify_workers: int = 1,
    backlog: int = 1000,
    middlewares: tuple[Any, ...] = (),
    **settings: Any,
) -> Proxied:
    """The simulated gateway and the proxy in front of it; verification in ``verify_workers`` worker processes (the
    CLI's default), or in-process with 0."""
    gateway = SimulatedGateway(SimulatorWorld(), SimulatorConfig(clock=clock, faults=faults))
    seen: list[dict[str, str]] = []

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(dict(request.headers))
        return await handler(request)

    gateway_app = gateway.app()
    gateway_app.middlewares.append(record)
    gateway_app.middlewares.extend(middlewares)
    gateway_server = await aiohttp_server(gateway_app)
    gateway_url = str(gateway_server.make_url("")).rstrip("/")
    db = tmp_path / "verifier.db"
    keys = make_keys(db)
    settings.setdefault("dcap_workers", 1)
    proxy = await aiohttp_server(
        create_proxy_app(
            simulator_settings(db, gateway_url, **settings),
            mode=mode,
            clock=clock,
            verify_workers=verify_workers,
            backlog=backlog,
        )
    )
    return Proxied(gateway, gateway_url, str(proxy.make_url("")).rstrip("/"), db, keys, seen, proxy.app)


@pytest.fixture
async def sync_proxy(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Proxied]:
    yield await start(aiohttp_server, tmp_path)


def messages(text: str = "hello there") -> list[Any]:
    return [{"role": "user", "content": text}]


def sent_by_gateway(env: Proxied, chat_id: str) -> bytes:
    return env.gateway.chats[chat_id][1]


def bundle_of(env: Proxied, verdict_id: str) -> Bundle:
    with Ledger.open_readonly(env.db) as ledger:
        return Bundle.from_files(ledger.evidence(verdict_id))


async def verdict_by_id(env: Proxied, verification_id: str, role: Role = Role.SUBMIT) -> dict[str, Any]:
    sdk = env.sdk(role)
    got = await sdk.get(f"/verifications/{verification_id}", cast_to=object)
    assert isinstance(got, dict)
    return got


async def test_sdk_non_stream_gets_the_gateways_exact_bytes_and_a_pass_verdict_in_the_headers(
    sync_proxy: Proxied,
) -> None:
    raw = await sync_proxy.sdk().chat.completions.with_raw_response.create(model=MODEL, messages=messages())
    body = raw.http_response.content
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello there"
    assert body == sent_by_gateway(sync_proxy, completion.id)
    assert raw.headers[STATUS_HEADER] == "pass"
    verdict = await verdict_by_id(sync_proxy, raw.headers[ID_HEADER])
    assert verdict["status"] == "pass" and verdict["id"] == raw.headers[ID_HEADER]
    assert {c["id"]: c["status"] for c in verdict["checks"]}["model.served"] == "pass"
    bundle = bundle_of(sync_proxy, verdict["id"])
    assert bundle.response == body
    assert json.loads(bundle.headers or b"{}")["x-model-used"] == MODEL


async def test_sdk_stream_is_relayed_byte_for_byte_and_its_verdict_follows_by_id(sync_proxy: Proxied) -> None:
    sdk = sync_proxy.sdk()
    async with sdk.chat.completions.with_streaming_response.create(
        model=MODEL, messages=messages(), stream=True
    ) as resp:
        ticket = resp.headers[ID_HEADER]
        assert STATUS_HEADER not in resp.headers  # a stream leaves before its verdict exists
        chunks = [chunk async for chunk in resp.iter_bytes()]
    body = b"".join(chunks)
    chat_id = json.loads(body.split(b"\n", 1)[0].removeprefix(b"data: "))["id"]
    assert body == sent_by_gateway(sync_proxy, chat_id)
    verdict = await verdict_by_id(sync_proxy, ticket)
    assert verdict["status"] == "pass"
    assert bundle_of(sync_proxy, verdict["id"]).response == body
    # the ledger id the ticket resolved to reads back directly too
    assert (await verdict_by_id(sync_proxy, verdict["id"]))["status"] == "pass"


async def test_sdk_stream_parses_like_a_direct_call(sync_proxy: Proxied) -> None:
    proxied = await sync_proxy.sdk().chat.completions.create(model=MODEL, messages=messages("a b c"), stream=True)
    direct = await sync_proxy.direct().chat.completions.create(model=MODEL, messages=messages("a b c"), stream=True)
    via_proxy = "".join([c.choices[0].delta.content or "" async for c in proxied])
    via_direct = "".join([c.choices[0].delta.content or "" async for c in direct])
    assert via_proxy == via_direct == "echo: a b c"


async def test_the_gateway_key_is_forwarded_and_the_verifier_key_is_not_and_neither_is_stored(
    sync_proxy: Proxied,
) -> None:
    await sync_proxy.sdk().chat.completions.create(model=MODEL, messages=messages())
    chat = [h for h in sync_proxy.seen if h.get("Authorization") == f"Bearer {API_KEY}"]
    assert chat, "the gateway never saw the caller's key"
    assert all("X-Verifier-Key" not in h for h in sync_proxy.seen)
    assert all(sync_proxy.keys[Role.SUBMIT] not in json.dumps(h) for h in sync_proxy.seen)
    # signature and report calls used the caller's key too
    assert len(chat) >= 3
    stored = b"".join(p.read_bytes() for p in sync_proxy.db.parent.iterdir() if p.name.startswith("verifier.db"))
    assert API_KEY.encode() not in stored


async def test_models_list_is_relayed_unchanged(sync_proxy: Proxied) -> None:
    listed = await sync_proxy.sdk().models.list()
    assert [m.id for m in listed.data] == ["sim/echo-1", "sim/plain-1"]


async def test_a_call_without_the_verifier_key_is_refused_and_never_reaches_the_gateway(sync_proxy: Proxied) -> None:
    with pytest.raises(openai.AuthenticationError):
        await (
            sync_proxy.direct()
            .with_options(base_url=f"{sync_proxy.proxy_url}/v1")
            .chat.completions.create(model=MODEL, messages=messages())
        )
    assert sync_proxy.seen == []


async def test_a_read_key_may_not_relay_completions(sync_proxy: Proxied) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        await sync_proxy.sdk(Role.READ).chat.completions.create(model=MODEL, messages=messages())
    assert sync_proxy.seen == []


async def test_another_keys_ticket_is_not_found(aiohttp_server: Any, tmp_path: Path) -> None:
    env = await start(aiohttp_server, tmp_path, mode="async")
    raw = await env.sdk().chat.completions.with_raw_response.create(model=MODEL, messages=messages())
    with Ledger.open(env.db) as ledger:
        from verifier.app.keys import KeyStore

        _, other = KeyStore(ledger).create(Role.SUBMIT, "another submitter")
    env.keys[Role.SUBMIT] = other
    with pytest.raises(openai.NotFoundError):
        await verdict_by_id(env, raw.headers[ID_HEADER])


async def test_async_mode_relays_at_once_with_a_ticket_usable_at_once(aiohttp_server: Any, tmp_path: Path) -> None:
    env = await start(aiohttp_server, tmp_path, mode="async")
    raw = await env.sdk().chat.completions.with_raw_response.create(model=MODEL, messages=messages())
    assert raw.http_response.content == sent_by_gateway(env, raw.parse().id)
    assert STATUS_HEADER not in raw.headers and raw.headers[ID_HEADER].startswith("vt_")
    verdict = await verdict_by_id(env, raw.headers[ID_HEADER])
    assert verdict["status"] == "pass"


async def test_an_upstream_error_is_relayed_unchanged_and_not_verified(sync_proxy: Proxied) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await sync_proxy.sdk().chat.completions.create(model=MODEL, messages=[])
    assert caught.value.response.status_code == 400
    assert ID_HEADER not in caught.value.response.headers


async def test_a_fallback_model_is_not_a_pass_and_the_verdict_names_it(aiohttp_server: Any, tmp_path: Path) -> None:
    env = await start(aiohttp_server, tmp_path, faults=frozenset({"fallback_model"}))
    raw = await env.sdk().chat.completions.with_raw_response.create(model=MODEL, messages=messages())
    assert raw.headers[STATUS_HEADER] == "fail"
    verdict = await verdict_by_id(env, raw.headers[ID_HEADER])
    served = {c["id"]: c for c in verdict["checks"]}["model.served"]
    assert (served["status"], served["reason"]) == ("fail", "model_fallback")
    assert FALLBACK_MODEL in served["message"]
    headers = json.loads(bundle_of(env, verdict["id"]).headers or b"{}")
    assert headers["x-fallback-from"] == MODEL and "authorization" not in headers


async def test_a_policy_alias_allows_the_fallback_model(aiohttp_server: Any, tmp_path: Path) -> None:
    policy = tmp_path / "alias.toml"
    policy.write_text(f'[policy]\nid = "alias"\n[models]\n"{MODEL}" = ["{FALLBACK_MODEL}"]\n')
    env = await start(aiohttp_server, tmp_path, faults=frozenset({"fallback_model"}), policy_path=str(policy))
    raw = await env.sdk().chat.completions.with_raw_response.create(model=MODEL, messages=messages())
    verdict = await verdict_by_id(env, raw.headers[ID_HEADER])
    assert {c["id"]: c["status"] for c in verdict["checks"]}["model.served"] == "pass"


async def test_a_stream_is_relayed_chunk_by_chunk_before_the_upstream_finishes(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    release = asyncio.Event()

    async def slow_stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"id":"chatcmpl-slow","model":"sim/echo-1","choices":[]}\n\n')
        await asyncio.wait_for(release.wait(), 30)  # the rest only once the client has the first chunk
        await resp.write(b"data: [DONE]\n\n")
        return resp

    upstream = web.Application()
    upstream.router.add_post("/v1/chat/completions", slow_stream)
    server = await aiohttp_server(upstream)
    url = str(server.make_url("")).rstrip("/")
    db = tmp_path / "verifier.db"
    keys = make_keys(db)
    proxy = await aiohttp_server(
        create_proxy_app(simulator_settings(db, url, dcap_workers=1, signature_deadline=0), clock=clock)
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            str(proxy.make_url("/v1/chat/completions")),
            data=json.dumps({"model": MODEL, "stream": True}),
            headers={"X-Verifier-Key": keys[Role.SUBMIT], "Authorization": f"Bearer {API_KEY}"},
        ) as resp,
    ):
        first = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 10)
        assert b"chatcmpl-slow" in first and not release.is_set()
        release.set()
        assert await resp.read() == b"data: [DONE]\n\n"


async def test_no_log_record_carries_the_gateway_key_or_the_verifier_key(
    sync_proxy: Proxied, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await sync_proxy.sdk().chat.completions.create(model=MODEL, messages=messages())
    stream = await sync_proxy.sdk().chat.completions.create(model=MODEL, messages=messages(), stream=True)
    _ = [c async for c in stream]
    assert caplog.records, "nothing was logged: the test would prove nothing"
    logged = "".join(repr(vars(r)) for r in caplog.records)
    assert API_KEY not in logged and sync_proxy.keys[Role.SUBMIT] not in logged
