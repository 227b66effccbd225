"""Simulated vendor evidence under TEST trust anchors — for tests and the offline demo only.

Recorded evidence can never carry a fresh nonce of ours, so this package mints real-format
evidence: Intel TDX quotes + DCAP collateral that dcap-qvl verifies against the simulator's root,
dstack event logs, NVIDIA SPDM GPU evidence and NRAS tokens. Production code never imports it;
only the edge (CLI/web, ``verifier.app.profiles``) may select the ``simulator`` trust profile.
Entry point: ``SimulatorWorld`` (``world.py``); anchors: ``simulator_anchors()``.
"""

from verifier.simulator.anchors import simulator_anchors
from verifier.simulator.world import DEFAULT_SEED, SimulatorWorld

__all__ = ["DEFAULT_SEED", "SimulatorWorld", "simulator_anchors"]
