"""One structured log line and the HTTP metrics per request (outermost middleware: it sees the final status)."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from verifier.web.auth import API_KEY, route_of
from verifier.web.errors import REQUEST_ID, SERVICES, Handler, request_id_of

log = logging.getLogger("verifier.access")
VERDICT = web.RequestKey("verdict", dict)


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[REQUEST_ID] = request_id_of(request)
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        duration = time.monotonic() - started
        route = route_of(request)
        route_name = route[1] if route is not None and request.match_info.http_exception is None else "unmatched"
        key = request.get(API_KEY)
        verdict = request.get(VERDICT) or {}
        log.info(
            "request",
            extra={
                "request_id": request[REQUEST_ID],
                "key_id": key.id if key else None,
                "method": request.method,
                "route": route_name,
                "path": request.path[:300],
                "status": status,
                "duration_ms": round(duration * 1000, 2),
                "verdict_id": verdict.get("id"),
                "verdict_status": verdict.get("status"),
                "remote": request.remote,
            },
        )
        services = request.app.get(SERVICES)
        if services is not None:
            services.metrics.http_requests.labels(route=route_name, status=str(status)).inc()
            services.metrics.http_seconds.labels(route=route_name).observe(duration)
