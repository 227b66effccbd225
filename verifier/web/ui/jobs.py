"""The dashboard's job pages: re-verification jobs newest first (keyset paging, CSV/JSON export), one job's progress,
its changes by kind and by reason and its changed verdicts with both clocks; cancel and resume as admin forms (the
cookie middleware checks the role and the CSRF token). Reads run on the recorder's reader threads
(``adapters.ledger.job_audit``). A malformed job id is a 400, an unknown one a 404, a job in the wrong state for a
form a 409."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from verifier.adapters.ledger import job_audit
from verifier.app.jobs import JobError, UnknownJob
from verifier.web import inputs
from verifier.web.errors import SERVICES, HTTPProblem, bad_request
from verifier.web.ui.access import see_other
from verifier.web.ui.export import stream
from verifier.web.ui.pages import context
from verifier.web.ui.params import STATUSES, iso, job_param

COLUMNS = (
    "id",
    "kind",
    "state",
    "created_at",
    "started_at",
    "finished_at",
    "total",
    "done",
    "changed",
    "errors",
    "rate",
    "eta_s",
    "policy_id",
    "policy_sha256",
    "at",
    "collateral",
    "trust_profile",
    "by_change",
)
FINISHED = ("done", "cancelled")


def _only(request: web.Request, *allowed: str) -> None:
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        name = inputs.printable(unknown[0])[:64]
        raise bad_request(name, f"{name}: unknown query parameter")


def _job_id(request: web.Request) -> str:
    value = request.match_info["id"]
    if not inputs.JOB_ID.fullmatch(value):
        raise bad_request("id", f"not a job id (j_ and 26 characters): {inputs.printable(value)[:40]!r}")
    return value


def _unknown(job_id: str) -> HTTPProblem:
    return HTTPProblem(404, "not_found", f"no job {job_id}", "id")


def duration(seconds: float | None) -> str:
    """``42 s``, ``3 min 20 s``, ``2 h 05 min``; '' for None."""
    if seconds is None:
        return ""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def clock(job: dict[str, Any]) -> str:
    """The job's ``at``: each verdict's capture time, or one instant (``now`` is fixed when the job is created)."""
    if job["at"] is None:
        return "captured"
    return iso(job["at"]) + (" (now, at creation)" if job["spec"].get("at") == "now" else "")


def percent(job: dict[str, Any]) -> float:
    total = job["total"]
    return round(100.0 * job["done"] / total, 1) if total else (100.0 if job["state"] == "done" else 0.0)


async def job_list(request: web.Request) -> web.Response:
    _only(request, "before", "limit")
    cursor = job_param(request, "before")
    limit = inputs.int_param(request, "limit", 1, job_audit.PAGE_MAX) or 50
    items, nxt = await request.app[SERVICES].recorder.read(
        lambda ledger: job_audit.page(ledger, before=cursor, limit=limit)
    )
    values = {"items": items, "next": nxt, "limit": limit, "first": cursor is None, "clock": clock}
    return aiohttp_jinja2.render_template("jobs.html", request, await context(request, duration=duration, **values))


def _row(job: dict[str, Any]) -> dict[str, Any]:
    times = {k: iso(job[k]) if job[k] is not None else None for k in ("created_at", "started_at", "finished_at")}
    policy = {"policy_id": job["policy"]["id"], "policy_sha256": job["policy"]["sha256"]}
    return {**job, **times, **policy, "at": clock(job)}


async def job_export(request: web.Request) -> web.StreamResponse:
    """Every job, newest first, as CSV or JSON (times ISO-8601 UTC, ``at`` as on the page)."""
    _only(request)

    async def fetch(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        items, nxt = await request.app[SERVICES].recorder.read(lambda ledger: job_audit.page(ledger, before=cursor))
        return [_row(job) for job in items], nxt

    return await stream(request, request.match_info["fmt"], "jobs", COLUMNS, fetch)


async def job_page(request: web.Request) -> web.Response:
    job_id = _job_id(request)
    _only(request, "after", "limit")
    after = request.query.get("after") or None
    if after is not None and not inputs.VERDICT_ID.fullmatch(after):
        raise bad_request("after", "after: not a verdict id")
    limit = inputs.int_param(request, "limit", 1, job_audit.PAGE_MAX) or 100
    svc = request.app[SERVICES]
    try:
        found, changed, nxt, failed = await svc.recorder.read(
            lambda ledger: job_audit.detail(ledger, job_id, after=after, limit=limit)
        )
        resumable = await svc.jobs.resumable(job_id)
    except UnknownJob:
        raise _unknown(job_id) from None
    values = {
        "j": found,
        "changed": changed,
        "next": nxt,
        "limit": limit,
        "first": after is None,
        "failed": failed,
        "percent": percent(found),
        "by_change": [(change, n, change.rpartition("→")[2]) for change, n in sorted(found["by_change"].items())],
        "cancellable": found["state"] not in FINISHED,
        "resumable": resumable,
        "statuses": STATUSES,
        "clock": clock,
    }
    return aiohttp_jinja2.render_template("job.html", request, await context(request, duration=duration, **values))


async def cancel(request: web.Request) -> web.Response:
    """The admin form: mark the job cancelled (a running one stops after its current batch); back to its page."""
    job_id, jobs = _job_id(request), request.app[SERVICES].jobs
    try:
        state = (await jobs.get(job_id))["state"]
        if state in FINISHED:
            raise HTTPProblem(409, "conflict", f"job {job_id} is already {state}: there is nothing to cancel")
        await jobs.cancel(job_id)
    except UnknownJob:
        raise _unknown(job_id) from None
    return see_other(f"/ui/jobs/{job_id}")


async def resume(request: web.Request) -> web.Response:
    """The admin form: run a stopped job again in the background, from its last committed batch."""
    job_id = _job_id(request)
    try:
        await request.app[SERVICES].jobs.resume(job_id)
    except UnknownJob:
        raise _unknown(job_id) from None
    except JobError as exc:
        raise HTTPProblem(409, "conflict", str(exc)) from None
    return see_other(f"/ui/jobs/{job_id}")
