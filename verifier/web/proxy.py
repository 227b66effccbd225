"""The verifying proxy: an OpenAI-compatible front for one gateway that verifies every completion it relays.

``create_proxy_app(settings, mode=...)`` serves ``POST /v1/chat/completions`` and ``GET /v1/models`` (relayed to
``settings.default_gateway``) and ``GET /v1/verifications/{id}`` (a verdict, or a ticket's). A client changes only
its base URL and adds one header: ``Authorization`` stays the upstream gateway key (forwarded to the gateway and
used for the signature and report calls, never stored or logged); ``X-Verifier-Key`` carries this verifier's own
``submit`` key.

The request bytes are forwarded exactly; the response's bytes are returned exactly (a stream chunk by chunk as
they arrive) and captured for verification through ``Records.verify``, with the allow-listed response headers
(``headers.json``, for ``model.served``). Each completion has a one-connection ``Channel``: its TLS peer is recorded
(``tls.json``), its signature and report fetched on it while the gateway keeps it alive (``tls.binds_peer``). Modes:

- ``sync``: a JSON completion is held until its verdict is recorded; the answer carries ``X-Verification-Id``
  (the ledger id) and ``X-Verification-Status``. A stream is relayed at once with a ticket id; its verdict follows
  the stream (``GET /v1/verifications/{ticket}`` waits for it).
- ``async``: every completion is relayed at once with a ticket id and verified after it ends.

Upstream answers other than 2xx are relayed unchanged and not verified (nothing was signed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from verifier.adapters.channel import Channel, relay_session
from verifier.adapters.ledger import LedgerError
from verifier.adapters.tls_trust import upstream_ssl_context
from verifier.adapters.transport import BodyTooLarge, read_capped
from verifier.app.keys import Role
from verifier.app.limits import Limited
from verifier.app.services import open_services
from verifier.app.settings import Settings
from verifier.app.verify_pool import VerifierPool
from verifier.core.errors import Indeterminate, VerifierError
from verifier.engine.pipeline import Exchange
from verifier.evidence.served_model import RECORDED_HEADERS
from verifier.web import inputs
from verifier.web.access_log import access_log_middleware
from verifier.web.auth import API_KEY, INSECURE_KEY
from verifier.web.errors import REQUEST_ID, SERVICES, SETTINGS, Handler, HTTPProblem, bad_request, envelope_middleware
from verifier.web.pending import BACKLOG as DEFAULT_BACKLOG
from verifier.web.pending import Backlog, Pending, Slot

log = logging.getLogger("verifier.proxy")
MODES = ("sync", "async")
VERIFIER_KEY_HEADER = "X-Verifier-Key"
ID_HEADER, STATUS_HEADER, ERROR_HEADER = "X-Verification-Id", "X-Verification-Status", "X-Verification-Error"
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# caller headers relayed to the gateway (the request bytes themselves are relayed exactly)
FORWARDED = ("content-type", "accept", "authorization", "user-agent", "openai-organization", "openai-project")
# upstream headers NOT relayed back: hop-by-hop ones and the ones the proxy's own server sets
_NOT_RELAYED = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "proxy-authenticate",
        "proxy-connection",
        "date",
        "server",
        "set-cookie",
    }
)
MODE: web.AppKey[str] = web.AppKey("proxy_mode", str)
PENDING: web.AppKey[Pending] = web.AppKey("proxy_pending", Pending)
UPSTREAM: web.AppKey[aiohttp.ClientSession] = web.AppKey("proxy_upstream", aiohttp.ClientSession)
BACKLOG: web.AppKey[Backlog] = web.AppKey("proxy_backlog", Backlog)
SLOT: web.RequestKey[Slot] = web.RequestKey("proxy_backlog_slot", Slot)
CHANNEL: web.RequestKey[Channel] = web.RequestKey("proxy_channel", Channel)  # released by whoever verifies
VERDICT_WAIT = 60.0  # seconds GET on a ticket waits for its verification before answering 202


def verifier_key(request: web.Request) -> str | None:
    value = request.headers.get(VERIFIER_KEY_HEADER, "").strip()
    scheme, _, token = value.partition(" ")
    return (token.strip() if scheme.lower() == "bearer" else value) or None


def roles_for(request: web.Request) -> frozenset[Role]:
    if request.method == "GET" and request.path.startswith("/v1/verifications/"):
        return frozenset({Role.SUBMIT, Role.READ, Role.ADMIN})
    return frozenset({Role.SUBMIT, Role.ADMIN})


@web.middleware
async def proxy_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The verifier key is ``X-Verifier-Key`` (``Authorization`` is the caller's gateway key on every proxy route)."""
    if request.match_info.http_exception is not None or request.path == "/healthz":
        return await handler(request)
    services = request.app[SERVICES]
    if not request.app[SETTINGS].auth:
        key = INSECURE_KEY
    else:
        token = verifier_key(request)
        if token is None:
            raise HTTPProblem(401, "unauthorized", f"the proxy needs this verifier's API key in {VERIFIER_KEY_HEADER}")
        found = await services.authenticate(token)
        if found is None:
            raise HTTPProblem(401, "unauthorized", f"unknown or revoked API key in {VERIFIER_KEY_HEADER}")
        key = found
    request[API_KEY] = key
    roles = roles_for(request)
    if key.role not in roles:
        raise HTTPProblem(
            403,
            "forbidden",
            f"a {key.role} key may not use this route (it needs one of: {', '.join(sorted(str(r) for r in roles))})",
        )
    services.limiter.check(key.id)
    return await handler(request)


