"""Simulator evidence recorded through the real service, for offline attack tests.

``record`` runs the simulated gateway and the verifier service on loopback (``run_demo``), and returns the
recorded verdict with its evidence bundle exactly as the ledger keeps it. ``pins_policy`` pins the
recorded identity (app ids per model, MRTD and RTMR0-2) in a policy, the way an operator would after review.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from verifier.adapters.dcap.pool import DcapPool
from verifier.adapters.ledger import Ledger
from verifier.appraise.policy import Policy
from verifier.appraise.refs import Refs
from verifier.core.verdict import Verdict
from verifier.demo import run_demo
from verifier.engine.context import Context
from verifier.engine.evaluate import evaluate
from verifier.evidence.bundle import Bundle
from verifier.simulator import SimulatorWorld, simulator_anchors
from verifier.simulator.gateway import SimulatorConfig

NOW = 1_790_000_000  # 2026-09-21: the pinned time of every simulator recording


def clock() -> float:
    return float(NOW)


def record(
    db_dir: Path,
    *,
    report_format: str = "phala_flat",
    algo: str = "ecdsa",
    faults: tuple[str, ...] = (),
    gpu_count: int = 1,
    simulator: dict[str, Any] | None = None,
    world: SimulatorWorld | None = None,
    **settings: Any,
) -> tuple[dict[str, Any], Bundle]:
    config = SimulatorConfig(
        report_format=report_format,
        faults=frozenset(faults),
        clock=clock,
        gpu_count=gpu_count,
        three_part_text=report_format == "near_two_layer",
        **(simulator or {}),
    )
    (result,) = asyncio.run(run_demo(config=config, signing_algo=algo, db_dir=db_dir, world=world, **settings))
    with Ledger.open(result.db_path) as ledger:
        return result.verdict, Bundle.from_files(ledger.evidence(result.verdict["id"]))


def pins_policy(verdict: dict[str, Any], *, extra: str = "") -> bytes:
    claims, model = verdict["claims"], verdict["subject"]["model"]
    quotes = list(claims["tdx"].values())
    app_ids = sorted({a["app_id"] for a in claims["app"].values() if a.get("app_id")})

    def hexes(key: str) -> str:
        return json.dumps(sorted({q[key] for q in quotes}))

    return (
        f'[policy]\nid = "pinned-simulator"\n[tdx]\nallowed_mrtd = {hexes("mr_td")}\nallowed_rtmr0 = {hexes("rtmr0")}\n'
        f"allowed_rtmr1 = {hexes('rtmr1')}\nallowed_rtmr2 = {hexes('rtmr2')}\n"
        f'[tdx.app_ids]\n"{model}" = {json.dumps(app_ids)}\n{extra}'
    ).encode()


class Offline:
    """One event loop and one dcap-qvl worker for many offline evaluations (simulator anchors)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = DcapPool(size=1)
        self.loop.run_until_complete(self.pool.__aenter__())

    def verdict(self, bundle: Bundle, policy: Policy, *, now: int = NOW, refs: Refs | None = None) -> Verdict:
        ctx = Context(policy=policy, now=now, anchors=simulator_anchors(), quotes=self.pool, refs=refs)
        return self.loop.run_until_complete(evaluate(bundle, ctx)).verdict

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.__aexit__(None, None, None))
        self.loop.close()
