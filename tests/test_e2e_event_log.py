"""End to end through HTTP (simulated gateway + the real service): the event-log rules decide the verdict.

The simulated CVM's quote always matches its (tampered) event log, so these verdicts come from the RTMR3 rules alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from verifier.demo import DemoResult, run_demo
from verifier.simulator.gateway import SimulatorConfig

NOW = 1_790_000_000


def clock() -> float:
    return float(NOW)


def checks(result: DemoResult) -> dict[str, tuple[str, str | None]]:
    return {c["id"]: (c["status"], c["reason"]) for c in result.verdict["checks"]}


async def verify(tmp_path: Path, **config: Any) -> DemoResult:
    (result,) = await run_demo(config=SimulatorConfig(clock=clock, **config), db_dir=tmp_path)
    assert result.http_status == 201
    return result


async def test_dstack_gpu_boot_events_pass_end_to_end(tmp_path: Path) -> None:
    result = await verify(tmp_path, dstack_gpu_events=True, gpu_count=2)
    assert result.verdict["status"] == "pass"
    assert checks(result)["tdx.app"] == ("pass", None)


@pytest.mark.parametrize(
    ("attacks", "check_id", "reason"),
    [
        ({"relabel_app_id"}, "tdx.event_log", "event_log_rtmr3_not_runtime"),
        ({"relabel_app_id", "relabel_system_ready"}, "tdx.event_log", "event_log_rtmr3_not_runtime"),
        ({"duplicate_app_id"}, "tdx.app", "event_log_duplicate_boot_event"),
        ({"missing_system_ready"}, "tdx.app", "event_log_no_system_ready"),
        ({"gpu_policy_hash_wrong"}, "tdx.app", "gpu_policy_hash_mismatch"),
    ],
    ids=["relabel-app-id", "relabel-app-id-and-system-ready", "duplicate-app-id", "no-system-ready", "gpu-policy"],
)
async def test_an_event_log_attack_is_not_a_pass(tmp_path: Path, attacks: set[str], check_id: str, reason: str) -> None:
    result = await verify(tmp_path, event_log_attacks=frozenset(attacks))
    assert result.verdict["status"] == "fail"
    assert checks(result)[check_id] == ("fail", reason)
