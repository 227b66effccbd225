"""`reverify` (one verdict, or a batch job over the ledger) and `jobs list|show|resume|cancel`.

A batch prints a progress line (count, rate, ETA) on a terminal and a final summary; ``--json`` prints the summary
as one object ``{"job", "total", "changed", "by_change", "by_reason", ...}``. Exit 0 when the job is done, 1 for a
usage error, 3 when it stopped unfinished (cancelled).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from verifier.adapters.ledger import LedgerError
from verifier.adapters.ledger.jobs import JobStore
from verifier.app.job_spec import COLLATERAL, FILTER_KEYS, JobSpec, JobSpecError, parse_at, parse_filter
from verifier.app.jobs import BATCH, JobError, UnknownJob, describe_job, list_jobs
from verifier.app.services import Services, open_services
from verifier.cli.ledger import _reverify
from verifier.cli.options import db_option, emit, open_ledger, open_ledger_rw, settings_from
from verifier.core.trust import PRODUCTION, SIMULATOR

_JOBS_HELP = (
    "Worker processes evaluating recorded evidence, each with its own dcap-qvl worker (1: in this process; "
    "refreshed collateral is always evaluated here, N at a time)."
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_batch_option = click.option(
    "--batch",
    "batch",
    type=click.IntRange(1, 1000),
    default=BATCH,
    show_default=True,
    help="Verdicts committed per ledger transaction (a crash loses at most one batch of work).",
)


def summary(job: dict[str, Any]) -> dict[str, Any]:
    """The batch summary: the issue's shape plus the job's state, done/errors counts and both clocks."""
    return {
        "job": job["id"],
        "state": job["state"],
        "total": job["total"],
        "done": job["done"],
        "changed": job["changed"],
        "errors": job["errors"],
        "by_change": job["by_change"],
        "by_reason": job["by_reason"],
        "clocks": job["clocks"],
    }


def _progress_line(job: dict[str, Any]) -> None:
    rate = f"{job['rate']:.1f}/s" if job["rate"] else "-/s"
    eta = f"ETA {job['eta_s']:.0f}s" if job["eta_s"] is not None else ""
    click.echo(f"\r{job['done']}/{job['total']}  {rate}  {eta}   ", nl=False, err=True)


def _print_summary(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary(job), sort_keys=True, ensure_ascii=False))
    else:
        changes = ", ".join(f"{k}: {n}" for k, n in sorted(job["by_change"].items())) or "none"
        reasons = ", ".join(f"{k}: {n}" for k, n in sorted(job["by_reason"].items())) or "none"
        click.echo(
            f"job {job['id']} {job['state']}: {job['done']}/{job['total']} re-verified, {job['changed']} changed "
            f"({changes}), {job['errors']} errors; reasons: {reasons}"
        )
    sys.exit(0 if job["state"] == "done" else 3)


async def _run(
    settings: Any, job_id: str | None, spec: JobSpec | None, jobs: int, batch: int, progress: bool
) -> dict[str, Any]:
    async with open_services(settings) as svc:
        if job_id is None:
            assert spec is not None
            job_id = (await svc.jobs.create(spec))["id"]
        return await _execute(svc, job_id, jobs, batch, progress)


async def _execute(svc: Services, job_id: str, jobs: int, batch: int, progress: bool) -> dict[str, Any]:
    job = await svc.jobs.run(
        job_id,
        concurrency=jobs,
        batch=batch,
        progress=_progress_line if progress else None,
        processes=jobs if jobs > 1 else 0,
    )
    if progress:
        click.echo("", err=True)
    return job


def _settings(db_path: str, trust: str, collateral: str, jobs: int, policy_path: str | None = None) -> Any:
    return settings_from(
        db_path=db_path,
        offline=collateral == "recorded",
        dcap_workers=jobs,
        trust_profile=trust,
        policy_path=policy_path,
    )


def _where(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in FILTER_KEYS:
            raise click.BadParameter(
                f"{pair!r}: expected KEY=VALUE with KEY one of {', '.join(FILTER_KEYS)}", param_hint="--where"
            )
        if key in ("since", "until"):
            if not value.isdigit():
                raise click.BadParameter(f"{key}: expected unix seconds, got {value!r}", param_hint="--where")
            out[key] = int(value)
        elif key == "ids":
            out["ids"] = [*out.get("ids", []), *value.split(",")]
        else:
            out[key] = value
    return out


@click.command()
@click.argument("verdict_id", required=False)
@click.option(
    "--all", "select_all", is_flag=True, help="Every verdict that no other supersedes (the head of each chain)."
)
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="KEY=VALUE",
    help=f"Select heads by {', '.join(FILTER_KEYS)} (repeatable; ids=ID,ID takes exactly those verdicts).",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Policy TOML to re-appraise with (default: the bundled policy).",
)
@click.option(
    "--at",
    "at",
    default=None,
    metavar="captured|now|T",
    help="Verification time: each verdict's capture time, now, or unix seconds (one verdict: default now).",
)
@click.option(
    "--collateral",
    type=click.Choice(list(COLLATERAL)),
    default="recorded",
    show_default=True,
    help="The bundle's Intel collateral; fetched from Intel PCS now (once per FMSPC); early: Intel's early "
    "TCB update (update=early), to see which platforms will drop before Intel enforces it.",
)
@click.option("--jobs", "jobs", type=click.IntRange(1, 256), default=1, show_default=True, help=_JOBS_HELP)
@click.option(
    "--trust",
    type=click.Choice([PRODUCTION, SIMULATOR]),
    default=PRODUCTION,
    show_default=True,
    help="Trust anchors (a batch re-verifies only the verdicts recorded under them).",
)
@_batch_option
@db_option
@_json_option
def reverify(
    verdict_id: str | None,
    select_all: bool,
    where: tuple[str, ...],
    policy_path: str | None,
    at: str | None,
    collateral: str,
    jobs: int,
    trust: str,
    batch: int,
    db_path: str,
    as_json: bool,
) -> None:
    """Re-evaluate recorded evidence offline; each new verdict supersedes the old (one ID, --all or --where)."""
    if verdict_id is not None:
        if select_all or where:
            raise click.UsageError("give a verdict id, or --all / --where, not both")
        _one(verdict_id, db_path, at, as_json)
        return
    if not select_all and not where:
        raise click.UsageError("give a verdict id, --all or --where KEY=VALUE")
    try:
        spec = JobSpec(
            filter=parse_filter(_where(where)),
            at=parse_at(at or "captured"),
            collateral=collateral,
            policy=Path(policy_path).read_text("utf-8") if policy_path else None,
        )
    except (JobSpecError, OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(str(exc)) from None
    if not Path(db_path).exists():
        raise click.ClickException(f"no ledger at {db_path} (use --db or VERIFIER_DB)")
    settings = _settings(db_path, trust, collateral, jobs)
    job = _guarded(lambda: asyncio.run(_run(settings, None, spec, jobs, batch, sys.stderr.isatty() and not as_json)))
    _print_summary(job, as_json)


def _one(verdict_id: str, db_path: str, at: str | None, as_json: bool) -> None:
    with open_ledger(db_path) as ledger:
        old = ledger.get(verdict_id)
    if old is None:
        raise click.ClickException(f"no verdict {verdict_id!r} in {db_path}")
    try:
        when = parse_at(at) if at is not None else "now"
    except JobSpecError as exc:
        raise click.BadParameter(exc.message, param_hint="--at") from None
    times = old.get("times") or {}
    seconds = (
        None
        if when == "now"
        else int(times.get("captured_at") or times["verified_at"])
        if when == "captured"
        else int(when)
    )
    settings = settings_from(
        db_path=db_path, offline=True, dcap_workers=1, trust_profile=old.get("trust_profile", PRODUCTION)
    )
    try:
        verdict = asyncio.run(_reverify(settings, verdict_id, seconds))
    except LedgerError as exc:
        raise click.ClickException(exc.message) from None
    emit(verdict, as_json)


def _guarded(fn: Any) -> dict[str, Any]:
    try:
        job: dict[str, Any] = fn()
    except (JobSpecError, JobError) as exc:
        raise click.ClickException(str(exc)) from None
    except UnknownJob as exc:
        raise click.ClickException(f"no job {exc.args[0]!r}") from None
    except LedgerError as exc:
        raise click.ClickException(exc.message) from None
    return job


def _cancelled(ledger: Any, job_id: str) -> dict[str, Any]:
    JobStore(ledger).event(job_id, "cancelled")
    return describe_job(ledger, job_id)


@click.group("jobs")
def jobs_group() -> None:
    """Batch re-verification jobs recorded in the ledger."""


@jobs_group.command("list")
@db_option
@_json_option
def list_cmd(db_path: str, as_json: bool) -> None:
    """Jobs, newest first (a job killed mid-run reads `interrupted`, never `done`)."""
    with open_ledger(db_path) as ledger:
        items = list_jobs(ledger)
    if as_json:
        click.echo(json.dumps(items, sort_keys=True, ensure_ascii=False))
        return
    for job in items:
        click.echo(f"{job['id']}  {job['state']:<11}  {job['done']}/{job['total']}  changed {job['changed']}")


@jobs_group.command("show")
@click.argument("job_id")
@db_option
@_json_option
def show(job_id: str, db_path: str, as_json: bool) -> None:
    """One job: state, counts, rate, ETA, changes by kind and reason, both clocks."""
    with open_ledger(db_path) as ledger:
        job = _guarded(lambda: describe_job(ledger, job_id))
    if as_json:
        click.echo(json.dumps(job, sort_keys=True, ensure_ascii=False))
        return
    click.echo(json.dumps(job, indent=2, sort_keys=True, ensure_ascii=False))


@jobs_group.command("resume")
@click.argument("job_id")
@click.option("--jobs", "jobs", type=click.IntRange(1, 256), default=1, show_default=True, help=_JOBS_HELP)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="The service policy file, if the job was created with the service's own policy.",
)
@_batch_option
@db_option
@_json_option
def resume(job_id: str, jobs: int, policy_path: str | None, batch: int, db_path: str, as_json: bool) -> None:
    """Continue a job where its last committed batch left off (each verdict is processed once)."""
    with open_ledger(db_path) as ledger:
        job = _guarded(lambda: describe_job(ledger, job_id))
    settings = _settings(db_path, job["trust_profile"], job["collateral"], jobs, policy_path)
    job = _guarded(lambda: asyncio.run(_run(settings, job_id, None, jobs, batch, sys.stderr.isatty() and not as_json)))
    _print_summary(job, as_json)


@jobs_group.command("cancel")
@click.argument("job_id")
@db_option
@_json_option
def cancel(job_id: str, db_path: str, as_json: bool) -> None:
    """Cancel a job: a running one stops after its current batch."""
    with open_ledger(db_path) as ledger:
        job = _guarded(lambda: describe_job(ledger, job_id))
    if job["state"] not in ("done", "cancelled"):
        with open_ledger_rw(db_path) as ledger:
            job = _guarded(lambda: _cancelled(ledger, job_id))
    click.echo(json.dumps(job, sort_keys=True, ensure_ascii=False) if as_json else f"job {job_id} {job['state']}")
