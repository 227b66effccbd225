"""dstack's RTMR3 boot identity: every real event log in fixtures/ passes the rules; each rule has its negative test.

The relabelling hole: an imr-3 entry whose event type is not dstack's runtime type used to have its digest taken as
supplied, so a prover could relabel dstack's own app-id / key-provider / os-image-hash / system-ready entries, keep
the replay equal to the quote, and have events the app emitted after boot read as the identity.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.dstack_identity import KeyProvider, boot_events, dstack_identity
from verifier.evidence.event_log import (
    RUNTIME_EVENT_TYPE,
    Event,
    check_compose,
    check_replay,
    check_replay_rtmr3,
    parse_event_log,
    runtime_digest,
    runtime_event,
)
from verifier.evidence.quote import decode_quote_text, parse_quote

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
EV_IPL = 0x0000000D


# ---------------------------------------------------------------------------------------------- every real log


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _is_tdx_log(log: Any) -> bool:
    """A TD event log, not another list called event_log (the ACI receipts in fixtures/redpill/aci have one)."""
    return isinstance(log, list) and bool(log) and all(isinstance(e, dict) and "imr" in e for e in log)


def _walk(node: Any, path: str, quote: str | None, att: dict[str, Any] | None) -> Iterator[tuple[str, Any, str, Any]]:
    node = _maybe_json(node)
    if isinstance(node, dict):
        q = node.get("intel_quote") or node.get("quote")
        if isinstance(q, str) and len(q) > 1000:
            quote, att = q, node
        for key, value in node.items():
            log = _maybe_json(value)
            if key == "event_log" and _is_tdx_log(log):
                assert quote is not None, f"{path}: an event log without a quote"
                yield f"{path}/{key}", log, quote, att
            else:
                yield from _walk(value, f"{path}/{key}", quote, att)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]", quote, att)


def _real_event_logs() -> list[tuple[str, Any, str, Any]]:
    found = []
    for f in sorted(FIXTURES.rglob("*.json")):
        walk = _walk(json.loads(f.read_text()), "", None, None)
        found += [(f"{f.relative_to(FIXTURES)}:{p}", log, q, a) for p, log, q, a in walk]
    return found


REAL_LOGS = _real_event_logs()


def test_the_fixture_walk_finds_every_recorded_event_log() -> None:
    # phala-format-1gpu 4, getquote 1, NEAR two-layer 5 (gateway, model, compose manager), Phala gemma 4,
    # substituted-nonce reports 2 x 4
    assert len(REAL_LOGS) == 22
    assert {Path(p.split(":")[0]).parent.name for p, *_ in REAL_LOGS} == {
        "phala-format-1gpu-20260325",
        "dstack-getquote-sample",
        "nearcloud-two-layer-ed25519-tls-20260629",
        "phala-flat-ecdsa-nanogpt-gemma-20260610",
        "phala-flat-ecdsa-substituted-nonce-nanogpt-20260325",
    }
    assert any("compose_manager_attestation" in p for p, *_ in REAL_LOGS)
    infos = [_maybe_json(a.get("info")) or {} for *_, a in REAL_LOGS]
    assert sum("app_id" in i for i in infos) == 20  # their identity is compared with the report's info too
    assert sum("app_compose" in (_maybe_json(i.get("tcb_info")) or {}) for i in infos) == 20


@pytest.mark.parametrize(("where", "log", "quote", "att"), REAL_LOGS, ids=[r[0] for r in REAL_LOGS])
def test_every_real_event_log_passes_the_rtmr3_rules(where: str, log: Any, quote: str, att: dict[str, Any]) -> None:
    q = parse_quote(decode_quote_text(quote))
    events = parse_event_log(log)
    assert all(e.is_runtime for e in events if e.imr == 3)
    check_replay(events, q.report.rtmrs)
    ident = dstack_identity(events)
    assert len(ident.compose_hash) == 32 and ident.gpu_boot is None and ident.gpu_policy_hash is None
    info = _maybe_json(att.get("info")) or {}
    if "app_id" in info:
        assert ident.app_id.hex() == info["app_id"]
        assert ident.instance_id.hex() == info["instance_id"]
        assert ident.compose_hash.hex() == info["compose_hash"]
        assert dataclasses.asdict(ident.key_provider) == json.loads(info["key_provider_info"])
        assert (ident.os_image_hash or b"").hex() == info.get("os_image_hash", "")
    tcb = _maybe_json(info.get("tcb_info")) or {}
    compose = check_compose(
        app_compose=tcb.get("app_compose"),
        claimed_compose_hash=info.get("compose_hash"),
        events=events,
        mr_config_id=q.report.mr_config_id,
        quote_rtmr3=q.report.rtmrs[3],
    )
    assert compose == ident.compose_hash


def test_the_getquote_sample_is_an_older_dstack_without_os_image_hash_and_with_an_app_event() -> None:
    log = next(r[1] for r in REAL_LOGS if "getquote" in r[0])
    ident = dstack_identity(parse_event_log(log))
    assert ident.os_image_hash is None
    assert ident.key_provider.name == "local-sgx"
    assert "LIUM_MINER_HOTKEY" not in [e.name for e in ident.boot_events]  # the app's, after system-ready
    assert [e.name for e in ident.boot_events] == [
        "system-preparing",
        "app-id",
        "compose-hash",
        "instance-id",
        "boot-mr-done",
        "key-provider",
    ]


# ---------------------------------------------------------------------------------------------- the relabelling hole


NEAR = FIXTURES / "redpill/attestation/nearcloud-two-layer-ed25519-tls-20260629/attestation_report.json"
NEAR_MODEL = json.loads(NEAR.read_text())["model_attestations"][0]


def _supplied_replay(events: list[Event]) -> bytes:
    """RTMR3 as a verifier that takes non-runtime digests as supplied would replay it."""
    mr = bytes(48)
    for e in events:
        if e.imr == 3:
            mr = hashlib.sha384(mr + (runtime_digest(e) if e.is_runtime else (e.digest or b""))).digest()
    return mr


def _relabel(events: list[Event], name: str) -> list[Event]:
    i = next(k for k, e in enumerate(events) if e.imr == 3 and e.event == name)
    events[i] = dataclasses.replace(events[i], event_type=EV_IPL, digest=runtime_digest(events[i]))
    return events


@pytest.mark.parametrize("name", ["app-id", "os-image-hash", "key-provider", "system-ready", "compose-hash"])
def test_a_relabelled_dstack_entry_in_a_real_log_fails_although_its_digest_still_replays(name: str) -> None:
    q = parse_quote(decode_quote_text(NEAR_MODEL["intel_quote"]))
    events = _relabel(list(parse_event_log(NEAR_MODEL["event_log"])), name)
    assert _supplied_replay(events) == q.report.rtmrs[3]  # the attacker's log is consistent with the quote
    for run in (
        lambda: check_replay(events, q.report.rtmrs),
        lambda: check_replay_rtmr3(events, q.report.rtmrs[3]),
        lambda: dstack_identity(events),
        lambda: runtime_event(events, "app-id"),
        lambda: check_compose(
            app_compose=None, claimed_compose_hash=None, events=events, mr_config_id=q.report.mr_config_id
        ),
    ):
        with pytest.raises(CheckFailed) as ei:
            run()
        assert ei.value.reason == "event_log_rtmr3_not_runtime"
        assert ei.value.details["event"] == name and ei.value.details["got"] == EV_IPL


def test_relabelled_app_id_and_system_ready_would_make_the_apps_event_the_identity() -> None:
    """What the hole allowed: with both relabelled, a reader that skips non-runtime entries sees the app's app-id."""
    events = _relabel(_relabel(list(parse_event_log(NEAR_MODEL["event_log"])), "app-id"), "system-ready")
    forged = Event(imr=3, event_type=RUNTIME_EVENT_TYPE, digest=None, event="app-id", payload=b"\xee" * 20, version=1)
    events.append(forged)
    naive = [e.payload for e in events if e.imr == 3 and e.is_runtime and e.event == "app-id"]
    assert naive == [b"\xee" * 20]
    with pytest.raises(CheckFailed) as ei:
        dstack_identity(events)
    assert ei.value.reason == "event_log_rtmr3_not_runtime"


