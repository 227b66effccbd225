"""Batch re-verification jobs: select recorded verdicts, re-evaluate each under the job's policy and clock, and commit
the superseding verdicts in batches through the ledger's single writer (``adapters.ledger.jobs``).

Dual clock: every verdict is evaluated at its capture time (its own recorded collateral) and at the job's time (the
job's ``at``; with ``collateral: refresh``, Intel collateral fetched now, once per FMSPC per run; ``early``: Intel's
early TCB update, ``update=early``). The new verdict is
the job-time one; its ``claims.reverification`` carries both statuses, and the job item rows sum them per job. With
``at: captured`` and recorded collateral both clocks are the same evaluation.

A job survives a restart: its selection is frozen in the ledger and each batch commits its verdicts together with
their items, so ``run`` on an unfinished job processes exactly the verdicts it has no item for yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from verifier.adapters.ledger.jobs import Item, JobStore, UnknownJob, has_jobs, owner_tag
from verifier.app.job_item import captured_time, failing_reasons, superseding_item
from verifier.app.job_pool import StoredJob, evaluate_files, process_pool, reverify_stored
from verifier.app.job_spec import JobSpec, JobSpecError
from verifier.app.offload import bridge
from verifier.appraise.policy import Policy, parse_policy
from verifier.core.errors import ConfigError, UpstreamError, VerifierError
from verifier.engine.ceiling import prior_checks
from verifier.engine.context import Context
from verifier.engine.evaluate import evaluate
from verifier.evidence.bundle import Bundle
from verifier.evidence.collateral import Collateral

if TYPE_CHECKING:
    from verifier.app.services import Services

log = logging.getLogger("verifier.jobs")
JSON = dict[str, Any]
Progress = Callable[[JSON], None]
BATCH = 16

__all__ = ["BATCH", "JobError", "Jobs", "UnknownJob", "describe_job", "failing_reasons", "list_jobs"]


class JobError(RuntimeError):
    """A job that cannot run as stored (its policy is no longer the service's, its trust profile differs)."""


def describe_job(ledger: Any, job_id: str) -> JSON:
    """The job as served (rates on the ledger's own clock, the one its rows are stamped with); ``UnknownJob``."""
    if not has_jobs(ledger):
        raise UnknownJob(job_id)
    return JobStore(ledger).describe(job_id, now=ledger.now())


def list_jobs(ledger: Any) -> list[JSON]:
    return JobStore(ledger).list(now=ledger.now()) if has_jobs(ledger) else []


def _logged(job_id: str, task: asyncio.Task[JSON]) -> None:
    """A background run that failed stays unfinished (resumable); say why in the log."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("job %s stopped: %s: %s", job_id, type(exc).__name__, exc)


def _commit(job_id: str, items: list[Item], created_by: str | None, ledger: Any) -> list[Item]:
    """One batch, one transaction; the new verdicts are recorded as submitted by the job's creator."""
    return JobStore(ledger).commit(job_id, items, submitted_by=created_by)


def _interrupted(ledger: Any, job_id: str) -> None:
    store = JobStore(ledger)
    if store.state(job_id)[0] == "running":
        store.event(job_id, "interrupted")


class RefreshedCollateral:
    """Intel collateral fetched now (never the cache), once per (FMSPC, CA) for this run; dcap-qvl verifies it to
    Intel's root on every use, and the evaluation keeps it in the new verdict's bundle."""

    def __init__(self, fetch: Callable[..., Coroutine[Any, Any, Collateral]] | None, *, kind: str = "refresh") -> None:
        self._fetch = fetch
        self.kind = kind  # "refresh", or "early" (Intel's early TCB update)
        self._got: dict[tuple[str, str], asyncio.Task[Collateral]] = {}

    async def get(self, *, fmspc: str, ca: str, now: int) -> Collateral:
        if self._fetch is None:
            raise UpstreamError(
                "collateral: refresh needs Intel PCS, and this verifier runs offline",
                reason="collateral_unavailable",
                details={"fmspc": fmspc, "ca": ca},
            )
        key = (fmspc.upper(), ca)
        if key not in self._got:
            self._got[key] = asyncio.ensure_future(self._fetch(fmspc=key[0], ca=ca))
        return await asyncio.shield(self._got[key])


@dataclass(frozen=True, slots=True)
class _Run:
    job_id: str
    policy: Policy
    at: int | None  # None: each verdict's capture time
    refresh: RefreshedCollateral | None
    processes: ProcessPoolExecutor | None = None  # worker processes for recorded evidence (``app.job_pool``)
    by_id: bool = False  # the workers read each verdict from the ledger themselves (``job_pool.reverify_stored``)


class Jobs:
    """The job service of one running verifier (HTTP and CLI): create, run, cancel, describe."""

    def __init__(self, services: Services) -> None:
        self._svc = services
        self._tasks: dict[str, asyncio.Task[JSON]] = {}

    # ------------------------------------------------------------------ create / control

    async def create(self, spec: JobSpec, *, created_by: str | None = None) -> JSON:
        """A queued job over the current selection (frozen now); ``JobSpecError`` for a policy or filter it cannot
        use."""
        svc = self._svc
        policy, text = self._policy(spec.policy)
        at = int(svc.clock()) if spec.at == "now" else None if spec.at == "captured" else int(spec.at)
        profile = svc.anchors.name

        def make(ledger: Any) -> str:
            store = JobStore(ledger)
            try:
                selection = store.select(trust_profile=profile, **spec.filter.query())
            except ValueError as exc:
                raise JobSpecError("filter.ids", str(exc)) from None
            return store.create(
                spec=spec.to_json(),
                selection=selection,
                policy_text=text,
                policy_id=policy.id,
                policy_sha256=policy.sha256,
                trust_profile=profile,
                at=at,
                collateral=spec.collateral,
                created_by=created_by,
            )

        job_id = await svc.recorder.write(make)
        return await self.get(job_id)

    def _policy(self, given: str | None) -> tuple[Policy, str | None]:
        own = self._svc.policy
        if given is None or given == own.id:
            return own, None
        try:
            return parse_policy(given.encode(), source="job policy"), given
        except ConfigError as exc:
            raise JobSpecError(
                "policy", f"policy: neither the service's policy id ({own.id!r}) nor a usable policy: {exc.message}"
            ) from None

    async def cancel(self, job_id: str) -> JSON:
        job = await self.get(job_id)
        if job["state"] not in ("done", "cancelled"):
            await self._svc.recorder.write(lambda ledger: JobStore(ledger).event(job_id, "cancelled"))
            task = self._tasks.get(job_id)
            if task is not None:
                task.cancel()
        return await self.get(job_id)

    async def _not_resumable(self, job_id: str) -> str | None:
        """Why the job cannot be resumed (done, cancelled, running), or None."""
        state, _, _ = await self._svc.recorder.read(lambda ledger: JobStore(ledger).state(job_id))
        live = job_id in self._tasks and not self._tasks[job_id].done()  # started here, about to write `running`
        if live or state not in ("queued", "interrupted"):
            return f"job {job_id} is {'running' if live else state}: only a queued or interrupted job can be resumed"
        return None

    async def resumable(self, job_id: str) -> bool:
        return await self._not_resumable(job_id) is None

    async def resume(self, job_id: str) -> JSON:
        """Run a stopped (queued or interrupted) job in the background from its last committed batch. ``JobError``
        when it cannot run here: done, cancelled, running, another trust profile or policy; ``UnknownJob``."""
        row = await self._svc.recorder.read(lambda ledger: JobStore(ledger).row(job_id))
        why = await self._not_resumable(job_id)
        if why is not None:
            raise JobError(why)
        self._prepare(row)  # refuses a job this verifier cannot run (profile, policy) before it is started
        self.start(job_id)
        return await self.get(job_id)

    def start(self, job_id: str) -> None:
        """Run the job in the background on this loop (the HTTP API); ``close`` stops it (it resumes later)."""
        if job_id not in self._tasks or self._tasks[job_id].done():
            task = asyncio.ensure_future(self.run(job_id))
            task.add_done_callback(partial(_logged, job_id))
            self._tasks[job_id] = task

    async def resume_unfinished(self) -> list[str]:
        """Start every queued or interrupted job of this trust profile (the service's startup)."""
        profile = self._svc.anchors.name

        def unfinished(ledger: Any) -> list[str]:
            if not has_jobs(ledger):
                return []
            store = JobStore(ledger)
            ids = [
                r[0] for r in ledger.db.execute("SELECT id FROM jobs WHERE trust_profile = ? ORDER BY id", [profile])
            ]
            return [i for i in ids if store.state(i)[0] in ("queued", "interrupted")]

        ids = await self._svc.recorder.read(unfinished)
        for job_id in ids:
            self.start(job_id)
        return ids

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ reads

    async def get(self, job_id: str) -> JSON:
        return await self._svc.recorder.read(lambda ledger: describe_job(ledger, job_id))

    async def list(self) -> list[JSON]:
        return await self._svc.recorder.read(list_jobs)

    # ------------------------------------------------------------------ run

    async def run(
        self,
        job_id: str,
        *,
        concurrency: int = 1,
        batch: int = BATCH,
        progress: Progress | None = None,
        processes: int = 0,
    ) -> JSON:
        """Process the job's remaining verdicts; returns the job. A cancelled or done job is returned as it is.
        ``processes`` > 0: recorded evidence is evaluated in that many worker processes (``app.job_pool``), and
        ``concurrency`` should be at least as many."""
        svc = self._svc
        row = await svc.recorder.read(lambda ledger: JobStore(ledger).row(job_id))
        job = await self.get(job_id)
        if job["state"] in ("done", "cancelled"):
            return job
        run = self._prepare(row)
        if processes > 0:
            # recorded evidence only, and a ledger the workers can open: then they read their items by id
            by_id = run.refresh is None and svc.recorder.path != ":memory:"
            stored = (
                StoredJob(
                    db_path=svc.recorder.path,
                    job_id=run.job_id,
                    policy=run.policy,
                    at=run.at,
                    retain_bodies=svc.settings.retain_bodies,
                )
                if by_id
                else None
            )
            pool = process_pool(
                processes,
                trust_profile=svc.anchors.name,
                refs_path=svc.settings.refs_path,
                dcap_timeout=svc.settings.dcap_timeout,
                stored=stored,
            )
            run = replace(run, processes=pool, by_id=by_id)
            try:  # two items in flight per worker process: one evaluating, one queued behind it
                return await self._run(run, concurrency=max(concurrency, 2 * processes), batch=batch, progress=progress)
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
        return await self._run(run, concurrency=concurrency, batch=batch, progress=progress)

    async def _run(self, run: _Run, *, concurrency: int, batch: int, progress: Progress | None) -> JSON:
        """Batch after batch: the next batch is evaluated while the previous one commits (on the writer thread), so
        the workers never wait for the ledger; a batch is committed whole or not at all (exactly once)."""
        svc, job_id = self._svc, run.job_id
        row = await svc.recorder.read(lambda ledger: JobStore(ledger).row(job_id))
        await svc.recorder.write(lambda ledger: JobStore(ledger).event(job_id, "running", owner=owner_tag()))
        pending = await svc.recorder.read(lambda ledger: JobStore(ledger).pending(job_id))
        gate = asyncio.Semaphore(max(1, concurrency))
        batches = [pending[i : i + max(1, batch)] for i in range(0, len(pending), max(1, batch))]

        async def one(verdict_id: str) -> Item:
            async with gate:
                return await self._item(run, verdict_id)

        async def evaluated(ids: list[str]) -> list[Item]:
            return list(await asyncio.gather(*(one(v) for v in ids)))

        async def commit(items: list[Item]) -> str:
            """Commit one batch; the job's state afterwards (a cancel is seen here)."""
            committed = await svc.recorder.write(partial(_commit, job_id, items, row["created_by"]))
            for item in committed:
                if item.new_verdict is not None:
                    svc.metrics.verdict(item.new_verdict)
            if progress is not None:
                job = await self.get(job_id)
                progress(job)
                return str(job["state"])
            # only the state (a cancel): describing the job reads every item, batch after batch
            return (await svc.recorder.read(lambda ledger: JobStore(ledger).state(job_id)))[0]

        ahead: asyncio.Future[list[Item]] | None = None  # the next batch, evaluating while this one commits
        try:
            for n, ids in enumerate(batches):
                items = await ahead if ahead is not None else await evaluated(ids)
                ahead = asyncio.ensure_future(evaluated(batches[n + 1])) if n + 1 < len(batches) else None
                if await commit(items) == "cancelled":
                    return await self.get(job_id)  # the batch evaluated ahead is dropped (below), never committed
        except asyncio.CancelledError:  # stopped (service shutdown): resumable; a job cancelled meanwhile stays so
            await asyncio.shield(svc.recorder.write(lambda ledger: _interrupted(ledger, job_id)))
            raise
        finally:
            if ahead is not None:  # a batch evaluated ahead and not committed: dropped (its items stay pending)
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)
        await svc.recorder.write(lambda ledger: JobStore(ledger).event(job_id, "done"))
        return await self.get(job_id)

    def _prepare(self, row: JSON) -> _Run:
        svc = self._svc
        if row["trust_profile"] != svc.anchors.name:
            raise JobError(
                f"job {row['id']} re-verifies {row['trust_profile']} verdicts; this verifier trusts {svc.anchors.name}"
            )
        if row["policy_text"] is not None:
            policy = parse_policy(row["policy_text"].encode(), source=f"job {row['id']} policy")
        elif svc.policy.sha256 == row["policy_sha256"]:
            policy = svc.policy
        else:
            raise JobError(
                f"job {row['id']} appraises with policy {row['policy_id']} (sha256 {row['policy_sha256'][:12]}…), "
                f"and this verifier's policy is {svc.policy.id} (sha256 {svc.policy.sha256[:12]}…)"
            )
        refresh = None
        if row["collateral"] in ("refresh", "early"):
            fetcher = None if svc.settings.offline else svc.collateral.fetcher
            fetch = None if fetcher is None else partial(fetcher.fetch, early=row["collateral"] == "early")
            refresh = RefreshedCollateral(fetch, kind=row["collateral"])
        return _Run(job_id=row["id"], policy=policy, at=row["at"], refresh=refresh)

    async def _item(self, run: _Run, verdict_id: str) -> Item:
        svc = self._svc
        if run.processes is not None and run.by_id:
            return await asyncio.get_running_loop().run_in_executor(run.processes, reverify_stored, verdict_id)
        try:
            old = await svc.recorder.get(verdict_id)
            bundle = await svc.recorder.bundle(verdict_id)
            if old is None or bundle is None:
                raise UnknownJob(f"verdict {verdict_id} vanished from the ledger")
        except (VerifierError, LookupError) as exc:
            return Item(verdict_id, "indeterminate", None, error=str(exc)[:500])
        captured_at = captured_time(old)
        job_at = captured_at if run.at is None else run.at
        captured = await self._evaluate(bundle, run, captured_at, old, refresh=False)
        now = captured
        if run.refresh is not None or job_at != captured_at:
            now = await self._evaluate(bundle, run, job_at, old, refresh=run.refresh is not None)
        return superseding_item(
            job_id=run.job_id,
            verdict_id=verdict_id,
            old=old,
            captured=captured,
            now=now,
            captured_at=captured_at,
            job_at=job_at,
            collateral=run.refresh.kind if run.refresh is not None else "recorded",
            retain_bodies=svc.settings.retain_bodies,
        )

    async def _evaluate(self, bundle: Bundle, run: _Run, at: int, old: JSON, *, refresh: bool) -> tuple[JSON, Bundle]:
        """(verdict JSON, kept bundle): in a worker process when the run has them, else on the engine's thread. It
        supersedes ``old``; observer checks (tls.binds_peer) are never upgraded over ``old``'s."""
        svc, supersedes, prior = self._svc, old["id"], prior_checks(old)
        if run.processes is not None and not refresh:
            loop = asyncio.get_running_loop()
            verdict, files = await loop.run_in_executor(
                run.processes, evaluate_files, bundle.files(), run.policy, at, supersedes, prior
            )
            return verdict, Bundle.from_files(files)
        ctx: Context = replace(svc.offline_context(now=at), policy=run.policy)
        if refresh and run.refresh is not None:
            ctx = replace(ctx, collateral=run.refresh)
            bundle = replace(bundle, collateral={})  # the quote stage fetches (through ``run.refresh``) and keeps it
        offloader = svc.offloader
        if offloader is None:
            evaluation = await evaluate(bundle, ctx, supersedes=supersedes, prior=prior)
        else:
            home = asyncio.get_running_loop()
            evaluation = await offloader.run(evaluate, bundle, bridge(ctx, home), supersedes=supersedes, prior=prior)
        return evaluation.verdict.to_json(), evaluation.bundle
