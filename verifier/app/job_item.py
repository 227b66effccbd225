"""One re-verified verdict as a job item: the superseding verdict (both clocks in ``claims.reverification``) and the
evidence to keep. Shared by the job's main process and its worker processes (``app.job_pool``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from verifier.adapters.ledger.jobs import Item
from verifier.app.records import without_bodies
from verifier.evidence.bundle import Bundle

JSON = dict[str, Any]


def failing_reasons(verdict: JSON) -> tuple[str, ...]:
    """The reason codes of the required checks that did not pass (what made the verdict fail or indeterminate)."""
    reasons = [
        c.get("reason")
        for c in verdict.get("checks", [])
        if c.get("severity") == "required" and c.get("status") in ("fail", "indeterminate")
    ]
    return tuple(sorted({r for r in reasons if isinstance(r, str)}))


def captured_time(old: JSON) -> int:
    """When the recorded verdict's evidence was captured (its own clock)."""
    times = old.get("times") or {}
    return int(times.get("captured_at") or times["verified_at"])


def superseding_item(
    *,
    job_id: str,
    verdict_id: str,
    old: JSON,
    captured: tuple[JSON, Bundle],
    now: tuple[JSON, Bundle],
    captured_at: int,
    job_at: int,
    collateral: str,
    retain_bodies: str,
    stored: Mapping[str, tuple[str, bytes]] | None = None,
) -> Item:
    """The item for ``verdict_id``: ``captured`` and ``now`` are (verdict JSON, kept bundle) at each clock (the same
    evaluation when the clocks agree); ``collateral`` is what the job clock used ("recorded", "refresh", "early").
    ``stored``: the recorded evidence as read from the ledger (name -> (sha256, bytes)); a kept file identical to
    one of them is referenced by its sha256 instead of carrying its bytes."""
    verdict, cap_json = now[0], captured[0]
    reasons = failing_reasons(verdict)
    verdict["claims"] = {
        **verdict.get("claims", {}),
        "reverification": {
            "job": job_id,
            "previous": {"id": verdict_id, "status": old["status"]},
            "clocks": {
                "captured": {
                    "at": captured_at,
                    "status": cap_json["status"],
                    "reasons": list(failing_reasons(cap_json)),
                    "collateral": "recorded",
                },
                "job": {"at": job_at, "status": verdict["status"], "reasons": list(reasons), "collateral": collateral},
            },
        },
    }
    kept = now[1]
    if retain_bodies == "hashes":
        verdict, kept = without_bodies(verdict, kept)
    verdict["id"] = None
    files, known = kept.files(), {}
    if stored:
        for name in list(files):
            recorded = stored.get(name)
            if recorded is not None and recorded[1] == files[name]:
                known[name] = recorded[0]
                del files[name]
    return Item(
        verdict_id,
        old["status"],
        verdict,
        files,
        captured_at=captured_at,
        captured_status=cap_json["status"],
        job_at=job_at,
        job_status=verdict["status"],
        reasons=reasons,
        stored=known,
    )
