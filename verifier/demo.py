"""`verifier demo`: the simulator and the verifier service on loopback, one verification end to end.

Works on a fresh machine with no network and no API key: the simulated gateway answers a chat
completion, the service verifies it over HTTP exactly as it would a real one (signature, fresh
nonce, report, TDX quote through the dcap-qvl workers, collateral from the simulator's PCCS, GPU
evidence, NRAS) under the ``simulator`` trust profile, and records the verdict in SQLite. The demo makes its
own API key (a ``submit`` key in its temporary ledger) and sends it like any caller would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from verifier.adapters.ledger import Ledger
from verifier.app.keys import KeyStore, Role
from verifier.app.settings import Settings
from verifier.core.trust import SIMULATOR
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig
from verifier.web import create_app


@dataclass(frozen=True, slots=True)
class DemoResult:
    verdict: dict[str, Any]
    http_status: int
    db_path: Path
    gateway: SimulatedGateway
    gateway_url: str
    service_url: str
    api_key: str = ""  # the demo's own submit key


@contextlib.asynccontextmanager
async def serve(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """Run `app` on an ephemeral loopback port (over TLS with ``ssl_context``); yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def simulator_settings(db_path: Path, gateway_url: str, **overrides: Any) -> Settings:
    return Settings(
        db_path=str(db_path),
        trust_profile=SIMULATOR,
        allow_gateways=(gateway_url,),
        default_gateway=gateway_url,
        pcs_url=gateway_url,
        pccs=True,
        nras_url=gateway_url,
        **overrides,
    )


async def run_demo(
    *,
    report_format: str = "phala_flat",
    signing_algo: str = "ecdsa",
    stream: bool = True,
    db_dir: Path | None = None,
    model: str = "sim/echo-1",
    config: SimulatorConfig | None = None,
    rounds: int = 1,
    world: SimulatorWorld | None = None,
    **settings: Any,
) -> list[DemoResult]:
    """Simulated gateway + service; `rounds` concurrent completions, each verified through HTTP. With
    ``config.tls`` the gateway is served over loopback TLS, and the client and the service trust its test CA."""
    workdir = db_dir or Path(tempfile.mkdtemp(prefix="verifier-demo-"))
    db_path = workdir / "verifier.db"
    config = config or SimulatorConfig(report_format=report_format, three_part_text=report_format == "near_two_layer")
    gateway = SimulatedGateway(world or SimulatorWorld(), config)
    settings.setdefault("dcap_workers", 1)
    client_ssl: ssl.SSLContext | bool = True
    if gateway.tls is not None:
        settings.setdefault("ca_file", str(gateway.tls.write_ca(workdir / "simulator-ca.pem")))
        client_ssl = gateway.tls.client_context()
    with Ledger.open(db_path) as ledger:
        _, api_key = KeyStore(ledger).create(Role.SUBMIT, "verifier demo")
    auth = {"Authorization": f"Bearer {api_key}"}
    async with (
        serve(gateway.app(), gateway.ssl_context() if gateway.tls else None) as gateway_url,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl)) as client,
        serve(create_app(simulator_settings(db_path, gateway_url, **settings), clock=config.clock)) as service_url,
    ):

        async def one(i: int) -> DemoResult:
            request = json.dumps(
                {
                    "model": model,
                    "stream": stream,
                    "messages": [{"role": "user", "content": f"Is answer {i} from a TEE?"}],
                }
            ).encode()
            async with client.post(
                f"{gateway_url}/v1/chat/completions", data=request, headers={"Content-Type": "application/json"}
            ) as resp:
                response = await resp.read()  # the exact bytes received
            async with client.post(
                f"{service_url}/v1/verifications",
                json={
                    "request_b64": base64.b64encode(request).decode(),
                    "response_b64": base64.b64encode(response).decode(),
                    "model": model,
                    "gateway": gateway_url,
                    "signing_algo": signing_algo,
                },
                headers=auth,
            ) as answer:
                verdict = await answer.json()
                return DemoResult(
                    verdict=verdict,
                    http_status=answer.status,
                    db_path=db_path,
                    gateway=gateway,
                    gateway_url=gateway_url,
                    service_url=service_url,
                    api_key=api_key,
                )

        return list(await asyncio.gather(*(one(i) for i in range(rounds))))


# --- `verifier demo --serve`: the simulator and the service stay up with a small ledger the dashboard can show


@dataclass(frozen=True, slots=True)
class DemoService:
    service_url: str
    gateway_url: str
    db_path: Path
    read_key: str  # a `read` key for the dashboard's login form
    verdicts: tuple[dict[str, Any], ...]


DEMO_FAULTS = ("substituted_nonce", "debug_td", "wrong_signer")  # failures for the dashboard to show


@contextlib.asynccontextmanager
async def serving_demo(*, db_dir: Path | None = None, port: int = 0, passes: int = 3) -> AsyncIterator[DemoService]:
    """Simulated gateway + service on loopback (service on ``port``; 0 = any); ``passes`` honest verifications and
    one per ``DEMO_FAULTS``, recorded; a fresh ``read`` key. Both stay up while the context is open."""
    workdir = db_dir or Path(tempfile.mkdtemp(prefix="verifier-demo-"))
    db_path = workdir / "verifier.db"
    gateway = SimulatedGateway(SimulatorWorld(), SimulatorConfig())
    with Ledger.open(db_path) as ledger:
        _, submit_key = KeyStore(ledger).create(Role.SUBMIT, "verifier demo")
        _, read_key = KeyStore(ledger).create(Role.READ, "verifier demo dashboard")
    auth = {"Authorization": f"Bearer {submit_key}"}
    runner: web.AppRunner | None = None
    async with serve(gateway.app()) as gateway_url, aiohttp.ClientSession() as client:
        runner = web.AppRunner(create_app(simulator_settings(db_path, gateway_url, dcap_workers=1)), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            service_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            verdicts = []
            for faults in [frozenset[str]()] * passes + [frozenset({f}) for f in DEMO_FAULTS]:
                gateway.config = SimulatorConfig(faults=faults)
                verdicts.append(await _verify_once(client, gateway_url, service_url, auth))
            yield DemoService(service_url, gateway_url, db_path, read_key, tuple(verdicts))
        finally:
            await runner.cleanup()


async def _verify_once(
    client: aiohttp.ClientSession, gateway_url: str, service_url: str, auth: dict[str, str]
) -> dict[str, Any]:
    request = json.dumps(
        {"model": "sim/echo-1", "stream": True, "messages": [{"role": "user", "content": "Is this answer from a TEE?"}]}
    ).encode()
    async with client.post(
        f"{gateway_url}/v1/chat/completions", data=request, headers={"Content-Type": "application/json"}
    ) as resp:
        response = await resp.read()
    async with client.post(
        f"{service_url}/v1/verifications",
        headers=auth,
        json={
            "request_b64": base64.b64encode(request).decode(),
            "response_b64": base64.b64encode(response).decode(),
            "model": "sim/echo-1",
            "gateway": gateway_url,
        },
    ) as answer:
        verdict: dict[str, Any] = await answer.json()
        return verdict
