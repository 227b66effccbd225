"""dstack event log: what the engine asks of it (replay, RTMR3 runtime events, the compose hash).

The pieces: ``tdx_event_log`` parses the entries and replays RTMR0-3 (RTMR3 digests always recomputed; a non-runtime
entry in imr 3 is refused), ``dstack_identity`` reads dstack's boot identity under strict rules (nothing counts
without ``system-ready``; each identity event once), ``gpu_boot`` parses and appraises the GPU boot events. This
module names them for the engine and binds the compose hash to the quote (``check_compose``).
Rules and sources: docs/event-log.md.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.dstack_identity import DstackIdentity, dstack_identity
from verifier.evidence.gpu_boot import check_gpu_policy_hash
from verifier.evidence.tdx_event_log import (
    RUNTIME_EVENT_TYPE,
    Event,
    check_replay,
    check_replay_rtmr3,
    parse_event_log,
    parse_hex,
    replay_rtmrs,
    runtime_digest,
)

__all__ = [
    "RUNTIME_EVENT_TYPE",
    "DstackIdentity",
    "Event",
    "check_compose",
    "check_replay",
    "check_replay_rtmr3",
    "compose_binding",
    "dstack_identity",
    "parse_event_log",
    "replay_rtmrs",
    "runtime_digest",
    "runtime_event",
]


def runtime_event(events: Sequence[Event], name: str) -> bytes | None:
    """Payload of dstack's boot event ``name`` (None if the boot did not emit it), under ``dstack_identity``'s rules.

    Only events before ``system-ready`` count (anything after it the app emitted, e.g. LIUM_MINER_HOTKEY in the
    getQuote sample); a log without ``system-ready``, with an imr-3 entry that is not a runtime event, or with an
    identity event twice or missing, is a CheckFailed. A name that occurs more than once before system-ready (e.g.
    ``init-script-hash``) has no single payload: CheckFailed too.
    """
    found = dstack_identity(events).payloads(name)
    if len(found) > 1:
        raise CheckFailed(
            f"RTMR3 event {name!r} occurs {len(found)} times before system-ready: no single payload",
            reason="event_log_duplicate_boot_event",
            details={"event": name, "expected": 1, "got": len(found)},
        )
    return found[0] if found else None


def _is_bytes(value: object, n: int) -> bool:
    return isinstance(value, bytes) and len(value) == n


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
    """Return the 32-byte compose hash once every available source agrees.

    Anchor: the RTMR3 ``compose-hash`` boot event (``dstack_identity`` rules). Compared against it:
    sha256(app_compose), the claimed ``compose_hash`` hex, and ``mr_config_id`` = 0x01 || hash || 15 zero bytes
    (dstack >= 0.5.1, ``dstack-types/src/mr_config.rs`` ``MrConfig::V1``). When the boot measured a
    ``gpu-policy-hash`` and app_compose is given, it must be the hash of app_compose's ``requirements.gpu_policy``.
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
    identity = dstack_identity(events)
    measured = identity.compose_hash
    if app_compose is not None:
        if not isinstance(app_compose, str):
            raise EvidenceError(f"app_compose: expected a string, got {type(app_compose).__name__}")
        try:
            actual = hashlib.sha256(app_compose.encode("utf-8")).digest()
        except UnicodeEncodeError:
            raise EvidenceError("app_compose: not valid Unicode") from None
        if not hmac.compare_digest(actual, measured):
            raise _mismatch("RTMR3 compose-hash vs sha256(app_compose)", measured, actual)
        if identity.gpu_policy_hash is not None:
            check_gpu_policy_hash(identity.gpu_policy_hash, app_compose)
    if claimed_compose_hash is not None:
        s: object = claimed_compose_hash
        claimed = parse_hex(s.removeprefix("0x") if isinstance(s, str) else s, "compose_hash")
        if len(claimed) != 32:
            raise EvidenceError(f"compose_hash: {len(claimed)} bytes (expected 32)")
        if not hmac.compare_digest(claimed, measured):
            raise _mismatch("RTMR3 compose-hash vs claimed compose_hash", measured, claimed)
    if any(mr_config_id):
        expected = b"\x01" + measured + bytes(15)
        if not hmac.compare_digest(expected, mr_config_id):
            raise _mismatch("0x01||RTMR3 compose-hash||0 vs quote mr_config_id", expected, mr_config_id)
    return measured
