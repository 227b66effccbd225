"""The HTTP API against the simulated gateway: routes match the OpenAPI document, every answer is valid
against its schema, errors share one envelope naming the field, the upstream key is never stored."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from web_env import API_KEY, DOC, NOW, Env, post, start, valid

from verifier.app.keys import Role
from verifier.demo import simulator_settings
from verifier.web import create_app


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path)


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    app = create_app(simulator_settings(Path(":memory:"), "http://127.0.0.1:1"))
    routes = {
        (r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.method != "HEAD" and r.resource
    }
    documented = {(m, p) for p, ops in DOC["paths"].items() for m in ops}
    assert routes == documented


def test_the_document_is_a_valid_openapi_3_1_shape() -> None:
    assert DOC["openapi"] == "3.1.0"
    import jsonschema

    for body in DOC["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(body)
    for ops in DOC["paths"].values():
        for op in ops.values():
            assert op["responses"] and op["summary"]


async def test_a_verification_is_201_with_a_schema_valid_passing_verdict(env: Env) -> None:
    resp = await post(env)
    assert resp.status == 201
    verdict = await resp.json()
    valid(verdict, "Verdict")
    assert verdict["status"] == "pass" and verdict["trust_profile"] == "simulator"
    assert resp.headers["Location"] == f"/v1/verifications/{verdict['id']}"
    assert resp.headers["X-Request-Id"]

    got = await env.client.get(f"/v1/verifications/{verdict['id']}", headers=env.auth(Role.READ))
    assert got.status == 200
    stored = await got.json()
    valid(stored, "Verdict")
    assert stored["checks"] == verdict["checks"] and stored["id"] == verdict["id"]

    listed = await (
        await env.client.get("/v1/verifications", params={"status": "pass", "limit": "5"}, headers=env.auth(Role.READ))
    ).json()
    valid(listed, "VerificationList")
    assert [i["id"] for i in listed["items"]] == [verdict["id"]]


async def test_the_exported_bundle_holds_the_evidence_and_reverification_supersedes(env: Env) -> None:
    verdict = await (await post(env)).json()
    resp = await env.client.get(f"/v1/verifications/{verdict['id']}/bundle", headers=env.auth(Role.READ))
    assert resp.status == 200 and resp.content_type == "application/zip"
    names = set(zipfile.ZipFile(io.BytesIO(await resp.read())).namelist())
    assert {
        "meta.json",
        "request.body",
        "response.body",
        "signature.json",
        "report.json",
        "nras/jwks.json",
        "nras/response.json",
    } <= names
    assert any(n.startswith("collateral/") for n in names)

    again = await env.client.post(f"/v1/verifications/{verdict['id']}/reverify", json={"at": NOW}, headers=env.auth())
    assert again.status == 201
    new = await again.json()
    valid(new, "Verdict")
    assert new["supersedes"] == verdict["id"] and new["id"] != verdict["id"]
    # a re-verification judges the same evidence offline: the minted nonce is still ours, the verdict the same
    assert {c["id"]: c["status"] for c in new["checks"]} == {c["id"]: c["status"] for c in verdict["checks"]}
    old = await (await env.client.get(f"/v1/verifications/{verdict['id']}", headers=env.auth())).json()
    assert old["status"] == verdict["status"]  # nothing recorded is overwritten


async def test_verify_bundle_on_the_export_reproduces_the_recorded_verdict(env: Env, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from verifier.cli import main

    verdict = await (await post(env)).json()
    export = tmp_path / "export.zip"
    export.write_bytes(
        await (await env.client.get(f"/v1/verifications/{verdict['id']}/bundle", headers=env.auth())).read()
    )
    at = str(verdict["times"]["verified_at"])
    # the CLI runs its own event loop: off this test's loop, in a thread
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["verify-bundle", str(export), "--at", at, "--trust", "simulator", "--json"]
    )
    again = json.loads(result.output)
    assert result.exit_code == 0
    assert again["status"] == verdict["status"] == "pass"
    assert [(c["id"], c["status"], c["reason"]) for c in again["checks"]] == [
        (c["id"], c["status"], c["reason"]) for c in verdict["checks"]
    ]
    # the same evidence under the production anchors never passes: the simulator's roots are not Intel's or NVIDIA's
    prod = await asyncio.to_thread(CliRunner().invoke, main, ["verify-bundle", str(export), "--at", at, "--json"])
    assert json.loads(prod.output)["status"] == "fail"


async def test_the_upstream_key_is_never_stored_logged_or_echoed(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    resp = await post(env)
    text = await resp.text()
    assert API_KEY not in text
    assert API_KEY not in caplog.text
    assert API_KEY.encode() not in env.db_path.read_bytes()
    bundle = await (
        await env.client.get(f"/v1/verifications/{json.loads(text)['id']}/bundle", headers=env.auth())
    ).read()
    assert API_KEY.encode() not in bundle


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"response": "x", "model": "m"}, "request"),
        ({"request": "x", "model": "m"}, "response"),
        ({"request": "x", "response": "y"}, "model"),
        ({"request": "x", "request_b64": "eA==", "response": "y", "model": "m"}, "request"),
        ({"request_b64": "***", "response": "y", "model": "m"}, "request_b64"),
        ({"request": "x", "response": "y", "model": "m", "signing_algo": "rsa"}, "signing_algo"),
        ({"request": "x", "response": "y", "model": "m", "gateway": "https://evil.example"}, "gateway"),
        ({"request": "x", "response": "y", "model": "m", "colour": "blue"}, "colour"),
        ({"request": "x", "response": "{}", "model": "m"}, "chat_id"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(env: Env, body: dict[str, Any], field: str) -> None:
    resp = await env.client.post("/v1/verifications", json=body, headers=env.auth(Role.SUBMIT))
    assert resp.status == 400
    error = await resp.json()
    valid(error, "Error")
    assert error["error"]["field"] == field
    assert error["request_id"] == resp.headers["X-Request-Id"]


async def test_a_body_that_is_not_json_is_a_400(env: Env) -> None:
    resp = await env.client.post(
        "/v1/verifications", data=b"{not json", headers={"Content-Type": "application/json", **env.auth(Role.SUBMIT)}
    )
    assert resp.status == 400
    valid(await resp.json(), "Error")


async def test_a_body_over_the_limit_is_a_413(env: Env) -> None:
    resp = await env.client.post(
        "/v1/verifications",
        data=b"x" * (8 * 1024 * 1024 + 10),
        headers={"Content-Type": "application/json", **env.auth(Role.SUBMIT)},
    )
    assert resp.status == 413
    body = await resp.json()
    valid(body, "Error")
    assert body["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    "path",
    ["/v1/verifications/nope", "/v1/verifications/nope/bundle", "/v1/verifications/v_00000000000000000000000000"],
)
async def test_unknown_ids_are_a_404_envelope(env: Env, path: str) -> None:
    resp = await env.client.get(path, headers=env.auth(Role.READ))
    assert resp.status == 404
    valid(await resp.json(), "Error")


@pytest.mark.parametrize(
    "query",
    [{"status": "maybe"}, {"limit": "0"}, {"limit": "x"}, {"since": "-1"}, {"cursor": "garbage"}, {"colour": "x"}],
)
async def test_bad_list_queries_are_a_400(env: Env, query: dict[str, str]) -> None:
    resp = await env.client.get("/v1/verifications", params=query, headers=env.auth(Role.READ))
    assert resp.status == 400
    valid(await resp.json(), "Error")


async def test_health_and_readiness(env: Env) -> None:
    health = await env.client.get("/healthz")
    valid(await health.json(), "Health")
    ready = await env.client.get("/readyz")
    body = await ready.json()
    valid(body, "Ready")
    assert ready.status == 200 and body == {"status": "ready", "database": True, "dcap_workers": True}
    doc = await env.client.get("/openapi.json")
    assert (await doc.json())["openapi"] == "3.1.0"


async def test_an_internal_error_is_a_500_that_echoes_no_exception_text(aiohttp_client: Any) -> None:
    from verifier.web import envelope_middleware

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internal detail")

    app = web.Application(middlewares=[envelope_middleware])
    app.router.add_get("/boom", boom)
    client = await aiohttp_client(app)
    resp = await client.get("/boom")
    assert resp.status == 500
    text = await resp.text()
    assert "secret internal detail" not in text
    valid(json.loads(text), "Error")


@pytest.mark.parametrize("at", [2**63, -1, "soon", True])
async def test_reverify_at_out_of_range_is_a_400(env: Env, at: object) -> None:
    verdict = await (await post(env)).json()
    resp = await env.client.post(f"/v1/verifications/{verdict['id']}/reverify", json={"at": at}, headers=env.auth())
    assert resp.status == 400
    error = await resp.json()
    valid(error, "Error")
    assert error["error"]["field"] == "at"


def test_readme_documents_every_error_code_of_the_envelope() -> None:
    from verifier.web.errors import ERROR_CODES

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert [code for code in ERROR_CODES if f"| `{code}` |" not in readme] == []
    sources = "".join(p.read_text() for p in (Path(__file__).resolve().parent.parent / "verifier" / "web").glob("*.py"))
    sources += (Path(__file__).resolve().parent.parent / "verifier" / "app" / "limits.py").read_text()
    import re

    used = set(
        re.findall(
            r'(?:HTTPProblem\(\d+, |bad_request\([^)]*, |Limited\(\d+, |envelope\(request, \d+, )"([a-z_]+)"', sources
        )
    )
    assert used and used <= set(ERROR_CODES), used - set(ERROR_CODES)
