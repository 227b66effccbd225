"""One JSON error envelope for every non-2xx answer: ``{"error": {"code", "message", "field"?}, "request_id"}``.

Exceptions become answers here and only here: ``HTTPProblem`` (bad input, auth), ``Limited`` (429/503 with
``Retry-After``), ``LedgerBusy`` (503 ``ledger_busy``), ``UnknownVerdict`` (404). Anything else is a 500 that
never echoes exception text (the log has it, under the request id).
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from verifier.adapters.ledger import LedgerBusy, LedgerCorruptionError
from verifier.app.limits import Limited
from verifier.app.records import UnknownVerdict
from verifier.app.services import Services
from verifier.app.settings import Settings

log = logging.getLogger("verifier.web")

SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", Settings)
REQUEST_ID = web.RequestKey("request_id", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The `error.code` values of the envelope: stable public names, documented in README (tests/test_web.py).
ERROR_CODES: dict[str, str] = {
    "bad_request": "the input is wrong; `field` names where",
    "gateway_not_allowed": "the gateway is not in the server's allow-list",
    "body_too_large": "the request body is over the limit (413)",
    "unauthorized": "no API key, or an unknown or revoked one (401)",
    "forbidden": "the key's role may not use this route (403)",
    "not_found": "no such verification or key, or none this key may see (404)",
    "method_not_allowed": "the route exists, not with this method (405)",
    "rate_limited": "the key's rate limit is exceeded (429, Retry-After)",
    "upstream_budget_exhausted": "the gateway's upstream call budget is spent; nothing was called (429, Retry-After)",
    "overloaded": "too many bytes of evidence in flight; nothing was recorded (503, Retry-After)",
    "ledger_busy": "another process holds the ledger's write lock; nothing was recorded (503, Retry-After)",
    "ledger_corrupt": "the stored record is not what the verifier wrote (edited outside it); `verifier ledger check` "
    "lists every such edit (409)",
    "internal_error": "a bug; the log has it under the request id (500)",
    # the verifying proxy (`verifier proxy`)
    "upstream_unavailable": "proxy: the gateway could not be reached, or its answer was larger than the limit (502)",
    "upstream_timeout": "proxy: the gateway did not answer in time (504)",
    "verification_failed": "proxy: a ticket's verification could not run (budget, admission, ledger, a verifier worker "
    "that died); the completion itself was relayed (502)",
    "verification_backlog_full": "proxy: `--verify-backlog` completions are already waiting for verification; nothing "
    "was sent to the gateway (503, Retry-After)",
}


class HTTPProblem(Exception):
    def __init__(
        self, status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def bad_request(field: str | None, message: str, code: str = "bad_request") -> HTTPProblem:
    return HTTPProblem(400, code, message, field)


def envelope(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    request_id = request.get(REQUEST_ID, "")
    return web.json_response(
        {"error": error, "request_id": request_id},
        status=status,
        headers={"X-Request-Id": request_id, **(headers or {})},
    )


def request_id_of(request: web.Request) -> str:
    """The caller's X-Request-Id if it is short visible ASCII, else a fresh one (it is echoed and logged)."""
    given = request.headers.get("X-Request-Id", "")
    if 0 < len(given) <= 64 and all(33 <= ord(c) <= 126 for c in given):
        return given
    return secrets.token_hex(8)


@web.middleware
async def envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if REQUEST_ID not in request:
        request[REQUEST_ID] = request_id_of(request)
    try:
        response = await handler(request)
    except HTTPProblem as exc:
        return envelope(request, exc.status, exc.code, exc.message, exc.field, exc.headers)
    except Limited as exc:
        services = request.app.get(SERVICES)
        if services is not None:
            services.metrics.rejections.labels(limit=exc.code).inc()
        return envelope(request, exc.status, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after)})
    except LedgerBusy:
        settings = request.app.get(SETTINGS)
        retry = str(max(1, math.ceil(settings.db_busy_timeout))) if settings else "5"
        return envelope(
            request,
            503,
            "ledger_busy",
            "the ledger is locked by another writer; nothing was recorded, retry",
            headers={"Retry-After": retry},
        )
    except LedgerCorruptionError as exc:
        return envelope(request, 409, "ledger_corrupt", str(exc)[:500])
    except UnknownVerdict as exc:
        return envelope(request, 404, "not_found", f"no verification {str(exc.args[0])[:64]!r}", "id")
    except web.HTTPRequestEntityTooLarge:
        settings = request.app.get(SETTINGS)
        limit = settings.max_body_bytes if settings else "the limit of"
        return envelope(request, 413, "body_too_large", f"request body larger than {limit} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return envelope(request, exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except Exception:
        log.exception(
            "unhandled error in %s %s", request.method, request.path[:200], extra={"request_id": request[REQUEST_ID]}
        )
        return envelope(request, 500, "internal_error", "internal error; see the server log for this request id")
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    return response
