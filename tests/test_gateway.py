"""The upstream classification table, row by row, against a loopback gateway: nothing becomes pass."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from verifier.adapters.gateway import GatewayClient, Retry, classify
from verifier.core.errors import Indeterminate, UpstreamError

SIG = b'{"text": "a:b", "signature": "0x00", "signing_address": "0x00", "signing_algo": "ecdsa"}'


@pytest.mark.parametrize(
    ("status", "body", "what", "reason"),
    [
        (429, b"{}", "report", "upstream_rate_limited"),
        (500, b"{}", "report", "upstream_unavailable"),
        (503, b"<html>", "signature", "upstream_unavailable"),
        (404, b'{"detail": "Chat id not found or expired"}', "signature", "signature_unavailable"),
        (404, b"{}", "report", "upstream_rejected"),
        (401, b'{"error": "bad key"}', "report", "upstream_rejected"),
        (200, b"<html>proxy error</html>", "report", "upstream_garbled"),
        (200, b"[1, 2]", "report", "upstream_garbled"),
        (200, b"", "signature", "upstream_garbled"),
        (200, b"\xff\xfe", "signature", "upstream_garbled"),
    ],
)
def test_classification_row_is_indeterminate_with_named_reason(status: int, body: bytes, what: str, reason: str) -> None:
    with pytest.raises(Indeterminate) as err:
        classify(status, body, what=what, url="http://gw")
    assert err.value.reason == reason


def test_a_2xx_json_object_is_evidence_for_the_checks() -> None:
    classify(200, SIG, what="signature", url="http://gw")


def _app(handler) -> web.Application:  # type: ignore[no-untyped-def]
    app = web.Application()
    app.router.add_get("/v1/signature/{id}", handler)
    app.router.add_get("/v1/attestation/report", handler)
    return app


async def test_signature_is_retried_until_it_appears(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    calls = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.query.get("model"))
        if len(calls) < 3:
            return web.json_response({"detail": "Chat id not found or expired"}, status=404)
        return web.Response(body=SIG, content_type="application/json")

    server = await aiohttp_server(_app(handler))
    async with aiohttp.ClientSession() as session:
        client = GatewayClient(session, str(server.make_url("/")), retry=Retry(deadline=5, first_delay=0.01))
        body = await client.signature("chatcmpl-1", model="m", signing_algo="ecdsa")
    assert body == SIG and calls == ["m", "m", "m"]


async def test_signature_404_past_the_deadline_is_signature_unavailable(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"detail": "not found"}, status=404)

    server = await aiohttp_server(_app(handler))
    async with aiohttp.ClientSession() as session:
        client = GatewayClient(session, str(server.make_url("/")), retry=Retry(deadline=0.1, first_delay=0.02))
        with pytest.raises(Indeterminate) as err:
            await client.signature("x", model="m", signing_algo="ecdsa")
    assert err.value.reason == "signature_unavailable"


async def test_timeout_is_upstream_timeout(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(body=b"{}")

    server = await aiohttp_server(_app(handler))
    async with aiohttp.ClientSession() as session:
        client = GatewayClient(session, str(server.make_url("/")), timeout=0.2)
        with pytest.raises(UpstreamError) as err:
            await client.report(model="m", nonce=b"\x01" * 32, signing_address=None, signing_algo="ecdsa")
    assert err.value.reason == "upstream_timeout"


async def test_connection_refused_is_upstream_unavailable(unused_tcp_port: int) -> None:
    async with aiohttp.ClientSession() as session:
        client = GatewayClient(session, f"http://127.0.0.1:{unused_tcp_port}")
        with pytest.raises(UpstreamError) as err:
            await client.report(model="m", nonce=b"\x01" * 32, signing_address=None, signing_algo="ecdsa")
    assert err.value.reason == "upstream_unavailable"


async def test_report_request_carries_nonce_signer_and_algo_and_the_api_key(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    seen = {}

    async def handler(request: web.Request) -> web.Response:
        seen.update(request.query)
        seen["auth"] = request.headers.get("Authorization")
        return web.json_response({})

    server = await aiohttp_server(_app(handler))
    async with aiohttp.ClientSession() as session:
        client = GatewayClient(session, str(server.make_url("/")), api_key="sk-test-123")
        await client.report(model="phala/m", nonce=bytes(range(32)), signing_address="0xabc", signing_algo="ecdsa")
    assert seen == {"model": "phala/m", "nonce": bytes(range(32)).hex(), "signing_address": "0xabc", "signing_algo": "ecdsa",
                    "auth": "Bearer sk-test-123"}