def _gateway_key(request: web.Request) -> str | None:
    """The caller's gateway key (``Authorization``), for the verification's upstream calls; never kept."""
    value = request.headers.get("Authorization", "").strip()
    if not value:
        return None
    if len(value) > inputs.MAX_UPSTREAM_KEY or not all(32 <= ord(c) <= 126 for c in value):
        raise bad_request("Authorization", "Authorization: expected printable ASCII")  # never echoed
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else value


def _requested_model(raw: bytes) -> tuple[str, bool]:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_request("body", "the request body is not JSON") from None
    if not isinstance(doc, dict):
        raise bad_request("body", "the request body is not a JSON object")
    model = inputs.name_field(doc.get("model"), "model", required=True)
    assert model is not None
    return model, doc.get("stream") is True


def _upstream_headers(request: web.Request) -> dict[str, str]:
    out = {name: request.headers[name] for name in FORWARDED if name in request.headers}
    out["Accept-Encoding"] = "identity"  # the captured bytes must be the bytes the gateway hashed
    return out


def _relayed(headers: CIMultiDict[str] | Any) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _NOT_RELAYED)


def recorded_headers(headers: Any) -> bytes:
    """headers.json: the allow-listed response headers (lower-case names; no credential can be among them)."""
    kept = {name: headers[name] for name in RECORDED_HEADERS if name in headers}
    return json.dumps(kept, sort_keys=True, separators=(",", ":")).encode()


async def _verify(request: web.Request, exchange: Exchange, api_key: str | None, owner: str) -> dict[str, Any]:
    svc, channel = request.app[SERVICES], request[CHANNEL]
    async with svc.admission.lease() as lease:
        await lease.reserve(len(exchange.request) + len(exchange.response))
        return await svc.records.verify(exchange, api_key=api_key, submitted_by=owner, lease=lease, channel=channel)


def _failure(exc: BaseException) -> str:
    if isinstance(exc, VerifierError):
        return exc.reason
    if isinstance(exc, Limited):
        return exc.code
    return "ledger_busy" if isinstance(exc, LedgerError) else "internal_error"


def _backlog_slot(request: web.Request) -> Slot:
    """This completion's place among those not yet verified; refused before the gateway is contacted when full."""
    slot = request.app[BACKLOG].slot()
    if slot is None:
        raise Limited(
            503,
            "verification_backlog_full",
            f"{request.app[BACKLOG].limit} completions are waiting for verification; nothing was sent to the "
            "gateway, retry shortly",
            1,
        )
    return slot


