"""Bearer API keys and roles, one middleware. Each route declares the roles it admits (``routes.ROUTES``);
a route without roles is public (``/healthz``, ``/readyz``, ``/openapi.json``).

Missing or unknown key → 401 (with ``WWW-Authenticate: Bearer``); a key whose role the route does not admit →
403; both in the error envelope. An authenticated key then passes its own rate limit (429 with
``Retry-After``). With ``Settings.auth`` off (``--insecure-no-auth``, loopback only) every caller is an admin.
"""

from __future__ import annotations

from aiohttp import web

from verifier.app.keys import ApiKey, Role
from verifier.web.errors import SERVICES, SETTINGS, Handler, HTTPProblem

API_KEY = web.RequestKey("api_key", ApiKey)
ROLES: web.AppKey[dict[tuple[str, str], frozenset[Role] | None]] = web.AppKey("route_roles")
INSECURE_KEY = ApiKey(id="no-auth", role=Role.ADMIN, name="--insecure-no-auth", created_at=0.0)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="verifier"'}


def route_of(request: web.Request) -> tuple[str, str] | None:
    resource = request.match_info.route.resource
    return None if resource is None else (request.method, resource.canonical)


def bearer_token(request: web.Request) -> str | None:
    headers = request.headers.getall("Authorization", [])
    if len(headers) != 1:  # none, or an ambiguous pair a front proxy may read the other way (RFC 9110 §5.3)
        return None
    header = headers[0]
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_of(request)
    if route is None or request.match_info.http_exception is not None:
        return await handler(request)  # 404 / 405: nothing to protect
    roles = request.app[ROLES].get(route)
    if roles is None:
        return await handler(request)
    services = request.app[SERVICES]
    if not request.app[SETTINGS].auth:
        key = INSECURE_KEY
    else:
        token = bearer_token(request)
        if token is None:
            raise HTTPProblem(
                401, "unauthorized", "this route needs an API key: Authorization: Bearer <key>", headers=_CHALLENGE
            )
        found = await services.authenticate(token)
        if found is None:
            raise HTTPProblem(401, "unauthorized", "unknown or revoked API key", headers=_CHALLENGE)
        key = found
    request[API_KEY] = key
    if key.role not in roles:
        raise HTTPProblem(
            403,
            "forbidden",
            f"a {key.role} key may not use this route (it needs one of: {', '.join(sorted(str(r) for r in roles))})",
        )
    services.limiter.check(key.id)
    return await handler(request)


def owner_scope(request: web.Request) -> str | None:
    """The key id a submit key's reads are limited to (its own verdicts); None for read/admin keys."""
    key = request[API_KEY]
    return key.id if key.role is Role.SUBMIT else None
