"""Adversarial tests of the HTTP service and the CLI (issue 13's edges), written as an attacker would try them.

Each FINDING is a test asserting the secure outcome, marked ``xfail(strict=True)``: it fails today (the attack
works) and turns into an XPASS error once the product is fixed, so the mark must then be removed. The other tests
are attacks the service refuses today, kept as regressions.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import sqlite3
import threading
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from aiohttp import web
from click.testing import CliRunner
from tests_support import save_one
from web_env import Env, bearer, clock, post, start

from verifier.adapters.ledger import Ledger
from verifier.adapters.ledger.keys import insert_key
from verifier.app.keys import KeyStore, Role, key_id
from verifier.cli import main
from verifier.cli.service import is_loopback
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig
from verifier.table import render

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UPSTREAM_KEY = "sk-live-0123456789"


def overriding(overrides: dict[str, Handler]) -> web.Application:
    """The simulated gateway with some path prefixes answered by hostile handlers."""

    @web.middleware
    async def override(request: web.Request, handler: Handler) -> web.StreamResponse:
        for prefix, fn in overrides.items():
            if request.path.startswith(prefix):
                return await fn(request)
        return await handler(request)

    app = SimulatedGateway(SimulatorWorld(), SimulatorConfig(clock=clock)).app()
    app.middlewares.append(override)
    return app


async def hostile(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path, overrides: dict[str, Handler], **settings: Any
) -> Env:
    return await start(
        aiohttp_client, aiohttp_server, tmp_path, gateway_app=overriding(overrides), signature_deadline=0.0, **settings
    )


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path)


async def bundle_files(env: Env, verdict_id: str) -> dict[str, bytes]:
    resp = await env.client.get(f"/v1/verifications/{verdict_id}/bundle", headers=env.auth(Role.READ))
    assert resp.status == 200
    archive = zipfile.ZipFile(io.BytesIO(await resp.read()))
    return {name: archive.read(name) for name in archive.namelist()}


async def raw_http(env: Env, data: bytes) -> bytes:
    """One request written byte for byte to the service's socket (what an HTTP client library would refuse to send)."""
    assert env.client.server.host is not None and env.client.server.port is not None
    reader, writer = await asyncio.open_connection(env.client.server.host, env.client.server.port)
    writer.write(data)
    await writer.drain()
    out = await asyncio.wait_for(reader.read(1 << 20), 10)
    writer.close()
    return out


def untriggered(db: Path, table: str, *statements: str) -> None:
    """What an attacker with write access to the file does: drop the append-only triggers, edit, put them back."""
    conn = sqlite3.connect(db, isolation_level=None)
    triggers = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", [table]
    ).fetchall()
    for name, _ in triggers:
        conn.execute(f"DROP TRIGGER {name}")
    for statement in statements:
        conn.execute(statement)
    for _, sql in triggers:
        conn.execute(sql)
    conn.close()


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


# ============================================================================ findings: the upstream key


def _unicode_escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


ENCODINGS: dict[str, Callable[[str], str]] = {
    "json_unicode_escape": _unicode_escaped,
    "base64": lambda text: base64.b64encode(text.encode()).decode(),
    "url_encoded": lambda text: quote(text, safe=""),
}


def _b64_decoded(text: str) -> str:
    """The echo decoded; a redacted one no longer decodes, and what decodes of it around the marker is returned."""
    parts = text.split("[redacted]")
    return "".join(
        base64.b64decode(p + "=" * (-len(p) % 4), validate=False).decode("utf-8", "replace")
        for p in parts
        if len(p) % 4 != 1
    )