async def chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        return await _chat_completions(request)
    finally:
        slot, channel = request.get(SLOT), request.get(CHANNEL)
        if slot is not None and not slot.handed:
            slot.release()  # verified inline, or nothing to verify
        if channel is not None and not (slot is not None and slot.handed):
            await channel.release()


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    settings, mode = request.app[SETTINGS], request.app[MODE]
    raw = await request.read()
    model, _stream = _requested_model(raw)
    api_key = _gateway_key(request)
    owner = request[API_KEY].id
    request[SLOT] = _backlog_slot(request)
    url = f"{settings.default_gateway}/v1/chat/completions"
    channel = request[CHANNEL] = request.app[SERVICES].channel()  # the completion, then its signature and report
    try:
        async with channel.session.post(url, data=raw, headers=_upstream_headers(request), allow_redirects=False) as up:
            headers = _relayed(up.headers)
            headers["X-Request-Id"] = request[REQUEST_ID]
            if not 200 <= up.status < 300:  # relayed unchanged; nothing was signed, nothing is verified
                return web.Response(body=await read_capped(up, MAX_RESPONSE_BYTES), status=up.status, headers=headers)
            channel.peers.record(channel.peers.observe(up, "completion"))  # the verification then owns the channel
            exchange = Exchange(
                request=raw,
                response=b"",
                model=model,
                gateway=settings.default_gateway,
                headers=recorded_headers(up.headers),
            )
            streamed = mode == "async" or up.content_type == "text/event-stream"
            if not streamed:
                body = await read_capped(up, MAX_RESPONSE_BYTES)
            else:
                return await _relay(request, up, headers, exchange, api_key, owner)
    except BodyTooLarge:
        raise HTTPProblem(
            502, "upstream_unavailable", f"the gateway's answer is larger than {MAX_RESPONSE_BYTES} bytes"
        ) from None
    except TimeoutError:
        raise HTTPProblem(504, "upstream_timeout", "the gateway did not answer in time") from None
    except aiohttp.ClientError as exc:
        raise HTTPProblem(
            502, "upstream_unavailable", f"the gateway could not be reached ({type(exc).__name__})"
        ) from None
    exchange = _with_response(exchange, body)
    try:
        verdict = await _verify(request, exchange, api_key, owner)
        headers[ID_HEADER], headers[STATUS_HEADER] = str(verdict["id"]), str(verdict["status"])
    except (VerifierError, Limited, LedgerError) as exc:
        headers[STATUS_HEADER], headers[ERROR_HEADER] = "not_verified", _failure(exc)
    return web.Response(body=body, status=up.status, headers=headers)


def _with_response(exchange: Exchange, body: bytes) -> Exchange:
    return Exchange(
        request=exchange.request,
        response=body,
        model=exchange.model,
        gateway=exchange.gateway,
        headers=exchange.headers,
    )


async def _relay(
    request: web.Request,
    up: aiohttp.ClientResponse,
    headers: CIMultiDict[str],
    exchange: Exchange,
    api_key: str | None,
    owner: str,
) -> web.StreamResponse:
    """Relay the body chunk by chunk as it arrives, capture it, then verify it under a ticket minted up front."""
    ticket = Pending.mint()
    headers[ID_HEADER] = ticket
    resp = web.StreamResponse(status=up.status, headers=headers)
    if up.content_length is not None:
        resp.content_length = up.content_length
    await resp.prepare(request)
    chunks: list[bytes] = []
    size, client_gone, cut = 0, False, None
    try:
        async for chunk in up.content.iter_any():
            size += len(chunk)
            if size <= MAX_RESPONSE_BYTES:
                chunks.append(chunk)
            if not client_gone:
                try:
                    await resp.write(chunk)
                except (ConnectionError, RuntimeError):
                    client_gone = True  # keep reading: the completion was generated, and it is verified all the same
    except (aiohttp.ClientError, TimeoutError) as exc:  # the gateway reset or stalled mid-stream: the headers are sent
        cut = type(exc).__name__
    if cut is not None:
        work = _refuse(
            f"the gateway's stream was cut ({cut}) after {size} bytes: relayed in part, not verified",
            reason="upstream_unavailable",
        )
    elif size > MAX_RESPONSE_BYTES:
        work = _refuse(f"the response is larger than {MAX_RESPONSE_BYTES} bytes: relayed, not captured, not verified")
    else:
        work = _verify(request, _with_response(exchange, b"".join(chunks)), api_key, owner)
    request[SLOT].hand_to(request.app[PENDING].start(ticket, owner, request[CHANNEL].releasing_after(work)))
    if cut is not None:
        # never a clean end for a truncated stream (and never a second answer after these headers): the client sees
        # the connection close before the last chunk, and the ticket names why
        resp.force_close()
        if request.transport is not None:
            request.transport.close()
    elif not client_gone:
        await resp.write_eof()
    return resp


