"""The simulator's dstack boot options: valid GPU boot events pass; each event-log attack is a log consistent with
its quote (so only the event-log rules can catch it), and each is caught with its own reason code."""

from __future__ import annotations

import hashlib
import json

import pytest

from verifier.core.errors import CheckFailed
from verifier.evidence.dstack_identity import dstack_identity
from verifier.evidence.event_log import check_compose, check_replay, parse_event_log
from verifier.evidence.gpu_boot import check_gpu_boot
from verifier.evidence.quote import parse_quote
from verifier.simulator.event_log import ATTACKS, CvmOptions
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig
from verifier.simulator.world import SimulatorWorld

WORLD = SimulatorWorld()


def _appraise(world: SimulatorWorld, expected_gpus: int | None = None) -> None:
    """Everything the evidence layer checks of a CVM's log, against the simulated quote's RTMRs and mr_config_id."""
    report = parse_quote(world.tdx_quote(b"\x00" * 64)).report
    events = parse_event_log(json.dumps(world.event_log))
    check_replay(events, report.rtmrs)
    check_compose(
        app_compose=world.app_compose,
        claimed_compose_hash=world.compose_hash.hex(),
        events=events,
        mr_config_id=report.mr_config_id,
        quote_rtmr3=report.rtmrs[3],
    )
    ident = dstack_identity(events)
    if expected_gpus is not None:
        check_gpu_boot(ident.gpu_boot, expected_devices=expected_gpus)


def _supplied_replay(log: list[dict[str, object]]) -> tuple[bytes, ...]:
    mrs = [bytes(48)] * 4
    for e in log:
        i = int(str(e["imr"]))
        mrs[i] = hashlib.sha384(mrs[i] + bytes.fromhex(str(e["digest"]))).digest()
    return tuple(mrs)


def test_the_default_cvm_has_no_gpu_boot_events_and_passes() -> None:
    _appraise(WORLD)
    assert dstack_identity(parse_event_log(WORLD.event_log)).gpu_boot is None


@pytest.mark.parametrize("version", [1, 2])
def test_gpu_boot_events_for_n_gpus_pass(version: int) -> None:
    world = WORLD.with_cvm(CvmOptions(gpu_devices=8, event_log_version=version))
    _appraise(world, expected_gpus=8)
    ident = dstack_identity(parse_event_log(world.event_log))
    assert ident.gpu_boot is not None and ident.gpu_boot.devices == 8
    assert ident.gpu_boot.evidence_sha256 == hashlib.sha256(world.identity.gpu_attestation_output or b"").digest()
    assert ident.gpu_policy_hash == hashlib.sha256(b"{}").digest()
    names = [e.name for e in ident.boot_events]
    assert names[2:5] == ["compose-hash", "gpu-policy-hash", "gpu-attestation"]
    assert all(e.get("version") == (2 if version == 2 else None) for e in world.event_log if e["imr"] == 3)


def test_a_gpu_policy_in_the_app_compose_is_measured() -> None:
    compose = json.dumps({"name": "gpu", "requirements": {"gpu_policy": {"allow_devtools": False}}})
    world = WORLD.with_app_compose(compose).with_cvm(CvmOptions(gpu_devices=1))
    _appraise(world, expected_gpus=1)
    assert (
        dstack_identity(parse_event_log(world.event_log)).gpu_policy_hash
        == hashlib.sha256(b'{"allow_devtools":false}').digest()
    )


def test_app_events_after_system_ready_do_not_change_the_identity() -> None:
    world = WORLD.with_cvm(CvmOptions(app_events=(("app-id", b"\xee" * 20), ("LIUM_MINER_HOTKEY", b"5D33"))))
    _appraise(world)
    assert dstack_identity(parse_event_log(world.event_log)).app_id == WORLD.identity.app_id


