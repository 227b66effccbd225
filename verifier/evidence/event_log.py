"""dstack event log: parse, replay RTMR0-3, read RTMR3 runtime events, check the compose hash.

References: redpill-protocol.md §6.1 (entries), §6.2 (replay, RTMR3 digest recomputation), §6.3 (compose hash,
mr_config_id). RTMR3 runtime-event digests are always recomputed from (name, payload); a supplied digest that
disagrees is rejected. RTMR0-2 digests are taken as supplied: they are only as good as the final compare with
the quote's RTMRs (``check_replay``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from verifier.core.errors import CheckFailed, EvidenceError

RUNTIME_EVENT_TYPE = 0x08000001  # 134217729, dstack runtime events (§6.1)
_SYSTEM_READY = "system-ready"
_ZERO48 = bytes(48)
_HEX_RE = re.compile(r"[0-9a-fA-F]*", re.ASCII)
_U32_MAX = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Event:
    imr: int
    event_type: int
    digest: bytes | None  # None when the entry's digest is empty or absent
    event: str
    payload: bytes
    version: int  # 1 (legacy digest) or 2 (JCS digest); only meaningful for runtime events

    @property
    def is_runtime(self) -> bool:
        return self.event_type == RUNTIME_EVENT_TYPE


def _hex(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not _HEX_RE.fullmatch(value) or len(value) % 2:
        raise EvidenceError(f"event log: {what} must be an even-length hex string, got {str(value)[:40]!r}")
    return bytes.fromhex(value)


def _is_bytes(value: object, n: int) -> bool:
    return isinstance(value, bytes) and len(value) == n


def _int(entry: dict[str, Any], key: str, i: int, lo: int, hi: int) -> int:
    v = entry.get(key)
    if type(v) is not int or not lo <= v <= hi:
        raise EvidenceError(f"event log[{i}]: {key} must be an integer in {lo}..{hi}, got {str(v)[:40]!r}")
    return v


def _event(entry: object, i: int) -> Event:
    if not isinstance(entry, dict):
        raise EvidenceError(f"event log[{i}]: expected an object, got {type(entry).__name__}")
    name = entry.get("event", "")
    if not isinstance(name, str):
        raise EvidenceError(f"event log[{i}]: event must be a string, got {type(name).__name__}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise EvidenceError(f"event log[{i}]: event name is not valid Unicode") from None
    digest = _hex(entry.get("digest") or "", f"[{i}].digest")
    if digest and len(digest) != 48:
        raise EvidenceError(f"event log[{i}]: digest is {len(digest)} bytes (expected 48, SHA-384)")
    version = entry.get("version", 1)
    if type(version) is not int or version not in (1, 2):
        raise EvidenceError(f"event log[{i}]: version must be 1 or 2, got {str(version)[:40]!r}")
    return Event(
        imr=_int(entry, "imr", i, 0, 3),
        event_type=_int(entry, "event_type", i, 0, _U32_MAX),
        digest=digest or None,
        event=name,
        payload=_hex(entry.get("event_payload") or "", f"[{i}].event_payload"),
        version=version,
    )


def parse_event_log(value: object) -> tuple[Event, ...]:
    """A dstack event log as JSON text (str/bytes) or an already-parsed list (both occur in real reports)."""
    if isinstance(value, (str, bytes, bytearray)):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as e:  # JSONDecodeError/UnicodeDecodeError are ValueErrors
            raise EvidenceError(f"event log: not valid JSON ({str(e)[:80]})") from None
    if not isinstance(value, list):
        raise EvidenceError(f"event log: expected a list of events, got {type(value).__name__}")
    return tuple(_event(e, i) for i, e in enumerate(value))


def runtime_digest(event: Event) -> bytes:
    """Recomputed digest of a dstack runtime event (§6.2, dstack cc-eventlog runtime_events.rs)."""
    if event.version == 2:
        # JCS (RFC 8785) of {"name","payload","type"}: sorted keys, no spaces, minimal string escapes.
        jcs = json.dumps(
            {"name": event.event, "payload": event.payload.hex(), "type": RUNTIME_EVENT_TYPE},
            ensure_ascii=False,
            separators=(",", ":"),
            sort_keys=True,
        )
        return hashlib.sha384(jcs.encode("utf-8")).digest()
    pre = RUNTIME_EVENT_TYPE.to_bytes(4, "little") + b":" + event.event.encode("utf-8") + b":" + event.payload
    return hashlib.sha384(pre).digest()


def _digest(event: Event, i: int) -> bytes:
    if event.is_runtime:
        d = runtime_digest(event)
        if event.digest is not None and not hmac.compare_digest(d, event.digest):
            raise CheckFailed(
                f"event log[{i}] ({event.event!r}): supplied digest differs from the recomputed one",
                reason="event_digest_mismatch",
                details={"index": i, "event": event.event, "expected": d.hex(), "got": event.digest.hex()},
            )
        return d
    if event.digest is None:
        raise EvidenceError(f"event log[{i}]: imr {event.imr} event type {event.event_type:#x} has no digest")
    return event.digest


def _replay(events: Sequence[Event], imrs: frozenset[int]) -> list[bytes]:
    mrs = [_ZERO48] * 4
    for i, ev in enumerate(events):
        if ev.imr in imrs:
            mrs[ev.imr] = hashlib.sha384(mrs[ev.imr] + _digest(ev, i)).digest()
    return mrs


def replay_rtmrs(events: Sequence[Event]) -> tuple[bytes, bytes, bytes, bytes]:
    """RTMR[i] = fold(SHA384(mr || digest)) over the events of imr i, from 48 zero bytes (§6.2)."""
    mrs = _replay(events, frozenset(range(4)))
    return mrs[0], mrs[1], mrs[2], mrs[3]


def check_replay(events: Sequence[Event], quote_rtmrs: Sequence[bytes]) -> None:
    """The replayed RTMR0-3 equal the quote's (expected = quote, got = replay). CheckFailed otherwise."""
    if len(quote_rtmrs) != 4 or not all(_is_bytes(m, 48) for m in quote_rtmrs):
        raise EvidenceError("quote RTMRs: expected 4 values of 48 bytes")
    replayed = replay_rtmrs(events)
    bad = {
        f"rtmr{i}": {"expected": q.hex(), "got": r.hex()}
        for i, (q, r) in enumerate(zip(quote_rtmrs, replayed, strict=True))
        if not hmac.compare_digest(q, r)
    }
    if bad:
        raise CheckFailed(
            f"event log replay differs from the quote for {', '.join(bad)}", reason="event_log_mismatch", details=bad
        )


