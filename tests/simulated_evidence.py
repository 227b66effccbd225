"""Simulator-made evidence for the property tests: attestation reports fetched from the simulated gateway (its
public HTTP interface, on an in-process test server) in each format it speaks, the identity they attest, and the
simulator world itself (its quotes and collateral)."""

from __future__ import annotations

import asyncio
import functools

from aiohttp.test_utils import TestClient, TestServer

from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import FORMATS, SimulatedGateway, SimulatorConfig

NONCE = bytes(range(32))
MODEL = "sim/echo-1"


@functools.cache
def world() -> SimulatorWorld:
    return SimulatorWorld()


@functools.cache
def signer_address(algo: str) -> str:
    return SimulatedGateway(world()).signer(algo).address


@functools.cache
def simulated_report(report_format: str, algo: str = "ecdsa") -> bytes:
    """``GET /v1/attestation/report`` of a simulated gateway speaking ``report_format`` (one of ``FORMATS``)."""
    assert report_format in FORMATS

    async def fetch() -> bytes:
        gateway = SimulatedGateway(world(), SimulatorConfig(report_format=report_format))
        async with TestClient(TestServer(gateway.app())) as client:
            resp = await client.get(
                "/v1/attestation/report", params={"nonce": NONCE.hex(), "signing_algo": algo, "model": MODEL}
            )
            assert resp.status == 200
            return await resp.read()

    return asyncio.run(fetch())
