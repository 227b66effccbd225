"""NRAS HTTP client against a loopback mock NRAS (aiohttp test server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from fixture_bundles import PHALA_FLAT_AT, phala_flat
from hypothesis import given, settings
from hypothesis import strategies as st
from mutations import Seed, mutated_bytes, mutated_json

from verifier.adapters.nras_client import NrasClient
from verifier.appraise.policy import default_policy
from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate, UpstreamError
from verifier.core.trust import production_anchors
from verifier.engine.evaluate import Context, evaluate
from verifier.evidence.gpu_cert import gpu_identities
from verifier.evidence.gpu_payload import parse_nvidia_payload
from verifier.verify.nras_token import verify_nras_response

FIX = Path(__file__).resolve().parent.parent / "fixtures/nvidia/single-gpu-nras-20260629"
RESPONSE = (FIX / "nras_v3_response.json").read_bytes()
JWKS = (FIX / "nras_jwks.json").read_bytes()
PAYLOAD = parse_nvidia_payload((FIX / "nras_v3_request.json").read_bytes())
REQUEST = PAYLOAD.nras_request


class MockNras:
    def __init__(self) -> None:
        self.mode = "ok"
        self.answer: bytes | None = None  # a 200 JSON answer other than the recorded one
        self.jwks_mode = "ok"
        self.jwks_answer: bytes | None = None
        self.jwks_hits = 0
        self.requests: list[tuple[dict[str, Any], dict[str, str]]] = []

    async def attest(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((await request.json(), dict(request.headers)))
        if self.mode == "slow":
            await asyncio.sleep(2)
        if self.mode in ("500", "429", "400"):
            return web.Response(status=int(self.mode), text="nope")
        if self.mode == "garbage":
            return web.Response(status=200, text="<html>not json</html>")
        return web.Response(body=RESPONSE if self.answer is None else self.answer, content_type="application/json")

    async def jwks(self, request: web.Request) -> web.StreamResponse:
        self.jwks_hits += 1
        if self.jwks_mode == "garbage":
            return web.Response(status=200, text="[1, 2]")
        if self.jwks_mode == "503":
            return web.Response(status=503)
        body = JWKS if self.jwks_answer is None else self.jwks_answer
        return web.Response(body=body, content_type="application/json")


Server = tuple[MockNras, str]


@pytest.fixture
async def nras(aiohttp_server: Callable[[web.Application], Awaitable[Any]]) -> Server:
    mock = MockNras()
    app = web.Application()
    app.router.add_post("/v3/attest/gpu", mock.attest)
    app.router.add_get("/.well-known/jwks.json", mock.jwks)
    server = await aiohttp_server(app)
    return mock, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_attest_returns_the_raw_body_and_posts_the_payload(nras: Server, session: aiohttp.ClientSession) -> None:
    mock, base = nras
    body = await NrasClient(session, base, api_key="k3y").attest(REQUEST)
    assert body == RESPONSE
    sent, headers = mock.requests[0]
    assert sent == REQUEST
    assert headers["Authorization"] == "Bearer k3y" and headers["Content-Type"] == "application/json"


async def test_no_authorization_header_without_an_api_key(nras: Server, session: aiohttp.ClientSession) -> None:
    mock, base = nras
    await NrasClient(session, base).attest(REQUEST)
    assert "Authorization" not in mock.requests[0][1]


async def test_round_trip_verifies_offline(nras: Server, session: aiohttp.ClientSession) -> None:
    _, base = nras
    client = NrasClient(session, base)
    body = await client.attest(REQUEST)
    result = verify_nras_response(
        body,
        jwks=await client.jwks(),
        expected_nonce=bytes.fromhex(REQUEST["nonce"]),
        devices=gpu_identities(PAYLOAD.evidence),
        now=1782698900,
        anchors=production_anchors(),
    )
    assert result.overall


@pytest.mark.parametrize(
    ("mode", "needle"), [("500", "HTTP 500"), ("429", "HTTP 429"), ("400", "HTTP 400"), ("garbage", "not JSON")]
)
async def test_faults_are_nras_unavailable(
    nras: Server, session: aiohttp.ClientSession, mode: str, needle: str
) -> None:
    mock, base = nras
    mock.mode = mode
    with pytest.raises(UpstreamError) as exc:
        await NrasClient(session, base).attest(REQUEST)
    assert exc.value.reason == "nras_unavailable"
    assert needle in exc.value.message and f"{base}/v3/attest/gpu" in exc.value.message


async def test_timeout_is_nras_unavailable(nras: Server, session: aiohttp.ClientSession) -> None:
    mock, base = nras
    mock.mode = "slow"
    with pytest.raises(UpstreamError) as exc:
        await NrasClient(session, base, timeout=0.2).attest(REQUEST)
    assert exc.value.reason == "nras_unavailable" and "0.2s" in exc.value.message


async def test_connection_refused_is_nras_unavailable(session: aiohttp.ClientSession) -> None:
    with pytest.raises(UpstreamError) as exc:
        await NrasClient(session, "http://127.0.0.1:9", timeout=2).attest(REQUEST)
    assert exc.value.reason == "nras_unavailable"


async def test_jwks_is_cached_and_an_unknown_kid_triggers_one_refetch(
    nras: Server, session: aiohttp.ClientSession
) -> None:
    mock, base = nras
    client = NrasClient(session, base)
    known = json.loads(JWKS)["keys"][0]["kid"]
    assert (await client.jwks())["keys"]
    await client.jwks()
    await client.jwks(known)
    assert mock.jwks_hits == 1
    await client.jwks("nv-eat-kid-unknown")
    assert mock.jwks_hits == 2  # exactly one refetch, no loop
    await client.jwks(known)
    assert mock.jwks_hits == 2


@pytest.mark.parametrize("mode", ["garbage", "503"])
async def test_bad_jwks_is_nras_unavailable(nras: Server, session: aiohttp.ClientSession, mode: str) -> None:
    mock, base = nras
    mock.jwks_mode = mode
    with pytest.raises(UpstreamError) as exc:
        await NrasClient(session, base).jwks()
    assert exc.value.reason == "nras_unavailable" and "jwks.json" in exc.value.message


# ---------------------------------------------------------------- answers of the wrong shape: an NRAS malfunction

WRONG_SHAPES = {
    "an object": b'{"error": "internal", "code": 500}',
    "an empty array": b"[]",
    "a string": b'"ok"',
    "three elements": b'[["JWT", "a.b.c"], {}, {}]',
    "a number for the overall token": b'[["JWT", 5], {"GPU-0": "a.b.c"}]',
    "another marker": b'[["JWS", "a.b.c"], {"GPU-0": "a.b.c"}]',
    "a list of device tokens": b'[["JWT", "a.b.c"], ["a.b.c"]]',
    "a number for a device token": b'[["JWT", "a.b.c"], {"GPU-0": 7}]',
    "a lone surrogate": b'[["JWT", "a.b.c"], {"GPU-0": "\\ud800"}]',
    "a third element of nested arrays": b'[["JWT", "a.b.c"], {"GPU-0": "a.b.c"}, ' + b"[" * 200 + b"]" * 200 + b"]",
}


@pytest.mark.parametrize("shape", sorted(WRONG_SHAPES))
async def test_an_answer_of_the_wrong_shape_is_nras_unavailable_not_bad_evidence(
    nras: Server, session: aiohttp.ClientSession, shape: str
) -> None:
    mock, base = nras
    mock.answer = WRONG_SHAPES[shape]
    with pytest.raises(UpstreamError) as exc:
        await NrasClient(session, base).attest(REQUEST)
    assert exc.value.reason == "nras_unavailable" and "not a detached EAT" in exc.value.message


@pytest.mark.parametrize("answer", [b'{"keys": [1, "k"]}', b'{"keys": [{"kid": "\\udc00"}]}', b'{"keys": {}}'])
async def test_a_jwks_of_the_wrong_shape_is_nras_unavailable(
    nras: Server, session: aiohttp.ClientSession, answer: bytes
) -> None:
    mock, base = nras
    mock.jwks_answer = answer
    with pytest.raises(UpstreamError) as exc:
        await NrasClient(session, base).jwks()
    assert exc.value.reason == "nras_unavailable"


class _Answer:
    """What NrasClient reads from an aiohttp response (status, content.iter_chunked), for a 200 with ``body``."""

    status = 200
    headers: dict[str, str] = {}  # noqa: RUF012  (a stand-in for aiohttp's read-only headers)

    def __init__(self, body: bytes) -> None:
        self.content, self._body = self, body

    async def iter_chunked(self, size: int) -> AsyncIterator[bytes]:
        yield self._body

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Session:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def request(self, *args: object, **kwargs: object) -> _Answer:
        return _Answer(self.body)


@settings(max_examples=150)
@given(
    st.one_of(
        mutated_json(Seed("nras_v3_response", json.loads(RESPONSE))), mutated_bytes(Seed("nras_v3_response", RESPONSE))
    )
)
def test_any_2xx_answer_is_returned_verbatim_or_nras_unavailable_never_another_error(body: bytes) -> None:
    client = NrasClient(_Session(body), "http://nras.invalid")  # type: ignore[arg-type]
    try:
        got = asyncio.run(client.attest(REQUEST))
    except UpstreamError as exc:
        assert exc.reason == "nras_unavailable"
        return
    assert got == body
    try:  # a well-shaped answer is judged by the token verifier: a fail or indeterminate, never a crash
        verify_nras_response(
            got,
            jwks=json.loads(JWKS),
            expected_nonce=bytes.fromhex(REQUEST["nonce"]),
            devices=gpu_identities(PAYLOAD.evidence),
            now=1782698900,
            anchors=production_anchors(),
        )
    except (CheckFailed, EvidenceError, Indeterminate) as exc:
        shape_errors = ("the NRAS response is not", "the NRAS response does not start")
        assert not exc.message.startswith(shape_errors), f"the client let a wrong shape through: {exc.message}"


async def test_a_wrong_shaped_nras_answer_makes_gpu_nras_indeterminate_not_fail() -> None:
    bundle = phala_flat()
    bundle = replace(bundle, nras={"jwks.json": bundle.nras["jwks.json"]})  # the answer is fetched, not in the bundle
    client = NrasClient(_Session(WRONG_SHAPES["an object"]), "http://nras.invalid")  # type: ignore[arg-type]
    ctx = Context(policy=default_policy(), now=PHALA_FLAT_AT, anchors=production_anchors(), nras=client)
    checks = {c["id"]: (c["status"], c["reason"]) for c in (await evaluate(bundle, ctx)).verdict.to_json()["checks"]}
    assert checks["gpu.nras"] == ("indeterminate", "nras_unavailable")