def runtime_event(events: Sequence[Event], name: str) -> bytes | None:
    """Payload of the dstack boot's RTMR3 runtime event ``name`` (None if absent).

    Only events before ``system-ready`` count: dstack emits its identity events (app-id, compose-hash,
    instance-id, os-image-hash, key-provider, ...) exactly once during boot, and anything after system-ready
    was emitted by the app itself (e.g. LIUM_MINER_HOTKEY in the getQuote sample), so a later duplicate could
    shadow the real value. A name that occurs twice before system-ready is ambiguous -> EvidenceError.
    Same rule as private-ai-gateway ``runtime_event_before_system_ready``.
    """
    found: bytes | None = None
    for ev in events:
        if ev.imr != 3 or not ev.is_runtime:
            continue
        if ev.event == _SYSTEM_READY:
            break
        if ev.event == name:
            if found is not None:
                raise EvidenceError(f"event log: RTMR3 event {name!r} occurs more than once before system-ready")
            found = ev.payload
    return found


def compose_binding(mr_config_id: bytes) -> str:
    """Which verified bytes bind the compose hash: "mr_config_id" (dstack >= 0.5.1) or "rtmr3" (older, all zero)."""
    return "rtmr3" if not any(mr_config_id) else "mr_config_id"


def _mismatch(pair: str, expected: bytes, got: bytes) -> CheckFailed:
    return CheckFailed(
        f"compose hash: {pair} disagree",
        reason="compose_hash_mismatch",
        details={"pair": pair, "expected": expected.hex(), "got": got.hex()},
    )


