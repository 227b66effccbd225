"""Read-only audit queries over the ledger for the dashboard: filtered lists, facet counts, overview, signers.

Every function takes a ``Ledger`` and runs synchronously: call it through the recorder's reader threads, never
on the event loop. Lists are keyset-paged on the verdict id (newest first, ``id < before``), so a page costs the
same at any depth. Counts are bounded: facets, the overview and the signer table count over the newest
``sample`` verdicts that match (default ``SAMPLE``), never the whole table; ``Counts.capped`` says when the
bound was hit, and the pages say so.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from verifier.adapters.ledger.ledger import Ledger

SAMPLE = 10_000  # the most verdicts any count on a page looks at
PAGE_MAX = 500
FACET_COLUMNS = ("status", "model", "gateway", "signer", "trust_profile")
FACET_TOP = 20  # values shown per facet
BAD = "status IN ('fail', 'indeterminate')"  # a check that did not pass (skipped checks are not failures)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """What an auditor filters on; every field optional. ``reason``/``check``: a check that failed or was
    indeterminate has it."""

    status: str | None = None
    model: str | None = None
    gateway: str | None = None
    signer: str | None = None
    trust_profile: str | None = None
    reason: str | None = None
    check: str | None = None
    since: float | None = None  # created_at >= since (unix seconds)
    until: float | None = None  # created_at < until
    job: str | None = None  # a verdict a re-verification job recorded (``job_items.new_verdict_id``)

    def where(self, *, before: str | None = None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column in FACET_COLUMNS:
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"v.{column} = ?")
                params.append(value)
        if self.reason is not None:
            clauses.append(
                "EXISTS (SELECT 1 FROM checks c WHERE c.verdict_id = v.id"
                " AND c.reason = ? AND c.status IN ('fail', 'indeterminate'))"
            )
            params.append(self.reason)
        if self.check is not None:
            clauses.append(
                "EXISTS (SELECT 1 FROM checks c WHERE c.verdict_id = v.id"
                " AND c.check_id = ? AND c.status IN ('fail', 'indeterminate'))"
            )
            params.append(self.check)
        if self.since is not None:
            clauses.append("v.created_at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("v.created_at < ?")
            params.append(self.until)
        if self.job is not None:  # the job's items are read once (a list), not once per verdict
            clauses.append("v.id IN (SELECT i.new_verdict_id FROM job_items i WHERE i.job_id = ?)")
            params.append(self.job)
        if before is not None:
            clauses.append("v.id < ?")
            params.append(before)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


@dataclass(frozen=True, slots=True)
class Counts:
    """Facet counts over the newest ``sampled`` matching verdicts; ``capped``: there are more than that."""

    sampled: int
    capped: bool
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    ranges: list[tuple[str, float, int]] = field(default_factory=list)  # (label, since unix s, verdicts since)


SUMMARY = (
    "v.id",
    "v.created_at",
    "v.status",
    "v.model",
    "v.gateway",
    "v.signer",
    "v.trust_profile",
    "v.policy_id",
    "v.supersedes",
)


def page(
    ledger: Ledger, flt: AuditFilter, *, before: str | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of verdict summaries (newest first) with their non-passing reasons; (rows, next ``before`` or None)."""
    limit = max(1, min(limit, PAGE_MAX))
    where, params = flt.where(before=before)
    # why the verdict is what it is: the reasons of its checks with the verdict's own status (a passing verdict's
    # advisory non-passes, e.g. not_applicable, are not why anything failed)
    reasons = (
        "(SELECT group_concat(DISTINCT c.reason) FROM checks c WHERE c.verdict_id = v.id AND c.status = v.status"
        " AND v.status != 'pass' AND c.reason IS NOT NULL) AS reasons"
    )
    sql = f"SELECT {', '.join(SUMMARY)}, {reasons} FROM verdicts v{where} ORDER BY v.id DESC LIMIT ?"  # noqa: S608
    rows = list(ledger.db.query(sql, [*params, limit + 1]))
    for row in rows:
        row["reasons"] = sorted(set(row["reasons"].split(","))) if row["reasons"] else []
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], rows[limit - 1]["id"]


