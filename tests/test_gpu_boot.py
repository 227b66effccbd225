"""dstack's GPU boot events: the gpu-attestation payload, gpu-policy-hash (RFC 8785 JCS), their order and appraisal."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate
from verifier.evidence.dstack_identity import dstack_identity
from verifier.evidence.event_log import RUNTIME_EVENT_TYPE, Event, check_compose
from verifier.evidence.gpu_boot import (
    DEFAULT_POLICY_HASH,
    GpuBootAttestation,
    GpuPolicy,
    check_gpu_boot,
    check_gpu_boot_policy,
    check_gpu_policy_hash,
    gpu_policy_hash,
    parse_gpu_attestation,
    parse_gpu_policy,
)

EVIDENCE = "ab" * 32
# the shape docs/security/security-model.md ("Dual Attestation") shows, as dstack serializes it (struct order, compact)
GOOD = {
    "version": 2,
    "provider": "nvidia",
    "devices": 1,
    "cc_mode": "on",
    "devtools": False,
    "evidence_sha256": EVIDENCE,
}
EMPTY_POLICY = hashlib.sha256(b"{}").digest()


def _payload(**changes: Any) -> bytes:
    return json.dumps({**GOOD, **changes}, separators=(",", ":")).encode()


def test_gpu_attestation_payload_parses() -> None:
    assert parse_gpu_attestation(_payload(devices=8, devtools=True)) == GpuBootAttestation(
        version=2, provider="nvidia", devices=8, cc_mode="on", devtools=True, evidence_sha256=bytes.fromhex(EVIDENCE)
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff",
        b"not json",
        b"[]",
        b"[" * 50000,
        _payload(version=1),
        _payload(version=3),
        _payload(version="2"),
        _payload(version=True),
        _payload(provider="amd"),
        _payload(devices=-1),
        _payload(devices=1.0),
        _payload(devices=True),
        _payload(devices=2**32),
        _payload(cc_mode=None),
        _payload(devtools=0),
        _payload(devtools="false"),
        _payload(evidence_sha256="AB" * 32),
        _payload(evidence_sha256="ab" * 31),
        _payload(evidence_sha256=None),
        _payload(policy="v1"),
        json.dumps({k: v for k, v in GOOD.items() if k != "devtools"}).encode(),
        b'{"version":2,"version":2,"provider":"nvidia","devices":1,"cc_mode":"on","devtools":false,"evidence_sha256":"'
        + EVIDENCE.encode()
        + b'"}',
    ],
)
def test_malformed_gpu_attestation_payloads_are_evidence_errors(payload: bytes) -> None:
    with pytest.raises(EvidenceError):
        parse_gpu_attestation(payload)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200)
    | st.builds(
        lambda d: json.dumps({**GOOD, **d}).encode(),
        st.dictionaries(
            st.sampled_from([*sorted(GOOD), "x"]),
            st.none() | st.booleans() | st.integers() | st.text(max_size=70),
            max_size=3,
        ),
    )
)
def test_parse_gpu_attestation_raises_only_evidence_error(payload: bytes) -> None:
    with contextlib.suppress(EvidenceError):
        parse_gpu_attestation(payload)


# ---------------------------------------------------------------------------------------------- gpu-policy-hash


def test_gpu_policy_hash_matches_dstacks_own_vectors() -> None:
    # dstack-util system_setup.rs test gpu_policy_measurement_defaults_to_empty_object_and_uses_raw_json
    assert gpu_policy_hash("{}") == EMPTY_POLICY
    assert gpu_policy_hash('{"requirements": {}}') == EMPTY_POLICY
    assert gpu_policy_hash('{"requirements": {"gpu_policy": {}}}') == EMPTY_POLICY
    explicit_default = gpu_policy_hash('{"requirements":{"gpu_policy":{"attest_gpu":true}}}')
    assert explicit_default != EMPTY_POLICY
    assert explicit_default == hashlib.sha256(b'{"attest_gpu":true}').digest()
    reordered = '{\n "requirements": {"gpu_policy": {"rego": "package policy", "allow_debug": false}}}'
    canonical = '{"requirements":{"gpu_policy":{"allow_debug":false,"rego":"package policy"}}}'
    assert gpu_policy_hash(reordered) == gpu_policy_hash(canonical)


def test_gpu_policy_hash_reads_only_the_json_pointer() -> None:
    assert gpu_policy_hash('{"requirements": []}') == EMPTY_POLICY
    assert gpu_policy_hash('{"gpu_policy": {"attest_gpu": false}}') == EMPTY_POLICY
    assert gpu_policy_hash("[1]") == EMPTY_POLICY


@pytest.mark.parametrize(
    "compose",
    [
        "services: {}",
        '{"requirements":{"gpu_policy":{"n":1e999}}}',
        '{"requirements":{"gpu_policy":{"n":18446744073709551616}}}',
        '{"requirements":{"gpu_policy":"\\ud800"}}',
        "[" * 50000,
    ],
)
def test_gpu_policy_hash_of_an_unhashable_app_compose_is_evidence_error(compose: str) -> None:
    with pytest.raises(EvidenceError):
        gpu_policy_hash(compose)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_gpu_policy_hash_raises_only_evidence_error(compose: str) -> None:
    with contextlib.suppress(EvidenceError):
        assert len(gpu_policy_hash(compose)) == 32


def test_check_gpu_policy_hash_compares_with_the_app_compose() -> None:
    check_gpu_policy_hash(EMPTY_POLICY, "{}")
    with pytest.raises(CheckFailed) as ei:
        check_gpu_policy_hash(EMPTY_POLICY, '{"requirements":{"gpu_policy":{"allow_devtools":true}}}')
    assert ei.value.reason == "gpu_policy_hash_mismatch" and ei.value.details["got"] == EMPTY_POLICY.hex()


# ---------------------------------------------------------------------------------------------- order, uniqueness


def _rt(name: str, payload: bytes = b"") -> Event:
    return Event(imr=3, event_type=RUNTIME_EVENT_TYPE, digest=None, event=name, payload=payload, version=1)


COMPOSE = '{"name":"gpu-app"}'
POLICY = _rt("gpu-policy-hash", gpu_policy_hash(COMPOSE))
ATTESTATION = _rt("gpu-attestation", _payload(devices=2))


def _log(*gpu: Event, after: tuple[Event, ...] = ()) -> list[Event]:
    return [
        _rt("system-preparing"),
        _rt("app-id", b"\x11" * 20),
        _rt("compose-hash", hashlib.sha256(COMPOSE.encode()).digest()),
        *gpu,
        _rt("instance-id", b"\x33" * 20),
        _rt("boot-mr-done"),
        _rt("key-provider", b'{"name":"kms","id":"ab"}'),
        _rt("system-ready"),
        *after,
    ]


def _reason(events: list[Event]) -> str:
    with pytest.raises((CheckFailed, EvidenceError)) as ei:
        dstack_identity(events)
    return ei.value.reason


def test_gpu_boot_events_in_dstack_order_are_read() -> None:
    ident = dstack_identity(
        _log(_rt("init-script-hash", b"\x01" * 32), _rt("init-script-hash", b"\x02" * 32), POLICY, ATTESTATION)
    )
    assert ident.gpu_policy_hash == gpu_policy_hash(COMPOSE)
    assert ident.gpu_boot is not None and ident.gpu_boot.devices == 2
    assert ident.payloads("init-script-hash") == (b"\x01" * 32, b"\x02" * 32)


def test_a_gpu_less_launch_has_a_policy_hash_and_no_gpu_attestation() -> None:
    ident = dstack_identity(_log(POLICY))
    assert ident.gpu_policy_hash is not None and ident.gpu_boot is None


def test_a_gpu_attestation_the_app_emitted_after_system_ready_does_not_count() -> None:
    assert dstack_identity(_log(POLICY, after=(ATTESTATION,))).gpu_boot is None


@pytest.mark.parametrize(
    "gpu",
    [
        (ATTESTATION, POLICY),
        (ATTESTATION,),
        (POLICY, _rt("init-script-hash", b"\x01" * 32), ATTESTATION),
    ],
    ids=["attestation-first", "attestation-without-policy", "something-between"],
)
def test_gpu_events_out_of_order_fail(gpu: tuple[Event, ...]) -> None:
    assert _reason(_log(*gpu)) == "gpu_boot_event_out_of_order"


def test_gpu_policy_hash_not_directly_after_compose_hash_fails() -> None:
    events = _log()
    events.insert(events.index(_rt("instance-id", b"\x33" * 20)) + 1, POLICY)
    assert _reason(events) == "gpu_boot_event_out_of_order"


@pytest.mark.parametrize(
    "gpu",
    [(POLICY, POLICY, ATTESTATION), (POLICY, ATTESTATION, ATTESTATION)],
    ids=["policy-twice", "attestation-twice"],
)
def test_gpu_events_twice_fail(gpu: tuple[Event, ...]) -> None:
    assert _reason(_log(*gpu)) == "gpu_boot_event_duplicate"


@pytest.mark.parametrize("gpu", [(_rt("gpu-policy-hash", b"\x01" * 31),), (POLICY, _rt("gpu-attestation", b"{}"))])
def test_malformed_gpu_boot_payloads_are_evidence_errors(gpu: tuple[Event, ...]) -> None:
    assert _reason(_log(*gpu)) == "malformed_evidence"


def _compose(events: list[Event], app_compose: str | None) -> bytes:
    return check_compose(
        app_compose=app_compose,
        claimed_compose_hash=None,
        events=events,
        mr_config_id=b"\x01" + hashlib.sha256(COMPOSE.encode()).digest() + bytes(15),
    )


def test_check_compose_checks_the_gpu_policy_hash_against_the_app_compose() -> None:
    assert _compose(_log(POLICY, ATTESTATION), COMPOSE) == hashlib.sha256(COMPOSE.encode()).digest()
    _compose(_log(_rt("gpu-policy-hash", bytes(32))), None)  # without app_compose there is nothing to compare
    with pytest.raises(CheckFailed) as ei:
        _compose(_log(_rt("gpu-policy-hash", bytes(32))), COMPOSE)
    assert ei.value.reason == "gpu_policy_hash_mismatch"
    assert ei.value.details == {"expected": gpu_policy_hash(COMPOSE).hex(), "got": bytes(32).hex()}


# ---------------------------------------------------------------------------------------------- appraisal


def _gpu(**changes: Any) -> GpuBootAttestation:
    return parse_gpu_attestation(_payload(**changes))


def test_check_gpu_boot_passes_a_good_attestation() -> None:
    assert check_gpu_boot(_gpu(devices=8), expected_devices=8).devices == 8
    assert check_gpu_boot(_gpu(), expected_devices=None).devices == 1


@pytest.mark.parametrize(
    ("gpu", "expected", "reason"),
    [
        (None, 1, "gpu_boot_attestation_missing"),
        (_gpu(devices=7), 8, "gpu_boot_devices_mismatch"),
        (_gpu(devices=0), None, "gpu_boot_devices_mismatch"),
        (_gpu(cc_mode="off"), 1, "gpu_boot_cc_mode_off"),
        (_gpu(cc_mode="devtools"), 1, "gpu_boot_cc_mode_off"),
        (_gpu(devtools=True), 1, "gpu_boot_devtools_on"),
    ],
    ids=["missing", "count", "zero", "cc-off", "cc-other", "devtools"],
)
def test_check_gpu_boot_fails_each_rule(gpu: GpuBootAttestation | None, expected: int | None, reason: str) -> None:
    with pytest.raises(CheckFailed) as ei:
        check_gpu_boot(gpu, expected_devices=expected)
    assert ei.value.reason == reason


def _policy_compose(policy: object) -> str:
    return json.dumps({"name": "gpu", "requirements": {"gpu_policy": policy}})


def test_parse_gpu_policy_reads_dstacks_defaults_and_flags() -> None:
    assert parse_gpu_policy("{}") == GpuPolicy()
    assert parse_gpu_policy(_policy_compose({"allow_debug": True, "rego": "package policy"})) == GpuPolicy(
        allow_debug=True, rego="package policy"
    )
    assert parse_gpu_policy(_policy_compose({"attest_gpu": False})).attest_gpu is False


@pytest.mark.parametrize("policy", [[], "x", {"allow_debug": 1}, {"unknown": True}, {"rego": 5}, {"attest_gpu": None}])
def test_malformed_gpu_policies_are_evidence_errors(policy: object) -> None:
    with pytest.raises(EvidenceError):
        parse_gpu_policy(_policy_compose(policy))


def test_a_default_or_strict_gpu_policy_passes() -> None:
    assert check_gpu_boot_policy(DEFAULT_POLICY_HASH, None) == GpuPolicy()
    assert check_gpu_boot_policy(DEFAULT_POLICY_HASH, "{}") == GpuPolicy()
    strict = _policy_compose({"rego": "package policy", "allow_devtools": False})
    assert check_gpu_boot_policy(gpu_policy_hash(strict), strict).rego == "package policy"


@pytest.mark.parametrize(
    ("policy", "waived"),
    [
        ({"allow_devtools": True}, ["allow_devtools"]),
        ({"allow_debug": True}, ["allow_debug"]),
        ({"allow_insecure_boot": True}, ["allow_insecure_boot"]),
        ({"attest_gpu": False}, ["attest_gpu=false"]),
    ],
)
def test_a_gpu_policy_that_waives_a_check_fails(policy: dict[str, bool], waived: list[str]) -> None:
    compose = _policy_compose(policy)
    with pytest.raises(CheckFailed) as ei:
        check_gpu_boot_policy(gpu_policy_hash(compose), compose)
    assert ei.value.reason == "gpu_boot_policy_relaxed" and ei.value.details["got"] == waived


def test_a_non_default_gpu_policy_without_app_compose_is_indeterminate() -> None:
    with pytest.raises(Indeterminate) as ei:
        check_gpu_boot_policy(gpu_policy_hash(_policy_compose({"allow_debug": True})), None)
    assert ei.value.reason == "gpu_boot_policy_unknown"


def test_a_gpu_policy_hash_that_is_not_the_app_composes_fails() -> None:
    with pytest.raises(CheckFailed) as ei:
        check_gpu_boot_policy(DEFAULT_POLICY_HASH, _policy_compose({"allow_debug": True}))
    assert ei.value.reason == "gpu_policy_hash_mismatch"