# ---------------------------------------------------------------------------------------------- rules, one by one


def _rt(name: str, payload: bytes = b"") -> Event:
    return Event(imr=3, event_type=RUNTIME_EVENT_TYPE, digest=None, event=name, payload=payload, version=1)


def _log(*extra: Event, ready: bool = True, drop: str = "") -> list[Event]:
    base = [
        _rt("system-preparing"),
        _rt("app-id", b"\x11" * 20),
        _rt("compose-hash", b"\x22" * 32),
        _rt("instance-id", b"\x33" * 20),
        _rt("boot-mr-done"),
        _rt("key-provider", b'{"name":"kms","id":"ab"}'),
        *extra,
    ]
    return [e for e in base if e.event != drop] + ([_rt("system-ready")] if ready else [])


def _reason(events: list[Event]) -> str:
    with pytest.raises((CheckFailed, EvidenceError)) as ei:
        dstack_identity(events)
    return ei.value.reason


def test_a_minimal_dstack_log_gives_its_identity() -> None:
    ident = dstack_identity([*_log(), _rt("app-id", b"\x99" * 20)])
    assert ident.app_id == b"\x11" * 20 and ident.compose_hash == b"\x22" * 32 and ident.instance_id == b"\x33" * 20
    assert ident.key_provider == KeyProvider(name="kms", id="ab")
    assert ident.os_image_hash is None and ident.gpu_boot is None
    assert ident.payloads("app-id") == (b"\x11" * 20,)


