"""Access control: every route × (no key, an unknown key, a revoked key, each role) answers as its roles say;
a submit key reads only its own verdicts; keys are stored as hashes and managed by admins only."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from web_env import DOC, NOW, Env, bearer, completion, make_keys, post, start, valid

from verifier.app.keys import Role
from verifier.web.routes import ROUTES


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path)


def test_every_route_declares_its_roles_and_the_document_says_which() -> None:
    for route in ROUTES:
        op = DOC["paths"][route.path][route.method.lower()]
        if route.roles is None:
            assert "security" not in op and route.path in (
                "/healthz",
                "/readyz",
                "/openapi.json",
                "/.well-known/jwks.json",
                "/v1/log/key",
            )  # public keys
        else:
            assert op["security"] == [{"bearer": []}] and {"401", "403"} <= set(op["responses"])
            assert all(str(role) in op["description"] for role in route.roles)


EXPECTED_OK = {
    ("POST", "/v1/verifications"): 201,
    ("GET", "/v1/verifications"): 200,
    ("GET", "/v1/verifications/{id}"): 200,
    ("GET", "/v1/verifications/{id}/bundle"): 200,
    ("POST", "/v1/verifications/{id}/reverify"): 201,
    ("GET", "/v1/keys"): 200,
    ("POST", "/v1/keys"): 201,
    ("POST", "/v1/keys/{id}/revoke"): 200,
    ("POST", "/v1/jobs"): 202,
    ("GET", "/v1/jobs"): 200,
    ("GET", "/v1/jobs/{id}"): 200,
    ("POST", "/v1/jobs/{id}/cancel"): 200,
    ("GET", "/metrics"): 200,
    ("GET", "/healthz"): 200,
    ("GET", "/readyz"): 200,
    ("GET", "/openapi.json"): 200,
    ("GET", "/v1/verifications/{id}/ear"): 200,
    ("GET", "/.well-known/jwks.json"): 200,
    ("GET", "/v1/log/key"): 200,
    ("GET", "/v1/log/checkpoint"): 200,
    ("GET", "/v1/log/proof/{id}"): 200,
    ("GET", "/v1/log/consistency"): 200,
}


async def call(
    env: Env, method: str, path: str, headers: dict[str, str], *, verdict_id: str, key_id: str, job_id: str = ""
) -> int:
    url = path.replace(
        "{id}", key_id if path.startswith("/v1/keys") else job_id if path.startswith("/v1/jobs") else verdict_id
    )
    if path == "/v1/log/consistency":
        url += "?from=0&to=1"
    if (method, path) == ("POST", "/v1/verifications"):
        return int((await _post_with(env, headers)).status)
    body: dict[str, Any] | None = None
    if path.endswith("/reverify"):
        body = {"at": NOW}
    elif path == "/v1/keys" and method == "POST":
        body = {"role": "read", "name": "from the matrix"}
    elif path == "/v1/jobs" and method == "POST":
        body = {"filter": {"status": "indeterminate"}}  # selects nothing: the job is done at once
    resp = await env.client.request(method, url, json=body, headers=headers)
    return resp.status


async def _post_with(env: Env, headers: dict[str, str]) -> Any:
    request, response = await completion(env)
    return await env.client.post(
        "/v1/verifications",
        headers=headers,
        json={
            "request": request.decode(),
            "response": response.decode(),
            "model": "sim/echo-1",
            "gateway": env.gateway_url,
        },
    )


async def test_the_auth_matrix_every_route_times_no_key_bad_keys_and_each_role(env: Env) -> None:
    assert {(r.method, r.path) for r in ROUTES} == set(EXPECTED_OK)  # the matrix covers every route
    verdict = await (await post(env, role=Role.SUBMIT)).json()
    job = await (
        await env.client.post("/v1/jobs", json={"filter": {"status": "indeterminate"}}, headers=env.auth())
    ).json()
    with_keys = make_keys(env.db_path)  # fresh keys: one of them is revoked below, one is revoked by the matrix
    victim_id = hashlib.sha256(with_keys[Role.READ].encode()).hexdigest()[:16]
    revoked = with_keys[Role.ADMIN]
    revoked_id = hashlib.sha256(revoked.encode()).hexdigest()[:16]
    assert (await env.client.post(f"/v1/keys/{revoked_id}/revoke", headers=env.auth())).status == 200
    callers: dict[str, dict[str, str]] = {
        "none": {},
        "garbage": bearer("vk_not-a-key"),
        "revoked": bearer(revoked),
        "basic": {"Authorization": "Basic eDp5"},
        **{str(role): env.auth(role) for role in Role},
    }
    got: dict[tuple[str, str, str], int] = {}
    for route in ROUTES:
        for who, headers in callers.items():
            got[(route.method, route.path, who)] = await call(
                env, route.method, route.path, headers, verdict_id=verdict["id"], key_id=victim_id, job_id=job["id"]
            )
    expected: dict[tuple[str, str, str], int] = {}
    for route in ROUTES:
        for who in callers:
            if route.roles is None:
                want = EXPECTED_OK[(route.method, route.path)]
            elif who in ("none", "garbage", "revoked", "basic"):
                want = 401
            elif Role(who) in route.roles:
                want = EXPECTED_OK[(route.method, route.path)]
            else:
                want = 403
            expected[(route.method, route.path, who)] = want
    # a submit key reads only its own verdicts: `verdict` is its own, so those reads are 200 (see the next test)
    assert got == expected


async def test_401_and_403_are_error_envelopes_and_401_challenges(env: Env) -> None:
    missing = await env.client.get("/v1/verifications")
    assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    body = await missing.json()
    valid(body, "Error")
    assert body["error"]["code"] == "unauthorized"
    wrong = await env.client.post(
        "/v1/verifications/v_00000000000000000000000000/reverify", headers=env.auth(Role.READ)
    )
    body = await wrong.json()
    valid(body, "Error")
    assert (wrong.status, body["error"]["code"]) == (403, "forbidden")


async def test_a_submit_key_cannot_read_another_callers_verdicts(env: Env) -> None:
    own = await (await post(env, role=Role.SUBMIT)).json()
    other = await (await post(env, role=Role.ADMIN)).json()
    submit = env.auth(Role.SUBMIT)
    assert (await env.client.get(f"/v1/verifications/{own['id']}", headers=submit)).status == 200
    for path in (f"/v1/verifications/{other['id']}", f"/v1/verifications/{other['id']}/bundle"):
        resp = await env.client.get(path, headers=submit)
        assert resp.status == 404  # not even whether it exists
    listed = await (await env.client.get("/v1/verifications", headers=submit)).json()
    assert [i["id"] for i in listed["items"]] == [own["id"]]
    everything = await (await env.client.get("/v1/verifications", headers=env.auth(Role.READ))).json()
    assert {i["id"] for i in everything["items"]} == {own["id"], other["id"]}


async def test_a_metrics_key_reads_metrics_only(env: Env) -> None:
    metrics = env.auth(Role.METRICS)
    assert (await env.client.get("/metrics", headers=metrics)).status == 200
    assert (await env.client.get("/v1/verifications", headers=metrics)).status == 403


async def test_keys_made_over_http_are_shown_once_and_stored_as_hashes(env: Env) -> None:
    made = await env.client.post("/v1/keys", json={"role": "read", "name": "auditor"}, headers=env.auth())
    assert made.status == 201
    new = await made.json()
    valid(new, "NewKey")
    assert new["key"].startswith("vk_") and new["role"] == "read"
    assert new["key"].encode() not in env.db_path.read_bytes()
    listed = await (await env.client.get("/v1/keys", headers=env.auth())).json()
    valid(listed, "KeyList")
    assert new["id"] in {k["id"] for k in listed["items"]} and "key" not in listed["items"][0]
    assert (await env.client.get("/v1/verifications", headers=bearer(new["key"]))).status == 200
    await env.client.post(f"/v1/keys/{new['id']}/revoke", headers=env.auth())
    assert (await env.client.get("/v1/verifications", headers=bearer(new["key"]))).status == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [({"role": "root"}, "role"), ({"role": "read", "colour": 1}, "colour"), ({"role": "read", "name": "a\nb"}, "name")],
)
async def test_bad_key_requests_are_a_400_naming_the_field(env: Env, body: dict[str, Any], field: str) -> None:
    resp = await env.client.post("/v1/keys", json=body, headers=env.auth())
    assert resp.status == 400 and (await resp.json())["error"]["field"] == field


async def test_revoking_an_unknown_key_is_a_404(env: Env) -> None:
    for key_id in ("0123456789abcdef", "nope"):
        assert (await env.client.post(f"/v1/keys/{key_id}/revoke", headers=env.auth())).status == 404
