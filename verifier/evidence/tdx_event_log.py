"""A TD's event log in dstack's JSON form: parse the entries, recompute runtime digests, replay RTMR0-3.

Entry shape (``Dstack-TEE/dstack:dstack/cc-eventlog/src/tdx.rs``, ``TdxEvent``): ``imr`` (0-3), ``event_type``,
``digest`` (SHA-384 hex, empty when stripped), ``event`` (name), ``event_payload`` (hex), ``version`` (1 or 2,
runtime events only). RTMR[i] = fold SHA384(mr || digest) over the entries of imr i, from 48 zero bytes (Intel TDX
Module spec, TDG.MR.RTMR.EXTEND).

Firmware entries (RTMR0-2) carry digests of images we do not have: they are taken as supplied, and are only as good
as the final compare with the quote. RTMR3 is dstack's: it is extended only with dstack runtime events (event type
0x08000001, ``cc-eventlog/src/runtime_events.rs``), whose digests are always recomputed from (name, payload). Any other
entry in imr 3 is refused (``event_log_rtmr3_not_runtime``): its digest would be taken on trust, so a prover could
relabel one of dstack's own entries and have the replay still match while its name and payload stop counting.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785

from verifier.core.errors import CheckFailed, EvidenceError

RUNTIME_EVENT_TYPE = 0x08000001  # 134217729, dstack runtime events (not a TCG event type)
RUNTIME_IMR = 3
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


def parse_hex(value: object, what: str) -> bytes:
    """Even-length hex text to bytes, or EvidenceError naming ``what``."""
    if not isinstance(value, str) or not _HEX_RE.fullmatch(value) or len(value) % 2:
        raise EvidenceError(f"event log: {what} must be an even-length hex string, got {str(value)[:40]!r}")
    return bytes.fromhex(value)


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
    digest = parse_hex(entry.get("digest") or "", f"[{i}].digest")
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
        payload=parse_hex(entry.get("event_payload") or "", f"[{i}].event_payload"),
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
    """The digest dstack extends for a runtime event (``cc-eventlog/src/runtime_events.rs``, ``preimage``).

    V1: SHA384(le32(0x08000001) || ":" || name || ":" || payload). V2: SHA384 of the RFC 8785 (JCS) form of
    {"name": name, "payload": hex(payload), "type": 134217729}.
    """
    if event.version == 2:
        jcs = rfc8785.dumps({"name": event.event, "payload": event.payload.hex(), "type": RUNTIME_EVENT_TYPE})
        return hashlib.sha384(jcs).digest()
    pre = RUNTIME_EVENT_TYPE.to_bytes(4, "little") + b":" + event.event.encode("utf-8") + b":" + event.payload
    return hashlib.sha384(pre).digest()


def not_runtime(event: Event, i: int) -> CheckFailed:
    """The failure for an RTMR3 entry that is not a dstack runtime event."""
    return CheckFailed(
        f"event log[{i}]: RTMR3 entry {event.event!r} has event type {event.event_type:#x}, not a dstack runtime "
        f"event ({RUNTIME_EVENT_TYPE:#x}): its digest cannot be recomputed",
        reason="event_log_rtmr3_not_runtime",
        details={"index": i, "event": event.event, "expected": RUNTIME_EVENT_TYPE, "got": event.event_type},
    )


def _digest(event: Event, i: int) -> bytes:
    if event.imr == RUNTIME_IMR and not event.is_runtime:
        raise not_runtime(event, i)
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


def _is_bytes(value: object, n: int) -> bool:
    return isinstance(value, bytes) and len(value) == n


def replay_rtmrs(events: Sequence[Event]) -> tuple[bytes, bytes, bytes, bytes]:
    """RTMR0-3 replayed from the log. CheckFailed on an RTMR3 entry that is not a runtime event."""
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


def check_replay_rtmr3(events: Sequence[Event], quote_rtmr3: bytes) -> None:
    """RTMR3 alone replays to the quote's RTMR3 (runtime events only; RTMR0-2 digests not needed)."""
    if not _is_bytes(quote_rtmr3, 48):
        raise EvidenceError("quote RTMR3: expected 48 bytes")
    got = _replay(events, frozenset({RUNTIME_IMR}))[RUNTIME_IMR]
    if not hmac.compare_digest(got, quote_rtmr3):
        raise CheckFailed(
            "event log RTMR3 replay differs from the quote",
            reason="event_log_mismatch",
            details={"rtmr3": {"expected": quote_rtmr3.hex(), "got": got.hex()}},
        )
