"""dstack event log: replay to the quote's RTMRs on real reports, RTMR3 digest recomputation, compose hash."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.event_log import (
    RUNTIME_EVENT_TYPE,
    Event,
    check_compose,
    check_replay,
    compose_binding,
    parse_event_log,
    replay_rtmrs,
    runtime_digest,
    runtime_event,
)
from verifier.evidence.quote import decode_quote_text, parse_quote

ATT = Path(__file__).resolve().parent.parent / "fixtures" / "redpill" / "attestation"
SUB = ATT / "phala-flat-ecdsa-substituted-nonce-nanogpt-20260325"


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


PHALA = _load(ATT / "phala-flat-ecdsa-nanogpt-gemma-20260610" / "attestation_report.json")
NEAR = _load(ATT / "nearcloud-two-layer-ed25519-tls-20260629" / "attestation_report.json")
GETQUOTE = _load(ATT / "dstack-getquote-sample" / "dstack_getquote_response.json")
GETQUOTE_EXPECTED = _load(ATT / "dstack-getquote-sample" / "expected.json")

# (label, attestation entry with intel_quote/quote + event_log + info)
REPORTS: list[tuple[str, dict[str, Any]]] = [
    ("phala-flat", PHALA),
    ("near-gateway", NEAR["gateway_attestation"]),
    ("near-model", NEAR["model_attestations"][0]),
    ("substituted-gpt-oss", _load(SUB / "gpt-oss-120b_attestation_report.json")),
    ("substituted-qwen", _load(SUB / "qwen3.5-27b_attestation_report.json")),
]
IDS = [r[0] for r in REPORTS]


def _quote(att: dict[str, Any]) -> Any:
    return parse_quote(decode_quote_text(att.get("intel_quote") or att["quote"]))


def _tcb(att: dict[str, Any]) -> dict[str, Any]:
    tcb = att["info"]["tcb_info"]
    return json.loads(tcb) if isinstance(tcb, str) else tcb


@pytest.mark.parametrize(("label", "att"), REPORTS, ids=IDS)
def test_top_level_event_log_replays_to_quote_rtmrs(label: str, att: dict[str, Any]) -> None:
    q = _quote(att)
    events = parse_event_log(att["event_log"])  # str in phala/gateway, list in the NEAR model entry
    assert replay_rtmrs(events) == q.report.rtmrs
    check_replay(events, q.report.rtmrs)


@pytest.mark.parametrize(("label", "att"), REPORTS, ids=IDS)
def test_tcb_info_event_log_with_filled_digests_replays_too(label: str, att: dict[str, Any]) -> None:
    events = parse_event_log(_tcb(att)["event_log"])
    assert all(e.digest is not None for e in events)
    check_replay(events, _quote(att).report.rtmrs)


def test_phala_top_level_rtmr3_digests_are_empty_and_recomputed() -> None:
    events = parse_event_log(PHALA["event_log"])
    rt = [e for e in events if e.imr == 3]
    assert rt and all(e.digest is None and e.event_type == RUNTIME_EVENT_TYPE for e in rt)


def test_dstack_getquote_sample_replays_and_names_imr3_events() -> None:
    q = parse_quote(decode_quote_text(GETQUOTE["quote"]))
    events = parse_event_log(GETQUOTE["event_log"])
    check_replay(events, q.report.rtmrs)
    # expected.json truncates payloads to 80 hex chars
    assert [[e.event, e.payload.hex()[:80]] for e in events if e.imr == 3] == GETQUOTE_EXPECTED["imr3_events"]
    assert q.report.report_data.hex() == GETQUOTE_EXPECTED["report_data"]


def test_flipped_digest_fails_with_event_log_mismatch() -> None:
    att = NEAR["gateway_attestation"]
    events = list(parse_event_log(att["event_log"]))
    i = next(k for k, e in enumerate(events) if e.imr == 1)
    d = bytearray(events[i].digest or b"")
    d[0] ^= 1
    events[i] = dataclasses.replace(events[i], digest=bytes(d))
    q = _quote(att)
    with pytest.raises(CheckFailed) as ei:
        check_replay(events, q.report.rtmrs)
    assert ei.value.reason == "event_log_mismatch"
    assert set(ei.value.details) == {"rtmr1"}
    assert ei.value.details["rtmr1"]["expected"] == q.report.rtmrs[1].hex()


def test_tampered_rtmr3_payload_with_original_digest_fails_with_event_digest_mismatch() -> None:
    att = NEAR["model_attestations"][0]
    events = list(parse_event_log(att["event_log"]))
    i = next(k for k, e in enumerate(events) if e.event == "compose-hash")
    assert events[i].digest is not None
    events[i] = dataclasses.replace(events[i], payload=bytes(32))
    with pytest.raises(CheckFailed) as ei:
        replay_rtmrs(events)
    assert ei.value.reason == "event_digest_mismatch"
    assert ei.value.details["got"] == (events[i].digest or b"").hex()


def test_tampered_rtmr3_payload_without_digest_fails_replay() -> None:
    events = list(parse_event_log(PHALA["event_log"]))
    i = next(k for k, e in enumerate(events) if e.event == "compose-hash")
    events[i] = dataclasses.replace(events[i], payload=bytes(32))
    with pytest.raises(CheckFailed) as ei:
        check_replay(events, _quote(PHALA).report.rtmrs)
    assert ei.value.reason == "event_log_mismatch" and set(ei.value.details) == {"rtmr3"}


def test_missing_rtmr0_digest_is_evidence_error() -> None:
    events = list(parse_event_log(PHALA["event_log"]))
    events[0] = dataclasses.replace(events[0], digest=None)
    with pytest.raises(EvidenceError, match="no digest"):
        replay_rtmrs(events)


def test_v2_runtime_digest_is_sha384_of_jcs_name_payload_type() -> None:
    # dstack's own vector (dstack-types EventLogVersion::V2 / sdk canonicalEventJsonV2 test)
    ev = Event(
        imr=3, event_type=RUNTIME_EVENT_TYPE, digest=None, event="app-id", payload=bytes.fromhex("dead"), version=2
    )
    pre = b'{"name":"app-id","payload":"dead","type":134217729}'
    assert runtime_digest(ev) == hashlib.sha384(pre).digest()
    odd = dataclasses.replace(ev, event='a"b\\c\nd', payload=b"\x00")
    assert runtime_digest(odd) == hashlib.sha384(b'{"name":"a\\"b\\\\c\\nd","payload":"00","type":134217729}').digest()
    v1 = dataclasses.replace(ev, version=1)
    assert runtime_digest(v1) == hashlib.sha384((0x08000001).to_bytes(4, "little") + b":app-id:\xde\xad").digest()


def test_v2_entries_are_parsed_and_checked() -> None:
    good = hashlib.sha384(b'{"name":"app-id","payload":"dead","type":134217729}').hexdigest()
    entry = {
        "imr": 3,
        "event_type": RUNTIME_EVENT_TYPE,
        "digest": good,
        "event": "app-id",
        "event_payload": "dead",
        "version": 2,
    }
    (ev,) = parse_event_log([entry])
    assert ev.version == 2
    replay_rtmrs([ev])
    with pytest.raises(CheckFailed) as ei:
        replay_rtmrs(parse_event_log([{**entry, "version": 1}]))
    assert ei.value.reason == "event_digest_mismatch"


def _rt(name: str, payload: bytes = b"") -> Event:
    return Event(imr=3, event_type=RUNTIME_EVENT_TYPE, digest=None, event=name, payload=payload, version=1)


def _boot(app_id: bytes = b"\x01") -> list[Event]:
    return [
        _rt("app-id", app_id),
        _rt("compose-hash", bytes(32)),
        _rt("instance-id"),
        _rt("key-provider", b'{"name":"none","id":""}'),
    ]


def test_runtime_event_uses_only_events_before_system_ready() -> None:
    events = [*_boot(), _rt("system-ready"), _rt("app-id", b"\x02")]
    assert runtime_event(events, "app-id") == b"\x01"
    assert runtime_event(events, "os-image-hash") is None
    with pytest.raises(CheckFailed) as ei:
        runtime_event([*_boot(), _rt("app-id"), _rt("system-ready")], "app-id")
    assert ei.value.reason == "event_log_duplicate_boot_event"


def test_runtime_event_refuses_a_non_runtime_rtmr3_entry() -> None:
    fake = Event(imr=3, event_type=0, digest=bytes(48), event="app-id", payload=b"\x03", version=1)
    with pytest.raises(CheckFailed) as ei:
        runtime_event([fake, *_boot(), _rt("system-ready")], "app-id")
    assert ei.value.reason == "event_log_rtmr3_not_runtime"
    assert ei.value.details == {"index": 0, "event": "app-id", "expected": RUNTIME_EVENT_TYPE, "got": 0}


def test_runtime_event_without_system_ready_fails() -> None:
    with pytest.raises(CheckFailed) as ei:
        runtime_event(_boot(), "app-id")
    assert ei.value.reason == "event_log_no_system_ready"


def test_runtime_event_of_a_repeated_name_has_no_single_payload() -> None:
    events = [*_boot(), _rt("init-script-hash", b"\x01"), _rt("init-script-hash", b"\x02"), _rt("system-ready")]
    with pytest.raises(CheckFailed) as ei:
        runtime_event(events, "init-script-hash")
    assert ei.value.reason == "event_log_duplicate_boot_event"


def test_runtime_event_reads_real_identity_events() -> None:
    events = parse_event_log(NEAR["model_attestations"][0]["event_log"])
    info = NEAR["model_attestations"][0]["info"]
    assert (runtime_event(events, "app-id") or b"").hex() == info["app_id"]
    assert (runtime_event(events, "os-image-hash") or b"").hex() == info["os_image_hash"]
    assert json.loads(runtime_event(events, "key-provider") or b"") == json.loads(info["key_provider_info"])


@pytest.mark.parametrize(("label", "att"), REPORTS, ids=IDS)
def test_compose_check_passes_on_real_reports(label: str, att: dict[str, Any]) -> None:
    q = _quote(att)
    events = parse_event_log(att["event_log"])
    kw = {
        "app_compose": _tcb(att)["app_compose"],
        "claimed_compose_hash": att["info"]["compose_hash"],
        "events": events,
    }
    h = check_compose(**kw, mr_config_id=q.report.mr_config_id)
    assert h.hex() == att["info"]["compose_hash"]
    assert check_compose(**kw, mr_config_id=q.report.mr_config_id, quote_rtmr3=q.report.rtmrs[3]) == h
    assert compose_binding(q.report.mr_config_id) == "mr_config_id"


def _phala_kw() -> dict[str, Any]:
    q = _quote(PHALA)
    return {
        "app_compose": _tcb(PHALA)["app_compose"],
        "claimed_compose_hash": PHALA["info"]["compose_hash"],
        "events": parse_event_log(PHALA["event_log"]),
        "mr_config_id": q.report.mr_config_id,
    }


def test_compose_check_fails_on_changed_app_compose() -> None:
    kw = _phala_kw()
    kw["app_compose"] += " "
    with pytest.raises(CheckFailed, match="app_compose") as ei:
        check_compose(**kw)
    assert ei.value.reason == "compose_hash_mismatch"


def test_compose_check_fails_on_changed_claimed_hash() -> None:
    kw = _phala_kw()
    kw["claimed_compose_hash"] = "00" * 32
    with pytest.raises(CheckFailed, match="claimed") as ei:
        check_compose(**kw)
    assert ei.value.reason == "compose_hash_mismatch"


def test_compose_check_fails_on_changed_mr_config_id() -> None:
    kw = _phala_kw()
    m = bytearray(kw["mr_config_id"])
    m[5] ^= 1
    kw["mr_config_id"] = bytes(m)
    with pytest.raises(CheckFailed, match="mr_config_id") as ei:
        check_compose(**kw)
    assert ei.value.reason == "compose_hash_mismatch"
    assert ei.value.details["got"] == bytes(m).hex()


def test_compose_check_with_zero_mr_config_id_needs_the_rtmr3_replay() -> None:
    q = parse_quote(decode_quote_text(GETQUOTE["quote"]))
    events = parse_event_log(GETQUOTE["event_log"])
    assert compose_binding(q.report.mr_config_id) == "rtmr3"
    kw: dict[str, Any] = {
        "app_compose": None,
        "claimed_compose_hash": None,
        "events": events,
        "mr_config_id": q.report.mr_config_id,
    }
    with pytest.raises(CheckFailed, match="not bound"):
        check_compose(**kw)
    h = check_compose(**kw, quote_rtmr3=q.report.rtmrs[3])
    assert h.hex() == GETQUOTE_EXPECTED["imr3_events"][2][1]
    with pytest.raises(CheckFailed) as ei:
        check_compose(**kw, quote_rtmr3=bytes(48))
    assert ei.value.reason == "event_log_mismatch"


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        "{}",
        "[1]",
        '[{"imr": 4, "event_type": 1, "digest": ""}]',
        '[{"imr": true, "event_type": 1}]',
        '[{"imr": 0, "event_type": -1}]',
        '[{"imr": 0, "event_type": 1, "digest": "zz"}]',
        '[{"imr": 0, "event_type": 1, "digest": "abcd"}]',
        '[{"imr": 0, "event_type": 1, "event_payload": "a b"}]',
        '[{"imr": 0, "event_type": 1, "event": 5}]',
        '[{"imr": 0, "event_type": 1, "version": 3}]',
        '[{"imr": 3, "event_type": 1, "event": "\\ud800"}]',
        "[" * 100000,
        None,
        42,
    ],
)
def test_malformed_event_logs_raise_evidence_error(value: object) -> None:
    with pytest.raises(EvidenceError):
        parse_event_log(value)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=20,
)
_entry = st.fixed_dictionaries(
    {},
    optional={
        "imr": st.integers(-1, 5) | _json,
        "event_type": st.sampled_from([1, RUNTIME_EVENT_TYPE, 2**32]) | _json,
        "digest": st.sampled_from(["", "00" * 48, "0" * 95]) | _json,
        "event": st.text(max_size=10) | _json,
        "event_payload": st.sampled_from(["", "dead", "xyz"]) | _json,
        "version": st.sampled_from([1, 2, 3]) | _json,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_json, st.lists(_entry | _json, max_size=5), st.text(max_size=200), st.binary(max_size=100)))
def test_parse_event_log_arbitrary_values_raise_only_evidence_error(value: object) -> None:
    for v in (value, json.dumps(value) if not isinstance(value, bytes) else value):
        try:
            events = parse_event_log(v)
        except EvidenceError:
            continue
        try:
            replay_rtmrs(events)
            runtime_event(events, "app-id")
        except (EvidenceError, CheckFailed):
            pass


@pytest.mark.parametrize("claimed", ["ab", "zz" * 32, "0x" + "00" * 31])
def test_malformed_claimed_compose_hash_is_evidence_error(claimed: str) -> None:
    kw = _phala_kw()
    kw["claimed_compose_hash"] = claimed
    with pytest.raises(EvidenceError, match="compose_hash"):
        check_compose(**kw)
