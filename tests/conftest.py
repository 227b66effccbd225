"""Test-wide settings: tests import the fixture builders as a module; Hypothesis runs without wall-clock deadlines
(CI machines are shared; performance is measured by benchmarks/, never by timed assertions)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_bundle import Offline

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100)
settings.load_profile("ci")


@pytest.fixture(scope="module")
def offline() -> Iterator[Offline]:
    """One event loop and one dcap-qvl worker for a module's offline evaluations."""
    o = Offline()
    yield o
    o.close()
