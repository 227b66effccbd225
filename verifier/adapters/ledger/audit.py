"""Read-only audit queries over the ledger for the dashboard: filtered lists, facet counts, overview, signers.

Every function takes a ``Ledger`` and runs synchronously: call it through the recorder's reader threads, never
on the event loop. Lists are keyset-paged on the verdict id (newest first, ``id < before``), so a page costs the
same at any depth. Counts are bounded: facets, the overview and the signer table count over the newest
``sample`` verdicts that match (default ``SAMPLE``), never the whole table; ``Counts.capped`` says when the
bound was hit, and the pages say so.
"""

from __future__ import annotations

import json
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

    def where(self, *, before: str | None = None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column in FACET_COLUMNS:
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"v.{column} = ?")
                params.append(value)
        if self.reason is not None:
            clauses.append(f"v.id IN (SELECT verdict_id FROM checks WHERE reason = ? AND {BAD})")  # noqa: S608
            params.append(self.reason)
        if self.check is not None:
            clauses.append(f"v.id IN (SELECT verdict_id FROM checks WHERE check_id = ? AND {BAD})")  # noqa: S608
            params.append(self.check)
        if self.since is not None:
            clauses.append("v.created_at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("v.created_at < ?")
            params.append(self.until)
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


SUMMARY = ("v.id", "v.created_at", "v.status", "v.model", "v.gateway", "v.signer", "v.trust_profile", "v.policy_id",
           "v.supersedes")


def page(ledger: Ledger, flt: AuditFilter, *, before: str | None = None,
         limit: int = 50) -> tuple[list[dict[str, Any]], str | None]:
    """One page of verdict summaries (newest first) with their non-passing reasons; (rows, next ``before`` or None)."""
    limit = max(1, min(limit, PAGE_MAX))
    where, params = flt.where(before=before)
    # why the verdict is what it is: the reasons of its checks with the verdict's own status (a passing verdict's
    # advisory non-passes, e.g. not_applicable, are not why anything failed)
    reasons = ("(SELECT group_concat(DISTINCT c.reason) FROM checks c WHERE c.verdict_id = v.id AND c.status = v.status"
               " AND v.status != 'pass' AND c.reason IS NOT NULL) AS reasons")
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


def _sample(flt: AuditFilter, sample: int) -> tuple[str, list[Any]]:
    where, params = flt.where()
    return f"SELECT v.* FROM verdicts v{where} ORDER BY v.id DESC LIMIT ?", [*params, sample + 1]  # noqa: S608


def facets(ledger: Ledger, flt: AuditFilter, *, sample: int = SAMPLE) -> Counts:
    """Counts per value of each facet (status, model, gateway, signer, trust profile, reason, check) over the newest
    ``sample`` verdicts matching ``flt``."""
    inner, params = _sample(flt, sample)
    sampled = ledger.db.execute(f"SELECT count(*) FROM ({inner})", params).fetchone()[0]  # noqa: S608
    capped = sampled > sample
    inner, params = _sample(flt, sample)
    bounded = f"SELECT * FROM ({inner}) LIMIT {int(sample)}"  # noqa: S608
    out: dict[str, list[tuple[str, int]]] = {}
    for column in FACET_COLUMNS:
        out[column] = [(str(value), n) for value, n in ledger.db.execute(
            f"SELECT {column}, count(*) AS n FROM ({bounded}) WHERE {column} IS NOT NULL GROUP BY 1"  # noqa: S608
            f" ORDER BY n DESC, 1 LIMIT {FACET_TOP}", params)]
    for name, column in (("reason", "reason"), ("check", "check_id")):
        out[name] = [(str(value), n) for value, n in ledger.db.execute(
            f"SELECT c.{column}, count(DISTINCT c.verdict_id) AS n FROM checks c WHERE c.{BAD}"  # noqa: S608
            f" AND c.{column} IS NOT NULL AND c.verdict_id IN (SELECT id FROM ({bounded}))"
            f" GROUP BY 1 ORDER BY n DESC, 1 LIMIT {FACET_TOP}", params)]
    return Counts(sampled=min(sampled, sample), capped=capped, facets=out)


def overview(ledger: Ledger, *, sample: int = SAMPLE) -> dict[str, Any]:
    """Status counts per (model, gateway), per day, the top failure reasons (of the checks that made a
    verdict fail or indeterminate) and the newest failures."""
    inner, params = _sample(AuditFilter(), sample)
    bounded = f"SELECT * FROM ({inner}) LIMIT {int(sample)}"  # noqa: S608
    total = ledger.db.execute(f"SELECT count(*) FROM ({inner})", params).fetchone()[0]  # noqa: S608
    by_subject = list(ledger.db.query(
        f"SELECT model, gateway, status, count(*) AS n FROM ({bounded})"  # noqa: S608
        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", params))
    by_day = list(ledger.db.query(
        f"SELECT date(created_at, 'unixepoch') AS day, status, count(*) AS n FROM ({bounded})"  # noqa: S608
        " GROUP BY 1, 2 ORDER BY 1", params))
    reasons = list(ledger.db.query(
        f"SELECT c.reason, count(DISTINCT c.verdict_id) AS n FROM checks c JOIN ({bounded}) b ON b.id = c.verdict_id"  # noqa: S608
        " WHERE c.status = b.status AND b.status != 'pass' AND c.reason IS NOT NULL"
        " GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10", params))
    failures, _ = page(ledger, AuditFilter(status="fail"), limit=10)
    profiles = [r[0] for r in ledger.db.execute(
        f"SELECT DISTINCT trust_profile FROM ({bounded})"  # noqa: S608
        " WHERE trust_profile IS NOT NULL ORDER BY 1", params)]
    return {"sampled": min(total, sample), "capped": total > sample, "by_subject": by_subject, "by_day": by_day,
            "reasons": reasons, "failures": failures, "profiles": profiles}


def signers(ledger: Ledger, *, sample: int = SAMPLE) -> list[dict[str, Any]]:
    """Per signer over the newest ``sample`` verdicts: first/last seen, verdicts per status, models."""
    inner, params = _sample(AuditFilter(), sample)
    bounded = f"SELECT * FROM ({inner}) LIMIT {int(sample)}"  # noqa: S608
    out = list(ledger.db.query(
        "SELECT signer, min(created_at) AS first_seen, max(created_at) AS last_seen, count(*) AS verdicts,"  # noqa: S608
        " sum(status = 'pass') AS pass, sum(status = 'fail') AS fail, sum(status = 'indeterminate') AS indeterminate,"
        f" group_concat(DISTINCT model) AS models FROM ({bounded}) WHERE signer IS NOT NULL"
        " GROUP BY signer ORDER BY last_seen DESC", params))
    for row in out:
        row["models"] = sorted(set(row["models"].split(","))) if row["models"] else []
    return out


def signer(ledger: Ledger, address: str, *, sample: int = 200) -> dict[str, Any] | None:
    """One signer over its newest ``sample`` verdicts: seen, models, software identities, attestation reuse."""
    recent = [
        {**row, "verdict": json.loads(row.pop("verdict_json"))}
        for row in ledger.db.query("SELECT id, created_at, status, model, gateway, verdict_json FROM verdicts"
                                   " WHERE signer = ? ORDER BY id DESC LIMIT ?", [address, sample])
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
        "address": address, "sampled": len(recent),
        "first_seen": recent[-1]["created_at"], "last_seen": recent[0]["created_at"],
        "models": sorted({str(r["model"]) for r in recent if r["model"]}),
        "software": sorted(software.items(), key=lambda kv: -kv[1]), "reused": reused,
        "history": [{k: v for k, v in r.items() if k != "verdict"} for r in recent],
    }


def evidence_files(ledger: Ledger, verdict_id: str) -> list[dict[str, Any]]:
    """The verdict's evidence files: name, size (bytes), stored size (compressed, shared by equal files), sha256."""
    return list(ledger.db.query(
        "SELECT ve.name, e.size, length(e.data) AS stored, e.sha256 FROM verdict_evidence ve"
        " JOIN evidence e ON e.sha256 = ve.sha256 WHERE ve.verdict_id = ? ORDER BY ve.name", [verdict_id]))


def supersedes_chain(ledger: Ledger, verdict_id: str, *, depth: int = 20) -> list[dict[str, Any]]:
    """The verdicts this one supersedes, newest first (each by its id, the primary key), at most ``depth``."""
    chain: list[dict[str, Any]] = []
    current = ledger.db.execute("SELECT supersedes FROM verdicts WHERE id = ?", [verdict_id]).fetchone()
    while current is not None and current[0] is not None and len(chain) < depth:
        row = list(ledger.db.query("SELECT id, created_at, status, policy_id, supersedes FROM verdicts WHERE id = ?",
                                   [current[0]]))
        if not row:
            break
        chain.append(row[0])
        current = (row[0]["supersedes"],)
    return chain


def profiles(ledger: Ledger, *, sample: int = SAMPLE) -> list[str]:
    """The trust profiles among the newest ``sample`` verdicts (the dashboard's banner)."""
    return [r[0] for r in ledger.db.execute(
        "SELECT DISTINCT trust_profile FROM (SELECT trust_profile FROM verdicts ORDER BY id DESC LIMIT ?)"
        " WHERE trust_profile IS NOT NULL ORDER BY 1", [sample])]
