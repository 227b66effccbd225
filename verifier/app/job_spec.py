"""What a re-verification job is asked to do, validated once for the HTTP API and the CLI alike.

``{"kind": "reverify", "filter": {status, model, signer, gateway, since, until, ids}, "policy"?: <TOML text or the id
of the service's policy>, "at": "captured" | "now" | <unix seconds>, "collateral": "recorded" | "refresh" | "early"}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from verifier.evidence.bundle import MAX_UNIX_SECONDS

STATUSES = ("pass", "fail", "indeterminate")
COLLATERAL = ("recorded", "refresh", "early")
CLAIM_KEYS = ("tcb_status", "advisory", "fmspc", "app_id", "compose_hash", "driver")  # ledger.claims.CLAIM_NAMES
FILTER_KEYS = ("status", "model", "signer", "gateway", "since", "until", "ids", *CLAIM_KEYS)
MAX_IDS = 10_000
_VERDICT_ID = re.compile(r"v_[0-9A-HJKMNP-TV-Z]{26}")
_MAX_TEXT = 256
_COLUMN_KEYS = FILTER_KEYS[:6]


class JobSpecError(ValueError):
    """A job request that cannot be run as asked; ``field`` names the offending part."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True, slots=True)
class JobFilter:
    status: str | None = None
    model: str | None = None
    signer: str | None = None
    gateway: str | None = None
    since: int | None = None
    until: int | None = None
    ids: tuple[str, ...] | None = None
    claims: tuple[tuple[str, str], ...] = ()  # (indexed claim, value), sorted

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in _COLUMN_KEYS if getattr(self, k) is not None}
        if self.ids is not None:
            out["ids"] = list(self.ids)
        return {**out, **dict(self.claims)}

    def query(self) -> dict[str, Any]:
        """Keyword arguments of ``JobStore.select``."""
        out = {k: getattr(self, k) for k in _COLUMN_KEYS}
        out["ids"] = None if self.ids is None else list(self.ids)
        out["claims"] = dict(self.claims) or None
        return out


@dataclass(frozen=True, slots=True)
class JobSpec:
    filter: JobFilter = field(default_factory=JobFilter)
    policy: str | None = None  # TOML text, or the id of the service's own policy; None: the service's policy
    at: str | int = "captured"  # "captured", "now", or unix seconds
    collateral: str = "recorded"  # "recorded": the bundle's; "refresh": fetched from Intel PCS once per job;
    # "early": fetched with Intel's early TCB update (update=early): what Intel will enforce next
    kind: str = "reverify"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "filter": self.filter.to_json(),
            "at": self.at,
            "collateral": self.collateral,
            "policy": None if self.policy is None else "(given)",
        }


def _text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not value
        or len(value) > _MAX_TEXT
        or not value.isprintable()
        or value != value.strip()
    ):
        raise JobSpecError(name, f"{name}: expected 1..{_MAX_TEXT} printable characters without surrounding whitespace")
    return value


def _seconds(value: object, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_UNIX_SECONDS:
        raise JobSpecError(name, f"{name}: expected unix seconds in 0..{MAX_UNIX_SECONDS}, got {str(value)[:40]!r}")
    return value


def parse_filter(data: object) -> JobFilter:
    if data is None:
        return JobFilter()
    if not isinstance(data, dict):
        raise JobSpecError("filter", "filter: expected an object")
    unknown = sorted(set(data) - set(FILTER_KEYS))
    if unknown:
        raise JobSpecError("filter", f"filter: unknown key {str(unknown[0])[:40]!r} (known: {', '.join(FILTER_KEYS)})")
    status = data.get("status")
    if status is not None and status not in STATUSES:
        raise JobSpecError(
            "filter.status", f"filter.status: got {str(status)[:40]!r}, expected one of {', '.join(STATUSES)}"
        )
    ids = data.get("ids")
    if ids is not None:
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_IDS:
            raise JobSpecError("filter.ids", f"filter.ids: expected a list of 1..{MAX_IDS} verdict ids")
        bad = [i for i in ids if not isinstance(i, str) or not _VERDICT_ID.fullmatch(i)]
        if bad:
            raise JobSpecError("filter.ids", f"filter.ids: {str(bad[0])[:40]!r} is not a verdict id")
        ids = tuple(dict.fromkeys(ids))
    return JobFilter(
        status=status,
        model=_text(data.get("model"), "filter.model"),
        signer=_text(data.get("signer"), "filter.signer"),
        gateway=_text(data.get("gateway"), "filter.gateway"),
        since=_seconds(data.get("since"), "filter.since"),
        until=_seconds(data.get("until"), "filter.until"),
        ids=ids,
        claims=tuple(sorted((k, v) for k in CLAIM_KEYS if (v := _text(data.get(k), f"filter.{k}")))),
    )


def parse_at(value: object) -> str | int:
    if value in (None, "captured"):
        return "captured"
    if value == "now":
        return "now"
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    seconds = _seconds(value, "at") if not isinstance(value, str) else None
    if seconds is None:
        raise JobSpecError("at", f"at: got {str(value)[:40]!r}, expected 'captured', 'now' or unix seconds")
    return seconds


def parse_spec(body: object) -> JobSpec:
    """The job a request body asks for; ``JobSpecError`` naming the first wrong part."""
    if not isinstance(body, dict):
        raise JobSpecError("body", "expected a JSON object")
    unknown = sorted(set(body) - {"kind", "filter", "policy", "at", "collateral"})
    if unknown:
        raise JobSpecError(str(unknown[0])[:64], f"{str(unknown[0])[:64]}: unknown field")
    kind = body.get("kind", "reverify")
    if kind != "reverify":
        raise JobSpecError("kind", f"kind: got {str(kind)[:40]!r}, expected 'reverify'")
    collateral = body.get("collateral", "recorded")
    if collateral not in COLLATERAL:
        raise JobSpecError(
            "collateral", f"collateral: got {str(collateral)[:40]!r}, expected one of {', '.join(COLLATERAL)}"
        )
    policy = body.get("policy")
    if policy is not None and (not isinstance(policy, str) or not policy.strip()):
        raise JobSpecError("policy", "policy: expected TOML text or a policy id")
    return JobSpec(
        filter=parse_filter(body.get("filter")), policy=policy, at=parse_at(body.get("at")), collateral=collateral
    )
