"""The ``simulator`` trust profile: the test roots of the default-seed ``SimulatorWorld``."""

from __future__ import annotations

from functools import lru_cache

from verifier.core.trust import TrustAnchors


@lru_cache(maxsize=1)
def simulator_anchors() -> TrustAnchors:
    from verifier.simulator.world import SimulatorWorld

    return SimulatorWorld().anchors
