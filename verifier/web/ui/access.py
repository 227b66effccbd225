"""Who may see the dashboard: cookie sessions, roles per page, CSRF on every form, security headers, HTML errors.

The dashboard has its own route table (``verifier.web.ui.routes.UI_ROUTES``, each page with its roles) and this
one middleware; the API's bearer middleware treats ``/ui/`` routes as its public ones and leaves them to it.
A page needs a session of a ``read`` or ``admin`` key (a ``submit`` key sees only its own verdicts, so it has no
dashboard; a ``metrics`` key has none either). No session: a GET is sent to the login form (303), a POST is a 401.
A key whose role the page does not admit: 403. Every POST must carry the session's CSRF token (403 without).
With authentication off (``--insecure-no-auth``, loopback only) every visitor is an admin.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
from aiohttp import web

from verifier.adapters.ledger import LedgerBusy
from verifier.adapters.ledger.audit import profiles
from verifier.adapters.ledger.keys import find_key
from verifier.app.keys import ApiKey, Role
from verifier.app.limits import Limited
from verifier.app.records import UnknownVerdict
from verifier.web.auth import INSECURE_KEY, route_of
from verifier.web.errors import SERVICES, SETTINGS, Handler, HTTPProblem
from verifier.web.ui.session import COOKIE, LIFETIME_S, Session, Signer

UI_KEY = web.RequestKey("ui_key", ApiKey)
UI_SESSION = web.RequestKey("ui_session", Session)
SIGNER = web.AppKey("ui_signer", Signer)
UI_ROLES: web.AppKey[dict[tuple[str, str], frozenset[Role] | None]] = web.AppKey("ui_roles")
BANNER: web.AppKey[dict[str, Any]] = web.AppKey("ui_banner")
ENDED: web.AppKey[dict[str, int]] = web.AppKey("ui_ended_sessions")  # logged-out cookie values → their expiry
DASHBOARD_ROLES = frozenset({Role.READ, Role.ADMIN})
NO_AUTH_ID = "0" * 16
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make a browser send `Origin: null` on our forms
    "Cache-Control": "no-store",
}


def is_ui(request: web.Request) -> bool:
    return request.path == "/ui" or request.path.startswith("/ui/")


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every dashboard answer (pages, exports, errors, redirects) gets the headers."""
    if is_ui(request):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)


async def _key_of(request: web.Request, session: Session | None) -> ApiKey | None:
    if session is None:
        return None
    if session.key_id == NO_AUTH_ID and not request.app[SETTINGS].auth:
        return INSECURE_KEY
    row = await request.app[SERVICES].recorder.read(lambda ledger: find_key(ledger, session.key_id))
    if row is None or row.revoked_at is not None:
        return None
    return ApiKey(id=row.id, role=Role(row.role), name=row.name, created_at=row.created_at)


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    response = aiohttp_jinja2.render_template(
        "error.html", request, {"status": status, "message": message, "banner": service_banner(request)}, status=status
    )
    return response


@web.middleware
async def ui_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_ui(request):
        return await handler(request)
    try:
        return await _guarded(request, handler)
    except HTTPProblem as exc:
        return error_page(request, exc.status, exc.message)
    except UnknownVerdict as exc:
        return error_page(request, 404, f"no verification {str(exc.args[0])[:64]}")
    except Limited as exc:
        return error_page(request, exc.status, exc.message)
    except LedgerBusy:
        return error_page(request, 503, "the ledger is locked by another writer; nothing was recorded, retry")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_page(request, exc.status, exc.reason)


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_of(request)
    if route is None or request.match_info.http_exception is not None:
        raise request.match_info.http_exception or web.HTTPNotFound()
    roles = request.app[UI_ROLES].get(route)
    signer = request.app[SIGNER]
    now = time.time()
    session = signer.verify(request.cookies.get(COOKIE), now=now)
    if session is not None and session.value in request.app[ENDED]:
        session = None  # logged out: the cookie is dead even if a copy of it was kept
    if not request.app[SETTINGS].auth and session is None:
        session = _no_auth_session(request, now)
    key = await _key_of(request, session)
    if key is not None and session is not None:
        request[UI_KEY], request[UI_SESSION] = key, session
    if roles is None:
        return await handler(request)
    if key is None or session is None:
        if request.method == "GET":
            return see_other(f"/ui/login?next={quote(request.path_qs, safe='')}")
        raise HTTPProblem(401, "unauthorized", "log in first: this form needs a session")
    if key.role not in roles:
        raise HTTPProblem(
            403,
            "forbidden",
            f"a {key.role} key may not use this page (it needs one of: {', '.join(sorted(str(r) for r in roles))})",
        )
    if request.method == "POST":
        form = await request.post()
        if not signer.csrf_ok(session, form.get("csrf")):
            raise HTTPProblem(403, "forbidden", "the form's CSRF token is missing or wrong: reload the page and retry")
    request.app[SERVICES].limiter.check(key.id)
    return await handler(request)


