"""The job tables against what the verdicts say (part of ``verifier ledger check``).

A job's new verdicts are in the hash chain and the transparency log; its rows are not. So each row is re-derived
from them: an item names the verdict it re-verified (in the job's selection, with that verdict's status as the old
status) and the new verdict that supersedes it, whose ``claims.reverification`` (job, previous status, both clocks)
and policy are the item's and the job's; a new verdict that names a job has that job's item; the job's ``total``
is its selection's size and its policy text hashes to its ``policy_sha256``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlite_utils import Database

_ITEM = (
    "i.job_id, i.verdict_id, i.new_verdict_id, i.old_status, i.captured_at, i.captured_status, i.job_at, i.job_status,"
    " i.reasons_json, i.error, old.status, new.verdict_json, new.supersedes, j.policy_id, j.policy_sha256,"
    " EXISTS (SELECT 1 FROM job_selection s WHERE s.job_id = i.job_id AND s.verdict_id = i.verdict_id)"
)


def check_jobs(db: Database) -> list[str]:
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "jobs" not in tables:
        return []  # the ledger predates migration 0004 (the missing triggers are reported)
    problems: list[str] = []
    for job_id, policy_text, policy_sha256, total, selected, first, last in db.execute(
        "SELECT j.id, j.policy_text, j.policy_sha256, j.total, count(s.seq), min(s.seq), max(s.seq)"
        " FROM jobs j LEFT JOIN job_selection s ON s.job_id = j.id GROUP BY j.id ORDER BY j.id"
    ):
        if total != selected or (selected and (first, last) != (0, selected - 1)):
            problems.append(f"job {job_id}: its total ({total}) is not its selection ({selected} verdicts)")
        if policy_text is not None and hashlib.sha256(str(policy_text).encode()).hexdigest() != policy_sha256:
            problems.append(f"job {job_id}: its policy text does not hash to its policy_sha256")
    itemized: set[str] = set()
    cursor = db.execute(
        f"SELECT {_ITEM} FROM job_items i JOIN jobs j ON j.id = i.job_id"  # noqa: S608 - constant SQL
        " LEFT JOIN verdicts old ON old.id = i.verdict_id LEFT JOIN verdicts new ON new.id = i.new_verdict_id"
        " ORDER BY i.job_id, i.verdict_id"
    )
    for row in cursor:
        problem = _item_problem(*row)
        if problem is not None:
            problems.append(f"job {row[0]}: item {row[1]}: {problem}")
        if row[2] is not None:
            itemized.add(str(row[2]))
    for vid, job_id in db.execute(
        "SELECT id, json_extract(verdict_json, '$.claims.reverification.job') FROM verdicts"
        " WHERE json_valid(verdict_json) AND json_type(verdict_json, '$.claims.reverification.job') = 'text'"
    ):
        if vid not in itemized and job_id in _job_ids(db):
            problems.append(f"job {job_id}: verdict {vid} says this job made it, but the job has no item for it")
    for table in ("job_selection", "job_events", "job_items"):
        n = db.execute(
            f"SELECT count(*) FROM {table} WHERE job_id NOT IN (SELECT id FROM jobs)"  # noqa: S608 - constant names
        ).fetchone()[0]
        if n:
            problems.append(f"{table}: {n} row(s) point at no job")
    return problems


def _job_ids(db: Database) -> set[str]:
    return {r[0] for r in db.execute("SELECT id FROM jobs")}


def _item_problem(
    job_id: str,
    verdict_id: str,
    new_id: str | None,
    old_status: str,
    captured_at: Any,
    captured_status: Any,
    job_at: Any,
    job_status: Any,
    reasons_json: Any,
    error: Any,
    stored_old_status: str | None,
    new_json: str | None,
    new_supersedes: str | None,
    policy_id: str,
    policy_sha256: str,
    in_selection: int,
) -> str | None:
    if not in_selection:
        return "the verdict is not in the job's selection"
    if stored_old_status is None:
        return "it re-verified a verdict that is not in the ledger"
    if old_status != stored_old_status:
        return f"its old status {old_status!r} is not that verdict's ({stored_old_status!r})"
    if new_id is None:
        return None if error is not None else "it has neither a new verdict nor an error"
    if new_json is None:
        return f"its new verdict {new_id} is not in the ledger"
    try:
        new = json.loads(new_json)
        again = new["claims"]["reverification"]
        clocks = again["clocks"]
        derived = {
            "job": again["job"],
            "previous": (again["previous"]["id"], again["previous"]["status"]),
            "captured": (clocks["captured"]["at"], clocks["captured"]["status"]),
            "at job time": (clocks["job"]["at"], clocks["job"]["status"], list(clocks["job"]["reasons"])),
            "status": new["status"],
            "policy": (new["policy"]["id"], new["policy"]["sha256"]),
        }
        reasons = json.loads(reasons_json)
    except (ValueError, KeyError, TypeError):
        return f"its new verdict {new_id} does not carry the re-verification it should (claims.reverification)"
    stored = {
        "job": job_id,
        "previous": (verdict_id, old_status),
        "captured": (captured_at, captured_status),
        "at job time": (job_at, job_status, reasons),
        "status": job_status,
        "policy": (policy_id, policy_sha256),
    }
    differ = [k for k in stored if stored[k] != derived[k]]
    if new_supersedes != verdict_id:
        differ.append("supersedes")
    return None if not differ else f"its {', '.join(differ)} differ from its new verdict {new_id}"
