"""The HTTP API under test: the simulated gateway on loopback, the service in-process, one API key per role."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp.test_utils import TestClient
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from verifier.adapters.ledger import Ledger
from verifier.app.keys import KeyStore, Role
from verifier.demo import simulator_settings
from verifier.openapi import openapi_document
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig
from verifier.web import create_app

NOW = 1_790_000_000
API_KEY = "sk-test-secret-key-0123456789"
DOC = openapi_document()
REGISTRY: Registry[Any] = Registry().with_resource(
    "urn:openapi", Resource.from_contents(DOC, default_specification=DRAFT202012)
)


def clock() -> float:
    return float(NOW)


def valid(body: Any, name: str) -> None:
    jsonschema.Draft202012Validator({"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=REGISTRY).validate(
        body
    )


def make_keys(db: Path) -> dict[Role, str]:
    """One key per role in the ledger at ``db`` (created if needed)."""
    with Ledger.open(db) as ledger:
        store = KeyStore(ledger)
        return {role: store.create(role, f"test {role}")[1] for role in Role}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Env:
    client: TestClient[Any, Any]
    gateway: SimulatedGateway
    gateway_url: str
    db_path: Path
    keys: dict[Role, str] = field(default_factory=dict)

    def auth(self, role: Role = Role.ADMIN) -> dict[str, str]:
        return bearer(self.keys[role])


async def start(
    aiohttp_client: Any,
    aiohttp_server: Any,
    tmp_path: Path,
    *,
    config: SimulatorConfig | None = None,
    gateway_app: Any = None,
    **settings: Any,
) -> Env:
    gateway = SimulatedGateway(SimulatorWorld(), config or SimulatorConfig(clock=clock))
    server = await aiohttp_server(gateway_app or gateway.app())
    url = str(server.make_url("")).rstrip("/")
    db = tmp_path / "verifier.db"
    keys = make_keys(db)
    settings.setdefault("dcap_workers", 1)
    client = await aiohttp_client(create_app(simulator_settings(db, url, **settings), clock=clock))
    return Env(client, gateway, url, db, keys)


async def completion(env: Env, content: str = "hi", *, stream: bool = True) -> tuple[bytes, bytes]:
    request = json.dumps(
        {"model": "sim/echo-1", "stream": stream, "messages": [{"role": "user", "content": content}]}
    ).encode()
    async with env.client.session.post(f"{env.gateway_url}/v1/chat/completions", data=request) as resp:
        return request, await resp.read()


async def post(
    env: Env, *, role: Role = Role.SUBMIT, upstream_key: str = API_KEY, stream: bool = True, **extra: Any
) -> Any:
    request, response = await completion(env, stream=stream)
    body = {
        "request_b64": base64.b64encode(request).decode(),
        "response_b64": base64.b64encode(response).decode(),
        "model": "sim/echo-1",
        "gateway": env.gateway_url,
        **extra,
    }
    return await env.client.post(
        "/v1/verifications", json=body, headers={"X-Upstream-Authorization": upstream_key, **env.auth(role)}
    )
