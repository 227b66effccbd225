"""Trust profiles by name — edge configuration: only the CLI and the web app choose one."""

from __future__ import annotations

from verifier.appraise.refs import Refs, load_refs, simulator_refs
from verifier.core.errors import ConfigError
from verifier.core.trust import PRODUCTION, SIMULATOR, TrustAnchors, production_anchors


def anchors_for(profile: str) -> TrustAnchors:
    if profile == PRODUCTION:
        return production_anchors()
    if profile == SIMULATOR:
        from verifier.simulator.anchors import simulator_anchors  # the edge may wire the simulator; the core never does

        return simulator_anchors()
    raise ConfigError(f"trust profile {profile!r}: expected {PRODUCTION!r} or {SIMULATOR!r}")


def refs_for(profile: str, refs_path: str | None) -> Refs | None:
    """The reference values a verification appraises software identity against: the file given; else, under the
    simulator profile only, the shipped simulator refs (its CVM's identity); else none (nothing is pinned)."""
    if refs_path:
        return load_refs(refs_path)
    return simulator_refs() if profile == SIMULATOR else None
