"""HTTP API (aiohttp). ``create_app(settings)`` is the only way to build the application.

The HTTP status describes the request; the verdict describes the evidence (a `fail` verdict is a
201). Errors share one JSON envelope with the request id; a 500 never echoes exception text. The
caller's gateway key (``X-Upstream-Authorization``) is used for the upstream calls only: it is never
stored, logged or echoed.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from verifier.app.services import Services, open_services
from verifier.app.settings import Settings
from verifier.core.errors import ConfigError
from verifier.core.model import Status
from verifier.engine.evaluate import evaluate
from verifier.engine.pipeline import Exchange, InputError, verify_exchange
from verifier.evidence.bundle import MAX_UNIX_SECONDS
from verifier.openapi import openapi_document

log = logging.getLogger("verifier.web")

SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", Settings)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
REQUEST_ID = web.RequestKey("request_id", str)

UPSTREAM_KEY_HEADER = "X-Upstream-Authorization"
STATUSES = {s.value for s in Status} - {"skipped"}


class HTTPProblem(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _envelope(request: web.Request, status: int, code: str, message: str, field: str | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    return web.json_response({"error": error, "request_id": request.get(REQUEST_ID, "")}, status=status,
                             headers={"X-Request-Id": request.get(REQUEST_ID, "")})


@web.middleware
async def envelope_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    request[REQUEST_ID] = request.headers.get("X-Request-Id", "")[:64] or secrets.token_hex(8)
    try:
        response = await handler(request)
    except HTTPProblem as exc:
        return _envelope(request, exc.status, exc.code, exc.message, exc.field)
    except web.HTTPRequestEntityTooLarge:
        return _envelope(request, 413, "body_too_large", f"request body larger than {request.app[SETTINGS].max_body_bytes} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _envelope(request, exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except Exception:
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path, request[REQUEST_ID])
        return _envelope(request, 500, "internal_error", "internal error; see the server log for this request id")
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    return response


# ------------------------------------------------------------------ handlers


def _text_field(body: dict[str, Any], name: str) -> bytes | None:
    """`name` (UTF-8 text) or `name_b64` (exact bytes); exactly one of them."""
    text, b64 = body.get(name), body.get(f"{name}_b64")
    if text is not None and b64 is not None:
        raise HTTPProblem(400, "bad_request", f"give either {name} or {name}_b64, not both", name)
    if text is not None:
        if not isinstance(text, str):
            raise HTTPProblem(400, "bad_request", f"{name}: expected a string (the exact text), got {type(text).__name__}", name)
        return text.encode("utf-8")
    if b64 is not None:
        if not isinstance(b64, str):
            raise HTTPProblem(400, "bad_request", f"{name}_b64: expected a base64 string", f"{name}_b64")
        try:
            return base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPProblem(400, "bad_request", f"{name}_b64: not valid base64", f"{name}_b64") from None
    return None


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise HTTPProblem(400, "bad_request", "body: not valid JSON") from None
    if not isinstance(body, dict):
        raise HTTPProblem(400, "bad_request", f"body: expected a JSON object, got {type(body).__name__}")
    return body


async def post_verification(request: web.Request) -> web.Response:
    svc, settings = request.app[SERVICES], request.app[SETTINGS]
    body = await _json_body(request)
    allowed = {"request", "request_b64", "response", "response_b64", "model", "chat_id", "gateway", "signing_algo"}
    for key in body:
        if key not in allowed:
            raise HTTPProblem(400, "bad_request", f"{key}: unknown field; allowed: {', '.join(sorted(allowed))}", key)
    req_bytes, resp_bytes = _text_field(body, "request"), _text_field(body, "response")
    if req_bytes is None:
        raise HTTPProblem(400, "bad_request", "request: required (or request_b64)", "request")
    if resp_bytes is None:
        raise HTTPProblem(400, "bad_request", "response: required (or response_b64)", "response")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise HTTPProblem(400, "bad_request", "model: required, a non-empty string", "model")
    chat_id = body.get("chat_id")
    if chat_id is not None and (not isinstance(chat_id, str) or not chat_id):
        raise HTTPProblem(400, "bad_request", "chat_id: expected a non-empty string", "chat_id")
    algo = body.get("signing_algo", "ecdsa")
    if algo not in ("ecdsa", "ed25519"):
        raise HTTPProblem(400, "bad_request", f"signing_algo: got {algo!r}, expected 'ecdsa' or 'ed25519'", "signing_algo")
    gateway_url = body.get("gateway", settings.default_gateway)
    try:
        gateway_url = settings.gateway_allowed(gateway_url if isinstance(gateway_url, str) else "")
    except ConfigError as exc:
        raise HTTPProblem(400, "gateway_not_allowed", exc.message, "gateway") from None

    api_key = request.headers.get(UPSTREAM_KEY_HEADER) or None
    gateway = svc.gateway(gateway_url, api_key=api_key)
    exchange = Exchange(request=req_bytes, response=resp_bytes, model=model, gateway=gateway_url, chat_id=chat_id, signing_algo=algo)
    try:
        evaluation = await verify_exchange(exchange, gateway=gateway, ctx=svc.context(), prior=svc.recorder)
    except InputError as exc:
        raise HTTPProblem(400, "bad_request", exc.message, "chat_id") from None
    verdict_id = await svc.recorder.save(evaluation.verdict.to_json(), evaluation.bundle,
                                         secrets=(api_key,) if api_key and len(api_key) >= 8 else ())
    verdict = evaluation.verdict.with_id(verdict_id)
    log.info("verdict %s %s model=%s signer=%s", verdict_id, verdict.status, model, verdict.subject.signer)
    return web.json_response(verdict.to_json(), status=201, headers={"Location": f"/v1/verifications/{verdict_id}"})


async def get_verification(request: web.Request) -> web.Response:
    verdict = await request.app[SERVICES].recorder.get(request.match_info["id"])
    if verdict is None:
        raise HTTPProblem(404, "not_found", f"no verification {request.match_info['id']!r}", "id")
    return web.json_response(verdict)


def _int_param(request: web.Request, name: str, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise HTTPProblem(400, "bad_request", f"{name}: got {raw!r}, expected an integer", name) from None
    if not lo <= value <= hi:
        raise HTTPProblem(400, "bad_request", f"{name}: got {value}, expected {lo}..{hi}", name)
    return value


async def list_verifications(request: web.Request) -> web.Response:
    q = request.query
    unknown = set(q) - {"status", "model", "signer", "since", "until", "limit", "cursor"}
    if unknown:
        name = sorted(unknown)[0]
        raise HTTPProblem(400, "bad_request", f"{name}: unknown query parameter", name)
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise HTTPProblem(400, "bad_request", f"status: got {status!r}, expected one of {sorted(STATUSES)}", "status")
    filters: dict[str, Any] = {
        "status": status, "model": q.get("model"), "signer": q.get("signer"),
        "since": _int_param(request, "since", 0, MAX_UNIX_SECONDS), "until": _int_param(request, "until", 0, MAX_UNIX_SECONDS),
        "limit": _int_param(request, "limit", 1, 500) or 50, "cursor": q.get("cursor"),
    }
    try:
        items, cursor = await request.app[SERVICES].recorder.list(**filters)
    except ValueError as exc:
        raise HTTPProblem(400, "bad_request", f"cursor: {exc}", "cursor") from None
    return web.json_response({"items": items, "next_cursor": cursor})


async def get_bundle(request: web.Request) -> web.Response:
    verdict_id = request.match_info["id"]
    bundle = await request.app[SERVICES].recorder.bundle(verdict_id)
    if bundle is None:
        raise HTTPProblem(404, "not_found", f"no verification {verdict_id!r}", "id")
    return web.Response(body=bundle.to_zip(), content_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{verdict_id}.zip"'})


async def reverify(request: web.Request) -> web.Response:
    """Re-evaluate a stored bundle (offline, current policy) into a new verdict that supersedes the old one."""
    svc = request.app[SERVICES]
    verdict_id = request.match_info["id"]
    body = await _json_body(request) if request.can_read_body else {}
    at = body.get("at")
    if at is not None and (not isinstance(at, int) or isinstance(at, bool) or not 0 <= at <= MAX_UNIX_SECONDS):
        raise HTTPProblem(400, "bad_request", f"at: got {at!r:.40}, expected unix seconds 0..{MAX_UNIX_SECONDS}", "at")
    old, bundle = await svc.recorder.get(verdict_id), await svc.recorder.bundle(verdict_id)
    if old is None or bundle is None:
        raise HTTPProblem(404, "not_found", f"no verification {verdict_id!r}", "id")
    evaluation = await evaluate(bundle, svc.offline_context(now=at if at is not None else int(svc.clock())),
                                supersedes=verdict_id)
    new_id = await svc.recorder.save(evaluation.verdict.to_json(), evaluation.bundle)
    return web.json_response(evaluation.verdict.with_id(new_id).to_json(), status=201,
                             headers={"Location": f"/v1/verifications/{new_id}"})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    db_ok = await request.app[SERVICES].recorder.healthy()
    workers_ok = request.app[SERVICES].pool.alive()
    body = {"status": "ready" if db_ok and workers_ok else "not_ready", "database": db_ok, "dcap_workers": workers_ok}
    return web.json_response(body, status=200 if db_ok and workers_ok else 503)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


# ------------------------------------------------------------------ wiring


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> web.Application:
    app = web.Application(middlewares=[envelope_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS], app[CLOCK] = settings, clock
    app.cleanup_ctx.append(_services_ctx)
    app.router.add_post("/v1/verifications", post_verification)
    app.router.add_get("/v1/verifications", list_verifications)
    app.router.add_get("/v1/verifications/{id}", get_verification)
    app.router.add_get("/v1/verifications/{id}/bundle", get_bundle)
    app.router.add_post("/v1/verifications/{id}/reverify", reverify)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi)
    return app


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_services(app[SETTINGS], clock=app[CLOCK]) as services:
        app[SERVICES] = services
        yield
