"""NRAS HTTP client against a loopback mock NRAS (aiohttp test server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from verifier.adapters.nras_client import NrasClient
from verifier.core.errors import UpstreamError
from verifier.core.trust import production_anchors
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
        self.jwks_mode = "ok"
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
        return web.Response(body=RESPONSE, content_type="application/json")

    async def jwks(self, request: web.Request) -> web.StreamResponse:
        self.jwks_hits += 1
        if self.jwks_mode == "garbage":
            return web.Response(status=200, text="[1, 2]")
        if self.jwks_mode == "503":
            return web.Response(status=503)
        return web.Response(body=JWKS, content_type="application/json")


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
    result = verify_nras_response(body, jwks=await client.jwks(), expected_nonce=bytes.fromhex(REQUEST["nonce"]),
                                  devices=gpu_identities(PAYLOAD.evidence),
                                  now=1782698900, anchors=production_anchors())
    assert result.overall


@pytest.mark.parametrize(("mode", "needle"), [("500", "HTTP 500"), ("429", "HTTP 429"), ("400", "HTTP 400"), ("garbage", "not JSON")])
async def test_faults_are_nras_unavailable(nras: Server, session: aiohttp.ClientSession, mode: str, needle: str) -> None:
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


async def test_jwks_is_cached_and_an_unknown_kid_triggers_one_refetch(nras: Server, session: aiohttp.ClientSession) -> None:
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
