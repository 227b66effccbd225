"""Batch re-verification jobs in the ledger (migration 0004_jobs): every table append-only.

A job is one ``jobs`` row (its spec, the policy text it appraises with, its clock), its selection frozen at creation
(``job_selection``: the total never moves), its state changes (``job_events``: the newest is the state) and one
``job_items`` row per processed verdict naming the verdict that supersedes it. ``commit`` saves a batch of new
verdicts and their items in ONE transaction and skips a verdict that already has an item in this job, so a job
resumed after a crash (or run by two processes at once) processes every verdict exactly once.
"""

from __future__ import annotations

import builtins
import json
import os
import socket
from dataclasses import dataclass, field, replace
from typing import Any

from verifier.adapters.ledger.claims import claim_clauses
from verifier.adapters.ledger.ledger import Ledger, insert_rows
from verifier.adapters.ledger.rows import LedgerCorruptionError, encode_id

JSON = dict[str, Any]
STATES = ("queued", "running", "interrupted", "cancelled", "done")
_FILTER_COLUMNS = ("status", "model", "signer", "gateway")


class UnknownJob(LookupError):
    """No job with that id."""


def corrupt_job(job_id: str, exc: Exception) -> LedgerCorruptionError:
    return LedgerCorruptionError(
        f"job {job_id}: the stored job is not one the verifier wrote ({type(exc).__name__}: {exc}); it was edited "
        "outside the verifier"
    )


def reasons_of(text: str) -> builtins.list[str]:
    """An item's stored reason codes (a JSON list of strings); ValueError for anything else."""
    reasons = json.loads(text)
    if not isinstance(reasons, builtins.list) or not all(isinstance(r, str) for r in reasons):
        raise ValueError("reasons_json is not a list of reason codes")
    return reasons


@dataclass(frozen=True, slots=True)
class Item:
    """One processed verdict: the new verdict (None when it could not be re-verified: ``error``) and both clocks."""

    verdict_id: str
    old_status: str
    new_verdict: JSON | None
    evidence: dict[str, bytes] = field(default_factory=dict)
    captured_at: int | None = None
    captured_status: str | None = None
    job_at: int | None = None
    job_status: str | None = None
    reasons: tuple[str, ...] = ()
    error: str | None = None
    stored: dict[str, str] = field(default_factory=dict)  # more evidence the ledger already holds: name -> sha256