def rows(ledger: Ledger, flt: AuditFilter, *, batch: int = PAGE_MAX) -> Iterator[list[dict[str, Any]]]:
    """Every matching summary, in keyset pages of ``batch`` (an export)."""
    before: str | None = None
    while True:
        items, before = page(ledger, flt, before=before, limit=batch)
        if items:
            yield items
        if before is None:
            return


RANGES = (("last hour", 3600), ("last 24 hours", 86400), ("last 7 days", 7 * 86400), ("last 30 days", 30 * 86400))
_SAMPLED = ("id", "created_at", "status", "model", "gateway", "signer", "trust_profile")


def _sample(ledger: Ledger, flt: AuditFilter, sample: int) -> tuple[list[dict[str, Any]], bool]:
    """The newest ``sample`` matching verdicts' facet columns (never verdict_json), and whether there are more."""
    where, params = flt.where()
    sql = (
        f"SELECT {', '.join('v.' + c for c in _SAMPLED)} FROM verdicts v{where}"  # noqa: S608
        " ORDER BY v.id DESC LIMIT ?"
    )
    found = list(ledger.db.query(sql, [*params, sample + 1]))
    return found[:sample], len(found) > sample


def _bad_checks(ledger: Ledger, ids: list[str], *, columns: str) -> list[tuple[Any, ...]]:
    """``columns`` of the sampled verdicts' checks that failed or were indeterminate (by the checks_verdict index)."""
    return list(
        ledger.db.execute(
            f"SELECT {columns} FROM checks c"  # noqa: S608
            f" WHERE c.verdict_id IN (SELECT value FROM json_each(?)) AND c.{BAD}",
            [json.dumps(ids)],
        )
    )