ATTACK_REASONS = {
    "relabel_app_id": "event_log_rtmr3_not_runtime",
    "relabel_os_image_hash": "event_log_rtmr3_not_runtime",
    "relabel_key_provider": "event_log_rtmr3_not_runtime",
    "relabel_system_ready": "event_log_rtmr3_not_runtime",
    "duplicate_app_id": "event_log_duplicate_boot_event",
    "missing_system_ready": "event_log_no_system_ready",
    "gpu_events_out_of_order": "gpu_boot_event_out_of_order",
    "gpu_policy_hash_duplicated": "gpu_boot_event_duplicate",
    "gpu_attestation_duplicated": "gpu_boot_event_duplicate",
    "gpu_policy_hash_wrong": "gpu_policy_hash_mismatch",
    "gpu_cc_mode_off": "gpu_boot_cc_mode_off",
    "gpu_devtools_on": "gpu_boot_devtools_on",
    "gpu_devices_wrong": "gpu_boot_devices_mismatch",
}


def test_every_attack_has_its_reason_in_the_table() -> None:
    assert set(ATTACK_REASONS) == set(ATTACKS)


@pytest.mark.parametrize(("attack", "reason"), sorted(ATTACK_REASONS.items()))
def test_each_event_log_attack_is_consistent_with_its_quote_and_fails_with_its_reason(attack: str, reason: str) -> None:
    world = WORLD.with_cvm(CvmOptions(attacks=frozenset({attack})))
    assert _supplied_replay(world.event_log) == world.identity.rtmrs  # the quote's RTMRs are the log's
    with pytest.raises(CheckFailed) as ei:
        _appraise(world, expected_gpus=1)
    assert ei.value.reason == reason


@pytest.mark.parametrize(
    "attack", ["relabel_app_id", "relabel_os_image_hash", "relabel_key_provider", "relabel_system_ready"]
)
def test_a_relabelled_entry_keeps_dstacks_digest(attack: str) -> None:
    genuine = {e["event"]: e["digest"] for e in WORLD.event_log if e["imr"] == 3}
    log = WORLD.with_cvm(CvmOptions(attacks=frozenset({attack}))).event_log
    (relabelled,) = [e for e in log if e["imr"] == 3 and e["event_type"] != 0x08000001]
    assert relabelled["digest"] == genuine[relabelled["event"]]
    assert _supplied_replay(log)[:3] == WORLD.identity.rtmrs[:3]


def test_relabelling_app_id_and_system_ready_makes_the_forged_app_id_the_only_runtime_one() -> None:
    log = WORLD.with_cvm(CvmOptions(attacks=frozenset({"relabel_app_id", "relabel_system_ready"}))).event_log
    runtime_app_ids = [
        e["event_payload"] for e in log if e["imr"] == 3 and e["event_type"] == 0x08000001 and e["event"] == "app-id"
    ]
    assert runtime_app_ids and WORLD.identity.app_id.hex() not in runtime_app_ids
    assert not any(e["event"] == "system-ready" and e["event_type"] == 0x08000001 for e in log)


def test_unknown_attacks_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown event-log attacks"):
        CvmOptions(attacks=frozenset({"nope"}))
    with pytest.raises(ValueError, match="unknown event-log attacks"):
        SimulatorConfig(event_log_attacks=frozenset({"nope"}))


def test_the_gateway_config_knobs_rebuild_the_cvm() -> None:
    config = SimulatorConfig(gpu_count=2, dstack_gpu_events=True, event_log_attacks=frozenset({"gpu_devtools_on"}))
    gateway = SimulatedGateway(SimulatorWorld(), config)
    ident = dstack_identity(parse_event_log(gateway.world.event_log))
    assert ident.gpu_boot is not None and ident.gpu_boot.devices == 2 and ident.gpu_boot.devtools
    assert gateway.world.identity.rtmrs != WORLD.identity.rtmrs
    assert SimulatedGateway(SimulatorWorld(), SimulatorConfig()).world.identity.rtmrs == WORLD.identity.rtmrs