def owner_tag() -> str:
    """Who runs a job: ``host:pid`` (a running job whose process is gone on this host reads as interrupted)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(owner: str | None) -> bool:
    host, _, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another host's process: we cannot tell, so it is taken as running
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: a pid no process can have
        return False
    except PermissionError:
        return True
    return True


def has_jobs(ledger: Ledger) -> bool:
    """False for a ledger created before 0004_jobs (opened read-only, it is never migrated)."""
    row = ledger.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone()
    return row is not None


class JobStore:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.db = ledger.db

    # --- selection ---------------------------------------------------------------------------

    def select(
        self,
        *,
        trust_profile: str,
        status: str | None = None,
        model: str | None = None,
        signer: str | None = None,
        gateway: str | None = None,
        since: float | None = None,
        until: float | None = None,
        ids: builtins.list[str] | None = None,
        claims: dict[str, str] | None = None,
    ) -> builtins.list[str]:
        """Verdict ids to re-verify, oldest first: the newest verdict of each supersedes chain (no verdict supersedes
        it) recorded under ``trust_profile`` matching every filter (``claims``: indexed claim values,
        ``ledger.claims``);
        with ``ids``, exactly those (ValueError naming an unknown one)."""
        where: builtins.list[str] = ["v.trust_profile = ?"]
        params: builtins.list[Any] = [trust_profile]
        if ids is not None:
            marks = ", ".join("?" * len(ids))
            known = {r[0] for r in self.db.execute(f"SELECT id FROM verdicts WHERE id IN ({marks})", ids)}  # noqa: S608
            missing = [i for i in ids if i not in known]
            if missing:
                raise ValueError(f"ids: no verdict {missing[0]!r}")
            where.append(f"v.id IN ({', '.join('?' * len(ids))})")
            params += ids
        else:
            where.append("NOT EXISTS (SELECT 1 FROM verdicts s WHERE s.supersedes = v.id)")
        for column, value in zip(_FILTER_COLUMNS, (status, model, signer, gateway), strict=True):
            if value is not None:
                where.append(f"v.{column} = ?")
                params.append(value)
        if since is not None:
            where.append("v.created_at >= ?")
            params.append(since)
        if until is not None:
            where.append("v.created_at < ?")
            params.append(until)
        claim_where, claim_params = claim_clauses(claims, id_column="v.id")
        where, params = where + claim_where, params + claim_params
        sql = "SELECT v.id FROM verdicts v WHERE " + " AND ".join(where) + " ORDER BY v.id"  # noqa: S608 - constant SQL
        return [r[0] for r in self.db.execute(sql, params)]

    # --- writes ------------------------------------------------------------------------------

    def create(
        self,
        *,
        spec: JSON,
        selection: builtins.list[str],
        policy_text: str | None,
        policy_id: str,
        policy_sha256: str,
        trust_profile: str,
        at: int | None,
        collateral: str,
        created_by: str | None = None,
    ) -> str:
        """A queued job over ``selection`` (in one transaction); returns its id (``j_`` + a time-ordered ULID)."""
        with self.ledger.transaction():
            now = self.ledger.now()
            value = (int(now * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
            job_id = "j_" + encode_id(value)[2:]
            self.db.table("jobs").insert(
                {
                    "id": job_id,
                    "created_at": now,
                    "kind": "reverify",
                    "spec_json": json.dumps(spec, sort_keys=True),
                    "policy_text": policy_text,
                    "policy_id": policy_id,
                    "policy_sha256": policy_sha256,
                    "trust_profile": trust_profile,
                    "at": at,
                    "collateral": collateral,
                    "total": len(selection),
                    "created_by": created_by,
                }
            )
            self.db.table("job_selection").insert_all(
                {"job_id": job_id, "seq": seq, "verdict_id": vid} for seq, vid in enumerate(selection)
            )
            self._event(job_id, "queued", None, now)
        return job_id

    def event(self, job_id: str, state: str, *, owner: str | None = None) -> None:
        with self.ledger.transaction():
            self.row(job_id)
            self._event(job_id, state, owner, self.ledger.now())

    def _event(self, job_id: str, state: str, owner: str | None, at: float) -> None:
        if state not in STATES:
            raise ValueError(f"job state {state!r}: expected one of {STATES}")
        self.db.table("job_events").insert({"job_id": job_id, "at": at, "state": state, "owner": owner})

    def commit(
        self, job_id: str, items: builtins.list[Item], *, submitted_by: str | None = None
    ) -> builtins.list[Item]:
        """Save the batch's new verdicts and items in one transaction; return the items committed (an item this job
        already has is skipped with its verdict), each with its new verdict's id set."""
        committed: builtins.list[Item] = []
        with self.ledger.transaction():
            for item in items:
                if self.db.execute(
                    "SELECT 1 FROM job_items WHERE job_id = ? AND verdict_id = ?", [job_id, item.verdict_id]
                ).fetchone():
                    continue
                new_id = None
                verdict = item.new_verdict
                if verdict is not None:
                    new_id = self.ledger.save(
                        verdict, item.evidence, submitted_by=submitted_by, stored_evidence=item.stored
                    )
                    verdict = {**verdict, "id": new_id}
                insert_rows(
                    self.db,
                    "job_items",
                    [
                        {
                            "job_id": job_id,
                            "verdict_id": item.verdict_id,
                            "new_verdict_id": new_id,
                            "done_at": self.ledger.now(),
                            "old_status": item.old_status,
                            "captured_at": item.captured_at,
                            "captured_status": item.captured_status,
                            "job_at": item.job_at,
                            "job_status": item.job_status,
                            "reasons_json": json.dumps(list(item.reasons)),
                            "error": item.error,
                        }
                    ],
                )
                committed.append(replace(item, new_verdict=verdict, evidence={}, stored={}))
        return committed

    # --- reads -------------------------------------------------------------------------------

    def row(self, job_id: str) -> JSON:
        rows = builtins.list(self.db.query("SELECT * FROM jobs WHERE id = ?", [job_id]))
        if not rows:
            raise UnknownJob(job_id)
        return rows[0]

    def pending(self, job_id: str) -> builtins.list[str]:
        """The selection's verdicts this job has no item for yet, in selection order."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT s.verdict_id FROM job_selection s WHERE s.job_id = ? AND NOT EXISTS"
                " (SELECT 1 FROM job_items i WHERE i.job_id = s.job_id AND i.verdict_id = s.verdict_id) ORDER BY s.seq",
                [job_id],
            )
        ]

    def state(self, job_id: str) -> tuple[str, float, str | None]:
        """(state, since when, owner): the newest event; a running job whose process died is ``interrupted``."""
        row = self.db.execute(
            "SELECT state, at, owner FROM job_events WHERE job_id = ? ORDER BY rowid DESC LIMIT 1", [job_id]
        ).fetchone()
        if row is None:
            raise corrupt_job(job_id, LookupError("it has no state event"))
        state, at, owner = row
        if state == "running" and not _alive(owner):
            state = "interrupted"
        return state, at, owner

    def items(self, job_id: str) -> builtins.list[JSON]:
        rows = self.db.query("SELECT * FROM job_items WHERE job_id = ? ORDER BY rowid", [job_id])
        return [{**r, "reasons": reasons_of(r.pop("reasons_json"))} for r in rows]

    def describe(self, job_id: str, *, now: float) -> JSON:
        """The job as served: spec, state, counts, both clocks summed, rate (items/s this run) and ETA (s).
        ``LedgerCorruptionError`` for a job whose rows the verifier did not write (edited outside it)."""
        job = self.row(job_id)
        try:
            return self._describe(job_id, job, now)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise corrupt_job(job_id, exc) from None

    def _describe(self, job_id: str, job: JSON, now: float) -> JSON:
        state, since, _ = self.state(job_id)
        items = self.items(job_id)
        done, total = len(items), int(job["total"])
        by_change: dict[str, int] = {}
        by_reason: dict[str, int] = {}
        clocks: dict[str, dict[str, int]] = {"captured": {}, "job": {}}
        errors = changed = 0
        for item in items:
            if item["error"] is not None:
                errors += 1
                continue
            if item["job_status"] != item["old_status"]:
                changed += 1
                key = f"{item['old_status']}→{item['job_status']}"
                by_change[key] = by_change.get(key, 0) + 1
            for reason in item["reasons"]:
                by_reason[reason] = by_reason.get(reason, 0) + 1
            for clock, status in (("captured", item["captured_status"]), ("job", item["job_status"])):
                clocks[clock][status] = clocks[clock].get(status, 0) + 1
        this_run = [i for i in items if i["done_at"] >= since] if state in ("running", "interrupted") else []
        rate = None
        if this_run:
            elapsed = max(now - since, 1e-3)
            rate = round(len(this_run) / elapsed, 3)
        eta = round((total - done) / rate, 1) if rate and state == "running" else None
        started = self.db.execute(
            "SELECT min(at) FROM job_events WHERE job_id = ? AND state = 'running'", [job_id]
        ).fetchone()[0]
        return {
            "id": job_id,
            "kind": job["kind"],
            "state": state,
            "created_at": job["created_at"],
            "started_at": started,  # its first run's start; None while queued
            "finished_at": since if state in ("done", "cancelled") else None,
            "total": total,
            "done": done,
            "changed": changed,
            "errors": errors,
            "rate": rate,
            "eta_s": eta,
            "spec": _object(json.loads(job["spec_json"])),
            "policy": {"id": job["policy_id"], "sha256": job["policy_sha256"]},
            "trust_profile": job["trust_profile"],
            "at": job["at"],
            "collateral": job["collateral"],
            "by_change": by_change,
            "by_reason": by_reason,
            "clocks": clocks,
        }

    def list(self, *, now: float, limit: int = 100) -> builtins.list[JSON]:
        """Jobs, newest first."""
        ids = [r[0] for r in self.db.execute("SELECT id FROM jobs ORDER BY id DESC LIMIT ?", [limit])]
        return [self.describe(i, now=now) for i in ids]


def _object(value: Any) -> JSON:
    if not isinstance(value, dict):
        raise ValueError("spec_json is not a JSON object")
    return value
