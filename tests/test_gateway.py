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
def test_classification_row_is_indeterminate_with_named_reason(
    status: int, body: bytes, what: str, reason: str
) -> None:
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
    assert seen == {
        "model": "phala/m",
        "nonce": bytes(range(32)).hex(),
        "signing_address": "0xabc",
        "signing_algo": "ecdsa",
        "auth": "Bearer sk-test-123",
    }


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_upstream_rejected_naming_the_location(status: int) -> None:
    with pytest.raises(UpstreamError) as err:
        classify(status, b"", what="report", url="http://gw", location="http://127.0.0.1:6666/evil")
    assert err.value.reason == "upstream_rejected" and "http://127.0.0.1:6666/evil" in err.value.message


async def test_redirects_are_never_followed_and_the_key_never_travels(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    hits = []

    async def target(request: web.Request) -> web.Response:
        hits.append(request.headers.get("Authorization"))
        return web.json_response({"evil": True})

    other = web.Application()
    other.router.add_get("/{tail:.*}", target)
    elsewhere = await aiohttp_server(other)

    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(str(elsewhere.make_url(request.path)))

    server = await aiohttp_server(_app(handler))
    async with aiohttp.ClientSession() as session:
        client = GatewayClient(session, str(server.make_url("/")), api_key="sk-test-123", retry=Retry(deadline=0))
        for call in (
            client.report(model="m", nonce=b"\x01" * 32, signing_address=None, signing_algo="ecdsa"),
            client.signature("c", model="m", signing_algo="ecdsa"),
        ):
            with pytest.raises(UpstreamError) as err:
                await call
            assert err.value.reason == "upstream_rejected" and "redirects are not followed" in err.value.message
    assert hits == []


@pytest.mark.parametrize("key", ["sk-live-0123456789", "ab", "Bearer sk-x"])
async def test_an_error_body_echoing_the_key_is_redacted_in_the_message(aiohttp_server, key: str) -> None:  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            status=403, text=f"key {request.headers['Authorization']} is not allowed; raw={key.split()[-1]}"
        )

    server = await aiohttp_server(_app(handler))
    async with aiohttp.ClientSession() as session:
        client = GatewayClient(session, str(server.make_url("/")), api_key=key)
        with pytest.raises(UpstreamError) as err:
            await client.report(model="m", nonce=b"\x01" * 32, signing_address=None, signing_algo="ecdsa")
    assert key.split()[-1] not in err.value.message and "[redacted]" in err.value.message


async def test_signature_retries_stop_when_the_call_budget_is_spent(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    calls = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(1)
        return web.json_response({"detail": "not found"}, status=404)

    class Budget:
        left = 3

        def take(self) -> bool:
            self.left -= 1
            return self.left >= 0

    server = await aiohttp_server(_app(handler))
    async with aiohttp.ClientSession() as session:
        client = GatewayClient(
            session, str(server.make_url("/")), retry=Retry(deadline=30, first_delay=0.01), calls=Budget()
        )
        with pytest.raises(Indeterminate) as err:
            await client.signature("x", model="m", signing_algo="ecdsa")
    assert err.value.reason == "signature_unavailable" and len(calls) == 3  # not 30 s of retries


async def test_the_answer_size_is_reserved_before_the_body_is_read(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=SIG, content_type="application/json")

    reserved = []

    async def reserve(n: int) -> None:
        reserved.append(n)

    server = await aiohttp_server(_app(handler))
    async with aiohttp.ClientSession() as session:
        client = GatewayClient(session, str(server.make_url("/")), reserve=reserve)
        assert await client.signature("c", model="m", signing_algo="ecdsa") == SIG
    assert reserved == [len(SIG)]


def test_a_key_that_is_not_printable_ascii_is_refused_before_any_call() -> None:
    from verifier.core.errors import ConfigError

    with pytest.raises(ConfigError):
        GatewayClient(None, "http://gw", api_key="sk-\u00e9")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        GatewayClient(None, "http://gw", api_key="sk\r\nX-Evil: 1")  # type: ignore[arg-type]


async def test_a_compressed_answer_is_capped_by_its_decoded_size_not_its_content_length(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        resp = web.json_response({"text": "a:b", "pad": "x" * 100_000})
        resp.enable_compression(web.ContentCoding.gzip)
        return resp

    reserved = []

    async def reserve(n: int) -> None:
        reserved.append(n)

    server = await aiohttp_server(_app(handler))
    async with aiohttp.ClientSession() as session:
        body = await GatewayClient(session, str(server.make_url("/")), reserve=reserve).report(
            model="m", nonce=b"\x01" * 32, signing_address=None, signing_algo="ecdsa"
        )
    assert len(body) > 100_000 and reserved == [16 * 1024 * 1024]  # the cap, not the compressed length
