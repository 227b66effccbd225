"""The audit dashboard: server-rendered pages (aiohttp-jinja2, autoescaped Jinja2 templates and one stylesheet
shipped as package data; no JavaScript, no CDN) over the ledger, behind a cookie login that takes an API key."""

from __future__ import annotations

import re

import jinja2
from aiohttp import web
from aiohttp_jinja2 import setup as jinja_setup

from verifier.web.ui.access import BANNER, ENDED, SIGNER, UI_ROLES, security_headers, ui_middleware
from verifier.web.ui.session import Signer

__all__ = ["setup_ui", "ui_middleware"]


def setup_ui(app: web.Application) -> None:
    """Add the dashboard's routes, templates and signing secret to ``app`` (its middleware is ``ui_middleware``)."""
    from verifier.web.ui.routes import UI_ROUTES

    jinja_setup(
        app,
        loader=jinja2.PackageLoader("verifier.web.ui", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.ChainableUndefined,
    )
    app[SIGNER], app[BANNER], app[ENDED] = Signer(), {}, {}
    app[UI_ROLES] = {(r.method, _canonical(r.path)): r.roles for r in UI_ROUTES}
    app.on_response_prepare.append(security_headers)
    for route in UI_ROUTES:
        app.router.add_route(route.method, route.path, route.handler)


def _canonical(path: str) -> str:
    """The router's canonical form of a path (a ``{name:regex}`` part is ``{name}``)."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)