def _no_auth_session(request: web.Request, now: float) -> Session:
    """Without authentication: one shared session (re-issued at expiry), so its forms still carry a CSRF token."""
    shared = request.app[BANNER]
    current = shared.get("no_auth_session")
    if not isinstance(current, Session) or current.expires <= now + 60:
        current = shared["no_auth_session"] = request.app[SIGNER].issue(NO_AUTH_ID, now=now)
    return current


async def banner(request: web.Request) -> dict[str, Any]:
    """The trust profiles on this page's banner: the service's, and those among the newest verdicts (cached 30 s)."""
    cached = request.app[BANNER]
    if cached.get("at", 0.0) + 30 < time.monotonic():
        seen = await request.app[SERVICES].recorder.read(profiles)
        cached.update(at=time.monotonic(), seen=seen)
    service = request.app[SETTINGS].trust_profile
    seen = list(cached.get("seen", []))
    return {"service": service, "seen": seen, "simulator": service == "simulator" or "simulator" in seen}


def service_banner(request: web.Request) -> dict[str, Any]:
    """The banner before login (the ledger is not read for a visitor without a session)."""
    service = request.app[SETTINGS].trust_profile
    return {"service": service, "seen": [], "simulator": service == "simulator"}


def _safe_next(value: str | None) -> str:
    """Only a path on this dashboard (never another host): an open redirect would help phishing."""
    if not value or not value.startswith("/ui/") or value.startswith("//") or urlsplit(value).netloc:
        return "/ui/"
    return value


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request, _safe_next(request.query.get("next")))


def _login_page(request: web.Request, target: str, error: str | None = None, status: int = 200) -> web.Response:
    values: dict[str, Any] = {"next": target, "banner": service_banner(request)}
    if error is not None:
        values["error"] = error
    return aiohttp_jinja2.render_template("login.html", request, values, status=status)


async def login(request: web.Request) -> web.StreamResponse:
    """Exchange an API key (read or admin) for a session cookie; the key itself is never stored in the cookie."""
    if not _same_origin(request):
        raise HTTPProblem(403, "forbidden", "login from another origin refused")
    form = await request.post()
    secret, target = form.get("key"), _safe_next(str(form.get("next") or ""))
    if not isinstance(secret, str) or not secret.strip():
        return _login_page(request, target, "an API key is required", 401)
    key = await request.app[SERVICES].authenticate(secret.strip())
    if key is None:
        return _login_page(request, target, "unknown or revoked API key", 401)
    if key.role not in DASHBOARD_ROLES:
        return _login_page(request, target, f"a {key.role} key has no dashboard: use a read or admin key", 403)
    session = request.app[SIGNER].issue(key.id, now=time.time())
    response = see_other(target)
    response.set_cookie(
        COOKIE, session.value, max_age=LIFETIME_S, path="/ui", httponly=True, samesite="Strict", secure=request.secure
    )
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    ended, now = request.app[ENDED], time.time()
    for value in [v for v, expires in ended.items() if expires <= now]:
        del ended[value]  # past its expiry a cookie is refused anyway
    session = request[UI_SESSION]
    ended[session.value] = session.expires
    response = see_other("/ui/login")
    response.del_cookie(COOKIE, path="/ui")
    return response