DECODERS: dict[str, Callable[[bytes], str]] = {
    "json_unicode_escape": lambda data: json.dumps(json.loads(data), ensure_ascii=False),
    "base64": lambda data: _b64_decoded(json.loads(data)["echo"]),
    "url_encoded": lambda data: unquote(data.decode()),
}


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
async def test_an_encoded_upstream_echo_of_the_gateway_key_is_not_stored(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path, encoding: str
) -> None:
    async def echo_report(request: web.Request) -> web.Response:
        echoed = ENCODINGS[encoding](request.headers.get("Authorization", ""))
        return web.Response(text='{"echo": "' + echoed + '"}', content_type="application/json")

    key = "sk-live+AbC/12=xy"  # '+', '/' and '=' change under URL-encoding
    env = await hostile(aiohttp_client, aiohttp_server, tmp_path, {"/v1/attestation/report": echo_report})
    resp = await post(env, upstream_key=key)
    assert resp.status == 201
    files = await bundle_files(env, (await resp.json())["id"])
    assert key not in DECODERS[encoding](files["report.json"])


async def test_a_unicode_escaped_echo_in_an_upstream_error_is_not_quoted_in_the_verdict(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    async def echo_error(request: web.Request) -> web.Response:
        escaped = _unicode_escaped(request.headers.get("Authorization", ""))
        return web.Response(status=401, text='{"error": "' + escaped + '"}', content_type="application/json")

    env = await hostile(aiohttp_client, aiohttp_server, tmp_path, {"/v1/signature/": echo_error})
    resp = await post(env, upstream_key="sk-short-key1")
    verdict = await resp.json()
    message = next(c["message"] for c in verdict["checks"] if c["id"] == "signature.valid")
    assert "sk-short-key1" not in message.encode().decode("unicode_escape")


async def test_a_url_encoded_echo_in_a_redirect_location_is_not_quoted_in_the_verdict(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    key = "sk-live+AbC/123=xyz"

    async def redirect(request: web.Request) -> web.Response:
        token = quote(request.headers.get("Authorization", ""), safe="")
        raise web.HTTPFound(f"http://127.0.0.1:1/login?token={token}")

    env = await hostile(aiohttp_client, aiohttp_server, tmp_path, {"/v1/signature/": redirect})
    text = await (await post(env, upstream_key=key)).text()
    assert key not in unquote(text)


async def test_a_malformed_header_does_not_echo_the_keys_in_the_answer_or_the_log(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    submit = env.keys[Role.SUBMIT]
    request = (
        b"POST /v1/verifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + submit.encode() + b"\x01\r\n"
        b"X-Upstream-Authorization: " + UPSTREAM_KEY.encode() + b"\x7f\r\nContent-Length: 2\r\n\r\n{}"
    )
    answer = await raw_http(env, request)
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    assert UPSTREAM_KEY.encode() not in answer and submit.encode() not in answer
    assert UPSTREAM_KEY not in caplog.text and submit not in caplog.text


async def test_an_echo_that_reforms_the_key_after_redaction_is_still_a_committed_verdict(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    key = "]" + "x" * 9  # 10 printable ASCII characters: a valid X-Upstream-Authorization

    async def echo_report(request: web.Request) -> web.Response:
        return web.json_response({"debug": request.headers.get("Authorization", "") + "x" * 9})

    env = await hostile(aiohttp_client, aiohttp_server, tmp_path, {"/v1/attestation/report": echo_report})
    resp = await post(env, upstream_key=key)
    assert resp.status == 201, await resp.text()


# ============================================================================ findings: other callers' verdicts


async def test_a_redacted_report_is_never_reused_for_another_caller(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    policy = tmp_path / "reuse.toml"
    default = (Path(__file__).resolve().parents[1] / "policies" / "default.toml").read_text()
    policy.write_text(default.replace("max_attestation_age = 0", "max_attestation_age = 600"))
    env = await start(aiohttp_client, aiohttp_server, tmp_path, policy_path=str(policy))
    attacker = await (await post(env, role=Role.SUBMIT, upstream_key="{")).json()  # "{" occurs all over report.json
    assert "upstream_key_redacted" in {n["code"] for n in attacker["notes"]}
    victim = await (await post(env, role=Role.ADMIN)).json()
    assert victim["status"] == "pass", [(c["id"], c["reason"]) for c in victim["checks"] if c["status"] == "fail"]


async def test_a_declared_content_length_cannot_hold_the_in_flight_budget(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    env = await start(aiohttp_client, aiohttp_server, tmp_path, admission_wait=1.0)
    assert env.client.server.host is not None and env.client.server.port is not None
    _, writer = await asyncio.open_connection(env.client.server.host, env.client.server.port)
    writer.write(
        b"POST /v1/verifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + env.keys[Role.SUBMIT].encode()
        + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: 999999999999\r\n\r\n{"
    )
    await writer.drain()
    await asyncio.sleep(0.3)
    try:
        victim = await post(env, role=Role.ADMIN)
        assert victim.status == 201, await victim.text()
    finally:
        writer.close()


@pytest.mark.parametrize("chat_id", ["..", "."])
async def test_a_dot_segment_chat_id_is_a_400(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path, chat_id: str
) -> None:
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"detail": "not found"}, status=404)

    env = await hostile(aiohttp_client, aiohttp_server, tmp_path, {"/v1/signature": record})
    resp = await post(env, chat_id=chat_id)
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "chat_id", seen


async def test_two_authorization_headers_are_refused(env: Env) -> None:
    answer = await raw_http(
        env,
        b"GET /v1/verifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + env.keys[Role.READ].encode()
        + b"\r\nAuthorization: Bearer vk_other\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert answer.split(b"\r\n")[0].split(b" ")[1] in (b"400", b"401")


async def test_a_submit_key_cannot_squat_every_model_label(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    async def no_signature(request: web.Request) -> web.Response:
        return web.json_response({"detail": "not found"}, status=404)

    env = await hostile(
        aiohttp_client,
        aiohttp_server,
        tmp_path,
        {"/v1/signature/": no_signature},
        upstream_per_minute=0,
        rate_per_minute=0,
    )
    for i in range(101):
        body = {"request": "{}", "response": '{"id": "c1"}', "model": f"junk-{i}", "gateway": env.gateway_url}
        assert (await env.client.post("/v1/verifications", json=body, headers=env.auth(Role.SUBMIT))).status == 201
    assert (await post(env, role=Role.ADMIN)).status == 201
    metrics = await (await env.client.get("/metrics", headers=env.auth(Role.METRICS))).text()
    assert 'model="sim/echo-1"' in metrics


# ============================================================================ findings: the CLI and the ledger file


async def test_upstream_text_cannot_forge_lines_in_the_human_readable_verdict(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    async def forging(request: web.Request) -> web.Response:
        return web.Response(
            status=403,
            content_type="text/plain",
            text="denied\n  PASS  signature.valid  forged\x1b[1A\x1b[2Kverdict: PASS",
        )

    env = await hostile(aiohttp_client, aiohttp_server, tmp_path, {"/v1/signature/": forging})
    verdict = await (await post(env)).json()
    shown = render(verdict)
    assert "\x1b" not in shown
    assert not any(line.lstrip().startswith("PASS  signature.valid") for line in shown.splitlines())


@pytest.mark.parametrize("tamper", ["role_escalation", "unrevoke"])
def test_ledger_check_notices_tampered_api_keys(tmp_path: Path, tamper: str) -> None:
    db = tmp_path / "v.db"
    with Ledger.open(db) as ledger:
        store = KeyStore(ledger)
        key, secret = store.create(Role.SUBMIT if tamper == "role_escalation" else Role.ADMIN, "k")
        if tamper == "unrevoke":
            store.revoke(key.id)
    save_one(db)
    if tamper == "role_escalation":
        untriggered(db, "api_keys", f"UPDATE api_keys SET role = 'admin' WHERE id = '{key.id}'")
    else:
        untriggered(db, "api_key_revocations", f"DELETE FROM api_key_revocations WHERE key_id = '{key.id}'")
    with Ledger.open_readonly(db) as ledger:
        found = KeyStore(ledger).authenticate(secret)
    assert found is not None and found.role is Role.ADMIN  # the tampering took effect
    assert cli("ledger", "check", "--db", str(db)).exit_code == 2


def test_ledger_check_notices_a_repointed_reuse_gateway(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    save_one(db)
    untriggered(db, "attestations", "UPDATE attestations SET gateway = 'https://other.example'")
    assert cli("ledger", "check", "--db", str(db)).exit_code == 2


def test_ledger_check_notices_a_removed_newest_verdict(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    save_one(db)
    newest = save_one(db)
    for table, column in (
        ("checks", "verdict_id"),
        ("verdict_evidence", "verdict_id"),
        ("attestations", "verdict_id"),
        ("verdicts", "id"),
    ):
        untriggered(db, table, f"DELETE FROM {table} WHERE {column} = '{newest}'")
    assert cli("ledger", "check", "--db", str(db)).exit_code == 2


def test_ledger_check_notices_a_no_op_append_only_trigger(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    save_one(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER verdicts_no_update")
    conn.execute("CREATE TRIGGER verdicts_no_update BEFORE UPDATE ON verdicts BEGIN SELECT 1; END")
    conn.close()
    assert cli("ledger", "check", "--db", str(db)).exit_code == 2


@pytest.mark.parametrize("command", ["ledger check", "show"])
@pytest.mark.parametrize("tampered", [{}, {"status": "pass", "checks": ["x"]}])
def test_a_malformed_stored_verdict_is_reported_not_a_traceback(
    tmp_path: Path, command: str, tampered: dict[str, Any]
) -> None:
    db = tmp_path / "v.db"
    vid = save_one(db)
    text = json.dumps({"id": vid, **tampered})
    untriggered(db, "verdicts", f"UPDATE verdicts SET verdict_json = '{text}' WHERE id = '{vid}'")
    args = ["ledger", "check", "--db", str(db)] if command == "ledger check" else ["show", vid, "--db", str(db)]
    result = cli(*args)
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == (2 if command == "ledger check" else 1)
    assert "not one the verifier wrote" in result.output
    assert "Traceback" not in result.output


# ============================================================================ refused: authentication


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearervk_x",
        "Bearer\tvk_x",
        "Token vk_x",
        "Bearer vk_a vk_b",
        "Bearer " + "v" * 300,
        "Bearer vk_\u00e9t\u00e9",
        "Basic dXNlcjpwYXNz",
    ],
)
async def test_malformed_bearer_headers_are_a_401_envelope(env: Env, header: str) -> None:
    resp = await env.client.get("/v1/verifications", headers={"Authorization": header})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"


async def test_the_bearer_scheme_is_case_insensitive_and_surrounding_spaces_are_trimmed(env: Env) -> None:
    for header in (f"bearer {env.keys[Role.READ]}", f"BEARER   {env.keys[Role.READ]}  "):
        assert (await env.client.get("/v1/verifications", headers={"Authorization": header})).status == 200


async def test_a_nul_or_control_byte_in_the_api_key_is_refused_before_any_handler(env: Env) -> None:
    answer = await raw_http(
        env,
        b"GET /v1/verifications HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + env.keys[Role.READ].encode()
        + b"\x00\r\nConnection: close\r\n\r\n",
    )
    assert b" 400 " in answer.split(b"\r\n")[0] and b'"items"' not in answer


def test_a_key_with_the_right_id_and_a_wrong_secret_is_refused(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "v.db") as ledger:
        store = KeyStore(ledger)
        _, real = store.create(Role.ADMIN, "real")
        forged = "vk_forged-secret-with-a-colliding-id"
        # a row under the forged secret's id whose hash is another key's: the id matches, the hash does not
        insert_key(
            ledger,
            key_id=key_id(forged),
            key_sha256=hashlib.sha256(real.encode()).hexdigest(),
            role="admin",
            name="collision",
        )
        assert store.authenticate(forged) is None
        assert store.authenticate(real) is not None
        assert store.authenticate(real + "\x00") is None and store.authenticate(" " + real) is None


async def test_a_revoked_key_stops_at_once_on_every_route(env: Env) -> None:
    made = await (
        await env.client.post("/v1/keys", json={"role": "admin", "name": "soon revoked"}, headers=env.auth())
    ).json()
    assert (await env.client.post(f"/v1/keys/{made['id']}/revoke", headers=env.auth())).status == 200
    for method, path in (("GET", "/v1/verifications"), ("GET", "/v1/keys"), ("POST", "/v1/keys"), ("GET", "/metrics")):
        resp = await env.client.request(method, path, headers=bearer(made["key"]), json={"role": "admin"})
        assert resp.status == 401


# ============================================================================ refused: routes and methods


@pytest.mark.parametrize(
    "path",
    [
        "/v1/keys/",
        "/v1//keys",
        "/v1/./keys",
        "/v1/x/../keys",
        "/V1/keys",
        "/v1/keys%2F",
        "//v1/keys",
        "/v1/verifications/",
        "/v1/verifications/v_1/../../keys",
        "/v1/keys;x",
        "/v1/keys%00",
        "/v1/%2E%2E/v1/keys",
    ],
)
async def test_path_tricks_reach_no_protected_handler(env: Env, path: str) -> None:
    # written raw: an HTTP client library would normalise the dot segments before sending
    answer = await raw_http(
        env,
        b"GET "
        + path.encode()
        + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + env.keys[Role.SUBMIT].encode()
        + b"\r\nConnection: close\r\n\r\n",
    )
    status = answer.split(b"\r\n")[0].split(b" ")[1]
    assert status in (b"400", b"404"), (path, answer[:200])
    assert b'"items"' not in answer


async def test_a_percent_encoded_route_is_still_authenticated(env: Env) -> None:
    assert (await env.client.get("/v1/%6Beys")).status == 401
    assert (await env.client.get("/v1/%6Beys", headers=env.auth(Role.READ))).status == 403


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", "PATCH"])
async def test_other_methods_on_protected_routes_are_a_405_without_data(env: Env, method: str) -> None:
    for path in ("/v1/keys", "/v1/verifications", "/metrics"):
        resp = await env.client.request(method, path, headers=env.auth(Role.SUBMIT))
        assert resp.status == 405, (method, path)
        assert b"items" not in await resp.read()


async def test_method_override_headers_are_ignored(env: Env) -> None:
    override = {"X-HTTP-Method-Override": "GET", "X-HTTP-Method": "GET", "X-Method-Override": "GET"}
    # a submit key cannot turn POST /v1/keys (admin) into something it may do
    resp = await env.client.post("/v1/keys", json={"role": "admin"}, headers={**override, **env.auth(Role.SUBMIT)})
    assert resp.status == 403
    resp = await env.client.get("/v1/keys", headers={"X-HTTP-Method-Override": "POST", **env.auth(Role.READ)})
    assert resp.status == 403


async def test_lower_roles_cannot_reach_keys_or_reverify(env: Env) -> None:
    verdict = await (await post(env, role=Role.SUBMIT)).json()
    for role in (Role.SUBMIT, Role.READ, Role.METRICS):
        for method, path in (
            ("GET", "/v1/keys"),
            ("POST", "/v1/keys"),
            ("POST", "/v1/keys/0123456789abcdef/revoke"),
            ("POST", f"/v1/verifications/{verdict['id']}/reverify"),
        ):
            resp = await env.client.request(method, path, headers=env.auth(role), json={"role": "admin"})
            assert resp.status == 403, (role, method, path)
    listed = await (await env.client.get("/v1/verifications", headers=env.auth(Role.READ))).json()
    assert [i["id"] for i in listed["items"]] == [verdict["id"]]  # nothing was superseded


# ============================================================================ refused: other callers' verdicts


async def test_a_submit_key_cannot_read_other_verdicts_with_cursors_or_repeated_parameters(env: Env) -> None:
    other = await (await post(env, role=Role.ADMIN)).json()
    own = await (await post(env, role=Role.SUBMIT)).json()
    submit = env.auth(Role.SUBMIT)
    past_everything = base64.urlsafe_b64encode(b"v_" + b"Z" * 26).decode()  # a forged cursor above every id
    for query in (
        f"cursor={past_everything}",
        "limit=500",
        f"cursor={past_everything}&cursor={past_everything}",
        "status=pass&status=fail",
        "model=sim/echo-1&model=other",
    ):
        body = await (await env.client.get(f"/v1/verifications?{query}", headers=submit)).json()
        assert other["id"] not in {i["id"] for i in body.get("items", [])}, query
    for path in (
        f"/v1/verifications/{other['id']}",
        f"/v1/verifications/{other['id']}/bundle",
        f"/v1/verifications/{other['id'].lower()}",
        f"/v1/verifications/{other['id']}%20",
    ):
        assert (await env.client.get(path, headers=submit)).status == 404, path
    assert (await env.client.get(f"/v1/verifications/{own['id']}", headers=submit)).status == 200


# ============================================================================ refused: inputs, ids, logs


@pytest.mark.parametrize(
    "body",
    [
        b'{"at": 1e400}',
        b'{"at": NaN}',
        b'{"at": -Infinity}',
        b'{"at": ' + b"9" * 5000 + b"}",
        b'{"at": 1790000000.5}',
        b'{"at": true}',
        b'{"at": 1, "at": "x"}',
        b"[" * 100_000,
        b'{"at": "\\ud800"}',
        b'{"\\ud800": 1}',
    ],
)
async def test_hostile_reverify_bodies_are_a_400(env: Env, body: bytes) -> None:
    verdict = await (await post(env, role=Role.SUBMIT)).json()
    resp = await env.client.post(f"/v1/verifications/{verdict['id']}/reverify", data=body, headers=env.auth())
    assert resp.status == 400, (body[:40], resp.status, await resp.text())


async def test_duplicate_json_keys_cannot_smuggle_a_second_request_body(env: Env) -> None:
    body = (
        b'{"request": "x", "response": "{\\"id\\": \\"c1\\"}", "model": "m", "model": "a\\nb", "gateway": "'
        + env.gateway_url.encode()
        + b'"}'
    )
    resp = await env.client.post("/v1/verifications", data=body, headers=env.auth(Role.SUBMIT))
    # the last duplicate counts, and it is validated
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "model"


@pytest.mark.parametrize("given", ["a\tb", "x" * 65, "caf\u00e9", "", " "])
async def test_an_unsafe_request_id_is_replaced_not_echoed(env: Env, given: str) -> None:
    resp = await env.client.get("/healthz", headers={"X-Request-Id": given})
    echoed = resp.headers["X-Request-Id"]
    assert echoed != given and len(echoed) == 16 and all(c in "0123456789abcdef" for c in echoed)


async def test_upstream_key_in_answer_headers_and_a_raw_location_is_neither_stored_nor_echoed(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def redirect(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        return web.Response(
            status=302,
            headers={
                "Location": f"http://127.0.0.1:1/x?auth={auth.split()[-1]}",
                "X-Echo": auth,
                "Set-Cookie": f"k={auth.split()[-1]}",
            },
        )

    env = await hostile(aiohttp_client, aiohttp_server, tmp_path, {"/v1/signature/": redirect})
    resp = await post(env, upstream_key=UPSTREAM_KEY)
    text = await resp.text()
    assert resp.status == 201 and UPSTREAM_KEY not in text and "[redacted]" in text
    assert UPSTREAM_KEY not in caplog.text
    assert UPSTREAM_KEY.encode() not in env.db_path.read_bytes()
    files = await bundle_files(env, json.loads(text)["id"])
    assert all(UPSTREAM_KEY.encode() not in data for data in files.values())


async def test_a_callers_model_name_never_becomes_a_metric_label(env: Env) -> None:
    body = {"request": "{}", "response": '{"id": "c1"}', "model": 'm"} 1\\x', "gateway": env.gateway_url}
    assert (await env.client.post("/v1/verifications", json=body, headers=env.auth(Role.SUBMIT))).status == 201
    metrics = await (await env.client.get("/metrics", headers=env.auth(Role.METRICS))).text()
    lines = [line for line in metrics.splitlines() if line.startswith("verifier_verifications_total{")]
    assert lines and all('model="unpinned"' in line for line in lines), lines  # only pinned models are labelled


# ============================================================================ refused: the event loop


async def test_no_sqlite_statement_runs_on_the_event_loop_thread(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_loop: list[str] = []
    armed = threading.Event()
    loop_thread = threading.get_ident()
    real_connect = sqlite3.connect

    def traced_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(
            lambda sql: on_loop.append(sql) if armed.is_set() and threading.get_ident() == loop_thread else None
        )
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced_connect)
    env = await start(aiohttp_client, aiohttp_server, tmp_path)
    armed.set()
    verdict = await (await post(env, role=Role.SUBMIT)).json()
    for method, path in (
        ("GET", "/v1/verifications"),
        ("GET", f"/v1/verifications/{verdict['id']}"),
        ("GET", f"/v1/verifications/{verdict['id']}/bundle"),
        ("GET", "/v1/keys"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("POST", f"/v1/verifications/{verdict['id']}/reverify"),
    ):
        assert (await env.client.request(method, path, headers=env.auth())).status < 300, path
    armed.clear()
    assert on_loop == []


# ============================================================================ refused: the CLI


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "::ffff:127.0.0.1", "localhost.", "127.1", "example.com", "", "127.0.0.1.nip.io", "[::]"]
)
def test_insecure_no_auth_refuses_every_non_loopback_host(tmp_path: Path, host: str) -> None:
    result = cli("serve", "--host", host, "--port", "0", "--insecure-no-auth", "--db", str(tmp_path / "v.db"))
    assert result.exit_code == 1 and "loopback" in result.output, result.output
    assert not (tmp_path / "v.db").exists()  # refused before anything opened


def test_loopback_names_are_the_only_hosts_insecure_no_auth_accepts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "localhost.localdomain", "127.0.0.1 "))


def test_keys_create_prints_the_key_alone_on_the_last_line_and_stores_only_its_hash(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    result = cli("keys", "create", "--role", "read", "--name", "auditor", "--db", str(db))
    assert result.exit_code == 0
    key = result.output.splitlines()[-1]
    assert key.startswith("vk_") and key == key.strip() and " " not in key
    with Ledger.open_readonly(db) as ledger:
        found = KeyStore(ledger).authenticate(key)
    assert found is not None and found.role is Role.READ
    assert key.encode() not in db.read_bytes()
    listed = cli("keys", "list", "--db", str(db), "--json")
    assert key not in listed.output and found.id in listed.output


@pytest.mark.parametrize("name", ["a\nvk_forged", "a\rb", "a\x1b[2Kb", "a\x00b"])
def test_keys_create_refuses_a_name_that_could_forge_its_output(tmp_path: Path, name: str) -> None:
    result = cli("keys", "create", "--role", "admin", "--name", name, "--db", str(tmp_path / "v.db"))
    assert result.exit_code == 1 and "vk_" not in result.output.splitlines()[-1]


def test_read_commands_do_not_write_the_ledger(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    vid = save_one(db)
    with Ledger.open(db) as ledger:
        KeyStore(ledger).create(Role.READ, "r")
    before = (db.read_bytes(), db.stat().st_mtime_ns)
    for args in (
        ["show", vid],
        ["show", vid, "--json"],
        ["list"],
        ["list", "--json"],
        ["keys", "list"],
        ["ledger", "check"],
        ["export", vid, "-o", str(tmp_path / "b.zip")],
    ):
        result = cli(*args, "--db", str(db))
        assert result.exit_code == 0, (args, result.output)
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before


def test_ledger_check_notices_an_edited_verdict_check_row_and_blob(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    vid = save_one(db)
    save_one(db)
    untriggered(db, "verdicts", f"UPDATE verdicts SET status = 'fail' WHERE id = '{vid}'")
    untriggered(db, "checks", f"UPDATE checks SET status = 'fail' WHERE verdict_id = '{vid}'")
    untriggered(db, "verdicts", f"UPDATE verdicts SET submitted_by = 'someone' WHERE id = '{vid}'")
    result = cli("ledger", "check", "--db", str(db))
    assert result.exit_code == 2
    assert "columns status differ" in result.output and "check rows differ" in result.output
    assert "hash chain broken" in result.output
