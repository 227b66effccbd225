"""The dashboard's URL is its filter: query parameters to an ``AuditFilter`` (and back), ISO-8601 UTC times.

``since``/``until`` are ISO-8601 dates or UTC date-times (``2026-12-01``, ``2026-12-01T08:00:00Z``); names are
bounded printable text; ``status`` is one of the verdict statuses; ``job`` a job id (the verdicts that job recorded);
``before`` is a verdict id (keyset paging). Anything else is a 400 naming the parameter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, fields
from urllib.parse import urlencode

from aiohttp import web

from verifier.adapters.ledger.audit import AuditFilter
from verifier.web.errors import bad_request
from verifier.web.inputs import JOB_ID, VERDICT_ID, name_field, printable

STATUSES = ("pass", "fail", "indeterminate")
NAMES = ("model", "gateway", "signer", "trust_profile", "reason", "check")
ALLOWED = frozenset({"status", *NAMES, "since", "until", "job", "before", "limit"})


def iso(seconds: float | None) -> str:
    """Unix seconds as ISO-8601 UTC (``2026-12-02T07:15:08Z``); '' for None."""
    if seconds is None:
        return ""
    try:
        return dt.datetime.fromtimestamp(float(seconds), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError, TypeError):  # a time edited into the ledger out of range
        return f"(not a time: {str(seconds)[:24]})"


def parse_time(text: str, name: str) -> float:
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(
            name, f"{name}: expected an ISO-8601 date or UTC time, got {printable(text)[:40]!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def audit_filter(request: web.Request) -> AuditFilter:
    q = request.query
    unknown = set(q) - ALLOWED
    if unknown:
        name = printable(sorted(unknown)[0])[:64]
        raise bad_request(name, f"{name}: unknown query parameter")
    values: dict[str, object] = {}
    status = q.get("status") or None
    if status is not None and status not in STATUSES:
        raise bad_request("status", f"status: got {printable(status)[:40]!r}, expected one of {', '.join(STATUSES)}")
    values["status"] = status
    for name in NAMES:
        values[name] = name_field(q.get(name) or None, name, required=False)
    for name in ("since", "until"):
        text = q.get(name) or None
        values[name] = None if text is None else parse_time(text, name)
    values["job"] = job_param(request, "job")
    return AuditFilter(**values)  # type: ignore[arg-type]


def job_param(request: web.Request, name: str) -> str | None:
    value = request.query.get(name) or None
    if value is not None and not JOB_ID.fullmatch(value):
        raise bad_request(name, f"{name}: not a job id (j_ and 26 characters), got {printable(value)[:40]!r}")
    return value


def before(request: web.Request) -> str | None:
    value = request.query.get("before") or None
    if value is not None and not VERDICT_ID.fullmatch(value):
        raise bad_request("before", "before: not a verdict id")
    return value


def query_of(flt: AuditFilter, **changes: object) -> str:
    """The query string of ``flt`` with ``changes`` applied (None removes a parameter); times as ISO-8601."""
    values: dict[str, object] = {f.name: getattr(flt, f.name) for f in fields(flt)}
    values.update(changes)
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        out[name] = iso(value) if name in ("since", "until") and isinstance(value, float | int) else str(value)
    return urlencode(out)


def active(flt: AuditFilter) -> dict[str, str]:
    """The filters in use, for display (times as ISO-8601)."""
    return {k: iso(v) if k in ("since", "until") else str(v) for k, v in asdict(flt).items() if v is not None}
