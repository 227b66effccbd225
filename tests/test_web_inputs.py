"""Bad input is a 400 naming the field, never a 500 (each case was a 500 or silently accepted before)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from web_env import Env, completion, start, valid

from verifier.app.keys import Role


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path)


async def post_raw(env: Env, text: str, **headers: str) -> Any:
    return await env.client.post(
        "/v1/verifications",
        data=text.encode(),
        headers={"Content-Type": "application/json", **env.auth(Role.SUBMIT), **headers},
    )


async def expect_400(resp: Any, field: str | None) -> dict[str, Any]:
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    valid(body, "Error")
    assert body["error"].get("field") == field
    return dict(body)


@pytest.mark.parametrize("field", ["request", "response", "model", "chat_id"])
async def test_a_lone_surrogate_in_a_text_field_is_a_400_naming_it(env: Env, field: str) -> None:
    body = {"request": "x", "response": '{"id": "c1"}', "model": "m", "chat_id": "c1"}
    text = json.dumps(body).replace(json.dumps(body[field]), '"a\\ud800b"', 1)
    await expect_400(await post_raw(env, text), field)


@pytest.mark.parametrize(
    "gateway",
    [
        "http://127.0.0.1:99999",
        "http://[::1",
        "http://h:port",
        "ftp://x",
        "http://a\nb",
        "http://" + "a" * 3000,
        5,
        None,
        ["http://x"],
    ],
)
async def test_a_malformed_gateway_is_a_400_naming_gateway(env: Env, gateway: object) -> None:
    body = {"request": "x", "response": '{"id": "c1"}', "model": "m", "gateway": gateway}
    error = await expect_400(
        await env.client.post("/v1/verifications", json=body, headers=env.auth(Role.SUBMIT)), "gateway"
    )
    assert "gateway URL ''" not in error["error"]["message"]
    if gateway == 5:
        assert "expected a string" in error["error"]["message"]


async def test_a_non_utf8_byte_in_the_upstream_key_header_is_a_400(env: Env) -> None:
    request, response = await completion(env)
    body = json.dumps(
        {"request": request.decode(), "response": response.decode(), "model": "sim/echo-1", "gateway": env.gateway_url}
    ).encode()
    port = env.client.server.port  # type: ignore[attr-defined]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /v1/verifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
        f"{len(body)}\r\n"
        f"Authorization: Bearer {env.keys[Role.SUBMIT]}\r\nConnection: close\r\n"
    ).encode()
    writer.write(head + b"X-Upstream-Authorization: sk-\xff\xfe-key\r\n\r\n" + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 400 " in status_line, answer[:300]
    error = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert error["error"]["field"] == "X-Upstream-Authorization"


@pytest.mark.parametrize("chat_id", ["   ", "", "a b", "a\tb", "c" * 300])
async def test_a_blank_or_spaced_chat_id_is_a_400(env: Env, chat_id: str) -> None:
    body = {"request": "x", "response": '{"id": "c1"}', "model": "m", "chat_id": chat_id}
    await expect_400(await env.client.post("/v1/verifications", json=body, headers=env.auth(Role.SUBMIT)), "chat_id")


async def test_a_newline_in_model_is_a_400_and_cannot_forge_a_log_line(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    from verifier.app.logs import JsonFormatter

    caplog.set_level(logging.INFO)
    forged = 'm\n{"level": "info", "message": "request", "status": 201}'
    body = {"request": "x", "response": '{"id": "c1"}', "model": forged}
    await expect_400(await env.client.post("/v1/verifications", json=body, headers=env.auth(Role.SUBMIT)), "model")
    # whatever reaches a log line (here the path, user-controlled) stays inside one JSON line
    await env.client.get("/v1/verifications/%0A%7B%22forged%22%3A1%7D", headers=env.auth(Role.READ))
    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert lines and all("\n" not in line for line in lines)
    assert all(isinstance(json.loads(line), dict) for line in lines)
    access = [json.loads(line) for line in lines if '"logger":"verifier.access"' in line]
    assert any(a["path"].startswith("/v1/verifications/\n") for a in access)  # escaped in the line, intact in the field


@pytest.mark.parametrize(
    ("body", "field"), [({"at": 1, "colour": "x"}, "colour"), ({"when": 1}, "when"), ([1], None), ("now", None)]
)
async def test_reverify_rejects_unknown_fields_and_non_objects(env: Env, body: Any, field: str | None) -> None:
    from web_env import post

    verdict = await (await post(env)).json()
    resp = await env.client.post(f"/v1/verifications/{verdict['id']}/reverify", json=body, headers=env.auth())
    await expect_400(resp, field)


@pytest.mark.parametrize("query", ["signer=x%0Ay", "cursor=%00", "model=%20", "model=" + "m" * 300])
async def test_list_filters_with_control_characters_or_blank_are_a_400(env: Env, query: str) -> None:
    resp = await env.client.get(f"/v1/verifications?{query}", headers=env.auth(Role.READ))
    assert resp.status == 400, await resp.text()


@pytest.mark.parametrize("query", ["model=a%ED%A0%80", "model=%FF", "signer=%C0%80"])
async def test_list_filters_with_invalid_utf8_are_answered_not_a_500(env: Env, query: str) -> None:
    resp = await env.client.get(f"/v1/verifications?{query}", headers=env.auth(Role.READ))
    assert resp.status in (200, 400)  # the server decodes them to U+FFFD: an ordinary filter that matches nothing


@pytest.mark.parametrize(
    "path", ["/v1/verifications/%ED%A0%80", "/v1/verifications/v_%00", "/v1/verifications/" + "v" * 500]
)
async def test_odd_verdict_ids_are_a_404(env: Env, path: str) -> None:
    resp = await env.client.get(path, headers=env.auth(Role.READ))
    assert resp.status == 404