async def _refuse(message: str, reason: str = "upstream_garbled") -> dict[str, Any]:
    raise Indeterminate(message, reason=reason)


async def models(request: web.Request) -> web.Response:
    url = f"{request.app[SETTINGS].default_gateway}/v1/models"
    try:
        async with request.app[UPSTREAM].get(url, headers=_upstream_headers(request), allow_redirects=False) as up:
            body = await read_capped(up, MAX_RESPONSE_BYTES)
            headers = _relayed(up.headers)
            return web.Response(body=body, status=up.status, headers=headers)
    except (aiohttp.ClientError, TimeoutError, BodyTooLarge) as exc:
        raise HTTPProblem(
            502, "upstream_unavailable", f"the gateway could not be reached ({type(exc).__name__})"
        ) from None


async def get_verification(request: web.Request) -> web.Response:
    """A verdict by ledger id, or a ticket's verdict (waiting for it up to ``?wait=`` seconds, default 60)."""
    verdict_id = request.match_info["id"]
    key = request[API_KEY]
    owner = key.id if key.role is Role.SUBMIT else None
    pending = request.app[PENDING]
    if not pending.is_ticket(verdict_id):
        verdict = await request.app[SERVICES].records.get(inputs.verdict_id(request), submitted_by=owner)
        return web.json_response(verdict)
    ticket = pending.get(verdict_id, owner=owner)
    if ticket is None:
        raise HTTPProblem(
            404, "not_found", f"no verification {verdict_id!r} (tickets live in this proxy's memory)", "id"
        )
    wait = inputs.int_param(request, "wait", 0, 600)
    try:
        verdict = await asyncio.wait_for(asyncio.shield(ticket.task), VERDICT_WAIT if wait is None else wait)
    except TimeoutError:
        return web.json_response({"ticket": verdict_id, "status": "pending"}, status=202)
    except (VerifierError, Limited, LedgerError) as exc:
        raise HTTPProblem(502, "verification_failed", f"the verification could not run: {_failure(exc)}") from None
    return web.json_response(verdict, headers={"Location": f"/v1/verifications/{verdict['id']}"})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_proxy_app(
    settings: Settings,
    *,
    mode: str = "sync",
    clock: Callable[[], float] = time.time,
    verify_workers: int = 0,
    verify_nice: int = 10,
    backlog: int = DEFAULT_BACKLOG,
) -> web.Application:
    """``verify_workers`` > 0: verification runs in that many worker processes at niceness ``verify_nice``
    (``app.verify_pool``); 0: in this process (on the engine's worker thread). ``backlog``: completions accepted and
    not yet verified, beyond which a completion request is a 503 ``verification_backlog_full``."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {MODES}")
    if verify_workers > 0 and settings.db_path == ":memory:":
        raise ValueError("verifier workers need a ledger file (they read its reuse index), not :memory:")
    app = web.Application(
        middlewares=[access_log_middleware, envelope_middleware, proxy_auth_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS], app[MODE], app[PENDING], app[BACKLOG] = settings, mode, Pending(), Backlog(backlog)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/verifications/{id}", get_verification)
    app.router.add_get("/healthz", healthz)

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        # the relay's own session (model lists; each completion has a channel of its own)
        relay = relay_session(upstream_ssl_context(settings.ca_file), read_timeout=settings.upstream_timeout)
        # with workers, this process's own dcap pool only answers readiness: one dcap-qvl process is enough
        own = replace(settings, dcap_workers=1) if verify_workers > 0 else settings
        async with open_services(own, clock=clock) as services, relay as upstream:
            app[SERVICES], app[UPSTREAM] = services, upstream
            pool: VerifierPool | None = None
            if verify_workers > 0:
                pool = VerifierPool(
                    settings,
                    services.policy,
                    services.refs,
                    workers=verify_workers,
                    nice=verify_nice,
                    collateral_store=services.collateral.store,
                )
                await pool.start()  # ready before the first request; a worker that cannot start stops the proxy
                services.verifiers = pool
            try:
                yield
                await app[PENDING].drain(timeout=30.0)
            finally:
                if pool is not None:
                    services.verifiers = None
                    await pool.close()

    app.cleanup_ctx.append(services_ctx)
    return app
