"""The dashboard's access matrix: every /ui/ route × (no cookie, a forged cookie, a logged-out cookie, a read
session, an admin session) answers as its roles in ``UI_ROUTES`` say; forms need the session's CSRF token. The job
routes use two queued jobs made by the service's job code (one to cancel, one to resume)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ui_env import CSRF, queued_job, seed
from web_env import DOC, Env, start

from verifier.app.keys import Role
from verifier.web.ui.routes import UI_ROUTES
from verifier.web.ui.session import COOKIE

OPEN = {("GET", "/ui/login"): 200, ("POST", "/ui/login"): 401, ("GET", "/ui/static/ui.css"): 200}
EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    **{route: dict.fromkeys(("none", "forged", "ended", "read", "admin"), status) for route, status in OPEN.items()},
    ("POST", "/ui/logout"): {"none": 401, "forged": 401, "ended": 401, "read": 303, "admin": 303},
    ("POST", "/ui/verifications/{id}/reverify"): {"none": 401, "forged": 401, "ended": 401, "read": 403, "admin": 303},
    ("POST", "/ui/jobs/{id}/cancel"): {"none": 401, "forged": 401, "ended": 401, "read": 403, "admin": 303},
    ("POST", "/ui/jobs/{id}/resume"): {"none": 401, "forged": 401, "ended": 401, "read": 403, "admin": 303},
}
PAGES = (
    "/ui/",
    "/ui/verifications",
    "/ui/verifications.{fmt:(csv|json)}",
    "/ui/verifications/{id}",
    "/ui/verifications/{id}/bundle",
    "/ui/signers",
    "/ui/signers/{address}",
    "/ui/jobs",
    "/ui/jobs.{fmt:(csv|json)}",
    "/ui/jobs/{id}",
)
for _page in PAGES:
    EXPECTED[("GET", _page)] = {"none": 303, "forged": 303, "ended": 303, "read": 200, "admin": 200}


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path)


def test_every_dashboard_route_is_documented_with_its_roles() -> None:
    for route in UI_ROUTES:
        path = route.path.replace("{fmt:(csv|json)}", "{fmt}")
        op = DOC["paths"][path][route.method.lower()]
        if route.roles is None:
            assert "security" not in op
        else:
            assert op["security"] == [{"cookie": []}] and all(str(r) in op["description"] for r in route.roles)


async def _session(env: Env, role: Role) -> str:
    resp = await env.client.post("/ui/login", data={"key": env.keys[role]}, allow_redirects=False)
    value = resp.cookies[COOKIE].value
    env.client.session.cookie_jar.clear()
    return value


async def test_the_dashboard_matrix_every_route_times_each_kind_of_caller(env: Env) -> None:
    assert {(r.method, r.path) for r in UI_ROUTES} == set(EXPECTED)
    _, failed = await seed(env, passes=0)
    signer = (await (await env.client.get(f"/v1/verifications/{failed}", headers=env.auth(Role.READ))).json())[
        "subject"
    ]["signer"]
    to_cancel, to_resume = (await queued_job(env))["id"], (await queued_job(env))["id"]
    read, admin = await _session(env, Role.READ), await _session(env, Role.ADMIN)
    ended = await _session(env, Role.ADMIN)
    token = await _csrf(env, ended)
    assert (
        await env.client.post(
            "/ui/logout", data={"csrf": token}, headers={"Cookie": f"{COOKIE}={ended}"}, allow_redirects=False
        )
    ).status == 303
    forged = read[:-4] + ("0000" if not read.endswith("0000") else "1111")
    cookies = {"none": None, "forged": forged, "ended": ended, "read": read, "admin": admin}
    got: dict[tuple[str, str, str], int] = {}
    for route in UI_ROUTES:
        job = to_resume if route.path.endswith("/resume") else to_cancel
        url = route.path.replace("/ui/jobs/{id}", f"/ui/jobs/{job}").replace("{id}", failed)
        url = url.replace("{address}", signer).replace("{fmt:(csv|json)}", "csv")
        for caller, value in cookies.items():
            if route.path == "/ui/logout" and caller in ("read", "admin"):
                value = await _session(env, Role(caller))  # logging out ends a session: use a fresh one
            headers = {} if value is None else {"Cookie": f"{COOKIE}={value}"}
            data: dict[str, str] | None = None
            if route.method == "POST":
                data = {"csrf": await _csrf(env, value)} if caller in ("read", "admin") else {"csrf": "0" * 64}
            resp = await env.client.request(route.method, url, headers=headers, data=data, allow_redirects=False)
            env.client.session.cookie_jar.clear()
            got[(route.method, route.path, caller)] = resp.status
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
    want = {(m, p, c): s for (m, p), row in EXPECTED.items() for c, s in row.items()}
    assert got == want


async def _csrf(env: Env, value: str | None) -> str:
    page = await (await env.client.get("/ui/signers", headers={"Cookie": f"{COOKIE}={value}"})).text()
    match = CSRF.search(page)
    assert match is not None
    return match.group(1)


async def test_logging_out_kills_the_cookie_even_if_a_copy_was_kept(env: Env) -> None:
    value = await _session(env, Role.READ)
    headers = {"Cookie": f"{COOKIE}={value}"}
    assert (await env.client.get("/ui/", headers=headers, allow_redirects=False)).status == 200
    token = await _csrf(env, value)
    out = await env.client.post("/ui/logout", data={"csrf": token}, headers=headers, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/ui/login"
    env.client.session.cookie_jar.clear()
    assert (await env.client.get("/ui/", headers=headers, allow_redirects=False)).status == 303


async def test_with_authentication_off_every_visitor_is_an_admin_with_a_csrf_token(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    env = await start(aiohttp_client, aiohttp_server, tmp_path, auth=False)
    _, failed = await seed(env, passes=0)
    page = await (await env.client.get(f"/ui/verifications/{failed}")).text()
    assert 'id="reverify"' in page
    refused = await env.client.post(f"/ui/verifications/{failed}/reverify", data={}, allow_redirects=False)
    assert refused.status == 403
    match = CSRF.search(page)
    assert match is not None
    done = await env.client.post(
        f"/ui/verifications/{failed}/reverify", data={"csrf": match.group(1)}, allow_redirects=False
    )
    assert done.status == 303
