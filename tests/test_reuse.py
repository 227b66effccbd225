"""The attestation reuse window cannot be stretched: only a fresh fetch of ours is ever a reuse source.

Review finding: a verdict that reused an attestation recorded `captured_at = now`, and re-verifying it made a new
reuse source, so one report stretched over 50 minutes with a 600 s window. Here: fetch, reuse, re-verify the
reused verdict, reuse again (from the ORIGINAL, its age measured from the original fetch), then the window ends.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import aiohttp

from verifier.adapters.ledger import Ledger
from verifier.demo import serve, simulator_settings
from verifier.evidence.bundle import Bundle
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig
from verifier.web import create_app

T0 = 1_790_000_000


class Clock:
    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


async def test_a_reused_attestation_is_never_relaundered_and_ages_from_its_original_fetch(tmp_path: Path) -> None:
    clock = Clock()
    policy = tmp_path / "reuse.toml"
    policy.write_text('[policy]\nid = "reuse-600"\n[attestation]\nmax_attestation_age = 600\n')
    gateway = SimulatedGateway(SimulatorWorld(), SimulatorConfig(clock=clock))
    db = tmp_path / "v.db"
    async with (
        serve(gateway.app()) as gw,
        aiohttp.ClientSession() as client,
        serve(
            create_app(simulator_settings(db, gw, policy_path=str(policy), dcap_workers=1, auth=False), clock=clock)
        ) as svc,
    ):

        async def verify(at: int) -> dict:
            clock.now = float(at)
            request = json.dumps(
                {"model": "sim/echo-1", "messages": [{"role": "user", "content": f"hi {at}"}]}
            ).encode()
            async with client.post(f"{gw}/v1/chat/completions", data=request) as r:
                response = await r.read()
            async with client.post(
                f"{svc}/v1/verifications",
                json={
                    "request_b64": base64.b64encode(request).decode(),
                    "response_b64": base64.b64encode(response).decode(),
                    "model": "sim/echo-1",
                    "gateway": gw,
                },
            ) as answer:
                assert answer.status == 201
                return await answer.json()

        first = await verify(T0)
        assert first["attestation"]["origin"] == "fetched" and first["attestation"]["fetched_at"] == T0
        second = await verify(T0 + 100)
        assert second["attestation"] == {
            **second["attestation"],
            "origin": "reused",
            "reused_from": first["id"],
            "fetched_at": T0,
            "age_s": 100,
        }
        assert "reused_attestation" in {n["code"] for n in second["notes"]}

        clock.now = float(T0 + 200)
        async with client.post(f"{svc}/v1/verifications/{second['id']}/reverify", json={"at": T0 + 200}) as answer:
            third = await answer.json()
        assert third["supersedes"] == second["id"] and third["attestation"]["origin"] == "reused"

        fourth = await verify(
            T0 + 550
        )  # still the original's window: reused from the first, never from the re-verification
        assert fourth["attestation"]["reused_from"] == first["id"] and fourth["attestation"]["age_s"] == 550
        fifth = await verify(T0 + 700)  # the original's window is over: a fresh report
        assert fifth["attestation"]["origin"] == "fetched" and fifth["attestation"]["reused_from"] is None

    assert len(gateway.requests_seen) == 2  # two report fetches for five verifications
    with Ledger.open(db) as ledger:
        exported = Bundle.from_files(ledger.evidence(second["id"]))
    assert (exported.meta.reused_from, exported.meta.report_fetched_at) == (first["id"], T0)