def _top(counter: Counter[str], n: int = FACET_TOP) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def facets(ledger: Ledger, flt: AuditFilter, *, sample: int = SAMPLE) -> Counts:
    """Counts per value of each facet (status, model, gateway, signer, trust profile, reason, check) over the newest
    ``sample`` verdicts matching ``flt``."""
    found, capped = _sample(ledger, flt, sample)
    out = {column: _top(Counter(str(r[column]) for r in found if r[column] is not None)) for column in FACET_COLUMNS}
    pairs = set(_bad_checks(ledger, [r["id"] for r in found], columns="c.verdict_id, c.reason, c.check_id"))
    out["reason"] = _top(Counter(reason for _, reason in {(v, r) for v, r, _ in pairs if r is not None}))
    out["check"] = _top(Counter(check for _, check in {(v, c) for v, _, c in pairs}))
    now = (time.time() // 60) * 60  # whole minutes: the range links stay the same for a minute
    ranges = [
        (label, now - seconds, sum(1 for r in found if r["created_at"] >= now - seconds)) for label, seconds in RANGES
    ]
    return Counts(sampled=len(found), capped=capped, facets=out, ranges=ranges)


def overview(ledger: Ledger, *, sample: int = SAMPLE) -> dict[str, Any]:
    """Status counts per (model, gateway), per day, the top failure reasons (of the checks that made a
    verdict fail or indeterminate) and the newest failures."""
    found, capped = _sample(ledger, AuditFilter(), sample)
    subjects = Counter((r["model"], r["gateway"], r["status"]) for r in found)
    days = Counter((time.strftime("%Y-%m-%d", time.gmtime(r["created_at"])), r["status"]) for r in found)
    status_of = {r["id"]: r["status"] for r in found if r["status"] != "pass"}
    decided = {
        (v, reason)
        for v, reason, status in _bad_checks(ledger, list(status_of), columns="c.verdict_id, c.reason, c.status")
        if reason is not None and status == status_of[v]
    }
    failures, _ = page(ledger, AuditFilter(status="fail"), limit=10)
    return {
        "sampled": len(found),
        "capped": capped,
        "by_subject": [
            {"model": m, "gateway": g, "status": st, "n": n}
            for (m, g, st), n in sorted(subjects.items(), key=lambda kv: tuple(str(x) for x in kv[0]))
        ],
        "by_day": [{"day": d, "status": st, "n": n} for (d, st), n in sorted(days.items())],
        "reasons": [{"reason": r, "n": n} for r, n in _top(Counter(r for _, r in decided), 10)],
        "failures": failures,
        "profiles": sorted({r["trust_profile"] for r in found if r["trust_profile"] is not None}),
    }


def signers(ledger: Ledger, *, sample: int = SAMPLE) -> list[dict[str, Any]]:
    """Per signer over the newest ``sample`` verdicts: first/last seen, verdicts per status, models."""
    found, _ = _sample(ledger, AuditFilter(), sample)
    by: dict[str, dict[str, Any]] = {}
    for r in found:
        if r["signer"] is None:
            continue
        s = by.setdefault(
            r["signer"],
            {
                "signer": r["signer"],
                "first_seen": r["created_at"],
                "last_seen": r["created_at"],
                "verdicts": 0,
                "pass": 0,
                "fail": 0,
                "indeterminate": 0,
                "models": set(),
            },
        )
        s["first_seen"], s["last_seen"] = min(s["first_seen"], r["created_at"]), max(s["last_seen"], r["created_at"])
        s["verdicts"] += 1
        s[r["status"]] = s.get(r["status"], 0) + 1
        if r["model"]:
            s["models"].add(r["model"])
    return [{**s, "models": sorted(s["models"])} for s in sorted(by.values(), key=lambda s: -s["last_seen"])]


def signer(ledger: Ledger, address: str, *, sample: int = 200) -> dict[str, Any] | None:
    """One signer over its newest ``sample`` verdicts: seen, models, software identities, attestation reuse."""
    recent = [
        {**row, "verdict": json.loads(row.pop("verdict_json"))}
        for row in ledger.db.query(
            "SELECT id, created_at, status, model, gateway, verdict_json FROM verdicts"
            " WHERE signer = ? ORDER BY id DESC LIMIT ?",
            [address, sample],
        )
    ]
    if not recent:
        return None
    software: dict[tuple[str, ...], int] = {}
    reused = 0
    for row in recent:
        claims = row["verdict"].get("claims") or {}
        for app in (claims.get("app") or {}).values():
            if isinstance(app, dict):
                ident = tuple(str(app.get(k) or "") for k in ("app_id", "compose_hash", "os_image_hash"))
                software[ident] = software.get(ident, 0) + 1
        if (row["verdict"].get("attestation") or {}).get("origin") == "reused":
            reused += 1
    return {
        "address": address,
        "sampled": len(recent),
        "first_seen": recent[-1]["created_at"],
        "last_seen": recent[0]["created_at"],
        "models": sorted({str(r["model"]) for r in recent if r["model"]}),
        "software": sorted(software.items(), key=lambda kv: -kv[1]),
        "reused": reused,
        "history": [{k: v for k, v in r.items() if k != "verdict"} for r in recent],
    }


def evidence_files(ledger: Ledger, verdict_id: str) -> list[dict[str, Any]]:
    """The verdict's evidence files: name, size (bytes), stored size (compressed, shared by equal files), sha256."""
    return list(
        ledger.db.query(
            "SELECT ve.name, e.size, length(e.data) AS stored, e.sha256 FROM verdict_evidence ve"
            " JOIN evidence e ON e.sha256 = ve.sha256 WHERE ve.verdict_id = ? ORDER BY ve.name",
            [verdict_id],
        )
    )


def supersedes_chain(ledger: Ledger, verdict_id: str, *, depth: int = 20) -> list[dict[str, Any]]:
    """The verdicts this one supersedes, newest first (each by its id, the primary key), at most ``depth``."""
    chain: list[dict[str, Any]] = []
    current = ledger.db.execute("SELECT supersedes FROM verdicts WHERE id = ?", [verdict_id]).fetchone()
    while current is not None and current[0] is not None and len(chain) < depth:
        row = list(
            ledger.db.query(
                "SELECT id, created_at, status, policy_id, supersedes FROM verdicts WHERE id = ?", [current[0]]
            )
        )
        if not row:
            break
        chain.append(row[0])
        current = (row[0]["supersedes"],)
    return chain


def profiles(ledger: Ledger, *, sample: int = SAMPLE) -> list[str]:
    """The trust profiles among the newest ``sample`` verdicts (the dashboard's banner)."""
    return [
        r[0]
        for r in ledger.db.execute(
            "SELECT DISTINCT trust_profile FROM (SELECT trust_profile FROM verdicts ORDER BY id DESC LIMIT ?)"
            " WHERE trust_profile IS NOT NULL ORDER BY 1",
            [sample],
        )
    ]
