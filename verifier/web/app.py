"""``create_app(settings)``: the only way to build the HTTP application.

Middlewares, outermost first: the access log (one JSON line and the HTTP metrics per request), the error
envelope, authentication, the dashboard's cookie sessions (``/ui/`` only). The services (ledger threads, HTTP
session, dcap workers, limits, metrics) are opened on startup and closed on cleanup. The caller's gateway key
(``X-Upstream-Authorization``) is used for the upstream calls only: it is never stored, logged or echoed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from verifier.app.services import open_services
from verifier.app.settings import Settings
from verifier.web import protocol_errors
from verifier.web.access_log import access_log_middleware
from verifier.web.auth import ROLES, auth_middleware
from verifier.web.errors import SERVICES, SETTINGS, envelope_middleware
from verifier.web.routes import ROUTES
from verifier.web.ui import setup_ui, ui_middleware

protocol_errors.install()  # malformed HTTP is answered and logged without the raw request text

log = logging.getLogger("verifier.web")
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> web.Application:
    app = web.Application(
        middlewares=[access_log_middleware, envelope_middleware, auth_middleware, ui_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS], app[CLOCK] = settings, clock
    app[ROLES] = {(r.method, r.path): r.roles for r in ROUTES}
    app.cleanup_ctx.append(_services_ctx)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    setup_ui(app)  # the audit dashboard under /ui/: its own route table and cookie sessions (verifier.web.ui)
    if not settings.auth:
        log.warning("authentication is OFF (--insecure-no-auth): every caller is an admin")
    return app


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_services(app[SETTINGS], clock=app[CLOCK]) as services:
        app[SERVICES] = services
        await services.jobs.resume_unfinished()  # re-verification jobs a restart (or kill -9) interrupted
        yield
