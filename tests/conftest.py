"""Test-wide settings: tests import the fixture builders as a module; Hypothesis runs without wall-clock deadlines
(CI machines are shared; performance is measured by benchmarks/, never by timed assertions)."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100)
settings.load_profile("ci")
