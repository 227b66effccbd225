"""Read-only job queries for the dashboard (``verifier.web.ui.jobs``): jobs newest first and a job's changed verdicts,
both in keyset pages, and its errors. Synchronous: call them through the recorder's reader threads."""

from __future__ import annotations

from typing import Any

from verifier.adapters.ledger.jobs import JobStore, UnknownJob, corrupt_job, has_jobs, reasons_of
from verifier.adapters.ledger.ledger import Ledger

JSON = dict[str, Any]
PAGE_MAX = 100
_CHANGED = "error IS NULL AND job_status IS NOT old_status"
_ITEM = "verdict_id, new_verdict_id, old_status, captured_at, captured_status, job_at, job_status, reasons_json"


def page(ledger: Ledger, *, before: str | None = None, limit: int = 50) -> tuple[list[JSON], str | None]:
    """Jobs as the API describes them, newest first (``id < before``); (jobs, the next page's ``before`` or None)."""
    if not has_jobs(ledger):
        return [], None
    limit = max(1, min(limit, PAGE_MAX))
    where, params = ("WHERE id < ?", [before]) if before is not None else ("", [])
    sql = f"SELECT id FROM jobs {where} ORDER BY id DESC LIMIT ?"  # noqa: S608 - constant SQL
    ids = [r[0] for r in ledger.db.execute(sql, [*params, limit + 1])]
    store, now = JobStore(ledger), ledger.now()
    return [store.describe(i, now=now) for i in ids[:limit]], ids[limit - 1] if len(ids) > limit else None


def detail(
    ledger: Ledger, job_id: str, *, after: str | None = None, limit: int = 100, errors: int = 50
) -> tuple[JSON, list[JSON], str | None, list[JSON]]:
    """(the job, a page of its changed items in old-verdict-id order after ``after``, the next ``after`` or None,
    its first ``errors`` items that could not be re-verified); ``UnknownJob``."""
    if not has_jobs(ledger):
        raise UnknownJob(job_id)
    job = JobStore(ledger).describe(job_id, now=ledger.now())
    limit = max(1, min(limit, PAGE_MAX))
    where, params = ("AND verdict_id > ?", [after]) if after is not None else ("", [])
    rows = list(
        ledger.db.query(
            f"SELECT {_ITEM} FROM job_items WHERE job_id = ? AND {_CHANGED} {where}"  # noqa: S608 - constant SQL
            " ORDER BY verdict_id LIMIT ?",
            [job_id, *params, limit + 1],
        )
    )
    try:
        changed = [{**r, "reasons": reasons_of(r.pop("reasons_json"))} for r in rows[:limit]]
    except ValueError as exc:
        raise corrupt_job(job_id, exc) from None
    failed = list(
        ledger.db.query(
            "SELECT verdict_id, error, done_at FROM job_items WHERE job_id = ? AND error IS NOT NULL"
            " ORDER BY verdict_id LIMIT ?",
            [job_id, errors],
        )
    )
    return job, changed, changed[-1]["verdict_id"] if len(rows) > limit else None, failed