def check_compose(
    *,
    app_compose: str | None,
    claimed_compose_hash: str | None,
    events: Sequence[Event],
    mr_config_id: bytes,
    quote_rtmr3: bytes | None = None,
) -> bytes:
    """Return the 32-byte compose hash once every available source agrees (§6.3).

    Anchor: the RTMR3 ``compose-hash`` event. Compared against it: sha256(app_compose), the claimed
    ``compose_hash`` hex, and ``mr_config_id`` = 0x01 || hash || 15 zero bytes (dstack >= 0.5.1).
    Binding to verified bytes: a non-zero mr_config_id binds the hash directly. An all-zero mr_config_id
    (older dstack) binds nothing, so then the hash is only as good as the RTMR3 replay: ``quote_rtmr3`` (the
    quote's RTMR3) is REQUIRED and replayed here; without it the check fails closed. When given with a
    non-zero mr_config_id it is checked too. ``compose_binding`` names which binding applied.
    """
    if not _is_bytes(mr_config_id, 48):
        raise EvidenceError("mr_config_id: expected 48 bytes")
    if quote_rtmr3 is not None:
        check_replay_rtmr3(events, quote_rtmr3)
    elif not any(mr_config_id):
        raise CheckFailed(
            "mr_config_id is all zero (dstack < 0.5.1) and no quote RTMR3 was given: the compose hash is not bound",
            reason="compose_hash_mismatch",
            details={"mr_config_id": mr_config_id.hex()},
        )
    measured = runtime_event(events, "compose-hash")
    if measured is None:
        raise CheckFailed("no compose-hash event in RTMR3 (before system-ready)", reason="compose_hash_mismatch")
    if len(measured) != 32:
        raise EvidenceError(f"RTMR3 compose-hash payload is {len(measured)} bytes (expected 32)")
    if app_compose is not None:
        if not isinstance(app_compose, str):
            raise EvidenceError(f"app_compose: expected a string, got {type(app_compose).__name__}")
        try:
            actual = hashlib.sha256(app_compose.encode("utf-8")).digest()
        except UnicodeEncodeError:
            raise EvidenceError("app_compose: not valid Unicode") from None
        if not hmac.compare_digest(actual, measured):
            raise _mismatch("RTMR3 compose-hash vs sha256(app_compose)", measured, actual)
    if claimed_compose_hash is not None:
        s: object = claimed_compose_hash
        claimed = _hex(s.removeprefix("0x") if isinstance(s, str) else s, "compose_hash")
        if len(claimed) != 32:
            raise EvidenceError(f"compose_hash: {len(claimed)} bytes (expected 32)")
        if not hmac.compare_digest(claimed, measured):
            raise _mismatch("RTMR3 compose-hash vs claimed compose_hash", measured, claimed)
    if any(mr_config_id):
        expected = b"\x01" + measured + bytes(15)
        if not hmac.compare_digest(expected, mr_config_id):
            raise _mismatch("0x01||RTMR3 compose-hash||0 vs quote mr_config_id", expected, mr_config_id)
    return measured


def check_replay_rtmr3(events: Sequence[Event], quote_rtmr3: bytes) -> None:
    """RTMR3 alone replays to the quote's RTMR3 (runtime events only; RTMR0-2 digests not needed)."""
    if not _is_bytes(quote_rtmr3, 48):
        raise EvidenceError("quote RTMR3: expected 48 bytes")
    got = _replay(events, frozenset({3}))[3]
    if not hmac.compare_digest(got, quote_rtmr3):
        raise CheckFailed(
            "event log RTMR3 replay differs from the quote",
            reason="event_log_mismatch",
            details={"rtmr3": {"expected": quote_rtmr3.hex(), "got": got.hex()}},
        )