def test_rtmr0_to_2_entries_are_not_part_of_the_identity() -> None:
    firmware = Event(imr=1, event_type=EV_IPL, digest=bytes(48), event="app-id", payload=b"\x44", version=1)
    assert dstack_identity([firmware, *_log()]).app_id == b"\x11" * 20


def test_a_non_runtime_rtmr3_entry_after_system_ready_fails_too() -> None:
    late = Event(imr=3, event_type=EV_IPL, digest=bytes(48), event="anything", payload=b"", version=1)
    assert _reason([*_log(), late]) == "event_log_rtmr3_not_runtime"


def test_no_system_ready_supplies_no_identity() -> None:
    assert _reason(_log(ready=False)) == "event_log_no_system_ready"
    with pytest.raises(CheckFailed) as ei:
        boot_events([])
    assert ei.value.reason == "event_log_no_system_ready"


@pytest.mark.parametrize(
    "name",
    [
        "app-id",
        "compose-hash",
        "instance-id",
        "key-provider",
        "os-image-hash",
        "mr-kms",
        "system-preparing",
        "boot-mr-done",
        "storage-fs",
    ],
)
def test_an_identity_event_twice_before_system_ready_fails(name: str) -> None:
    payload = {"compose-hash": b"\x22" * 32, "key-provider": b'{"name":"kms","id":"ab"}'}.get(name, b"\x01")
    first = [] if name in {e.event for e in _log()} else [_rt(name, payload)]  # _log() has the required ones
    assert _reason(_log(*first, _rt(name, payload))) == "event_log_duplicate_boot_event"


def test_an_identity_event_repeated_after_system_ready_is_the_apps_and_ignored() -> None:
    assert dstack_identity([*_log(), _rt("compose-hash", b"\x00" * 32)]).compose_hash == b"\x22" * 32


@pytest.mark.parametrize("name", ["app-id", "compose-hash", "instance-id", "key-provider"])
def test_a_missing_required_identity_event_fails(name: str) -> None:
    assert _reason(_log(drop=name)) == "event_log_missing_boot_event"


def test_an_identity_event_only_after_system_ready_is_missing() -> None:
    assert _reason([*_log(drop="app-id"), _rt("app-id", b"\x11" * 20)]) == "event_log_missing_boot_event"


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("compose-hash", b"\x22" * 31),
        ("key-provider", b"not json"),
        ("key-provider", b'{"name":"kms"}'),
        ("key-provider", b'{"name":1,"id":""}'),
        ("key-provider", b'["kms"]'),
        ("key-provider", b"\xff"),
    ],
)
def test_malformed_identity_payloads_are_evidence_errors(name: str, payload: bytes) -> None:
    events = [_rt(name, payload) if e.event == name else e for e in _log()]
    assert _reason(events) == "malformed_evidence"


# ---------------------------------------------------------------------------------------------- property test

_names = st.sampled_from(
    [
        "app-id",
        "compose-hash",
        "instance-id",
        "key-provider",
        "system-ready",
        "gpu-policy-hash",
        "gpu-attestation",
        "init-script-hash",
        "os-image-hash",
        "x",
    ]
)
_events = st.builds(
    Event,
    imr=st.integers(0, 3),
    event_type=st.sampled_from([RUNTIME_EVENT_TYPE, RUNTIME_EVENT_TYPE, EV_IPL]),
    digest=st.none(),
    event=_names,
    payload=st.binary(max_size=40) | st.sampled_from([b'{"name":"kms","id":""}', b"\x22" * 32, b'{"version":2}']),
    version=st.just(1),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_events, max_size=14))
def test_dstack_identity_on_arbitrary_logs_raises_only_evidence_error_or_check_failed(events: list[Event]) -> None:
    try:
        ident = dstack_identity(events)
    except (EvidenceError, CheckFailed):
        return
    assert [e.name for e in ident.boot_events].count("app-id") == 1
    assert "system-ready" not in [e.name for e in ident.boot_events]
