"""Evaluation in worker processes for batch jobs: each process has its own event loop, dcap-qvl worker and memo,
so a job uses every core; the main process only streams work to them and commits the results in batches through
the ledger's single writer.

With a ledger on disk a worker opens it read-only and reads its own items by id (``reverify_stored``): only verdict
ids go out, and the new verdict with the evidence that is new (none, for recorded collateral) comes back; evidence
it kept unchanged is named by sha256. Otherwise (an in-memory ledger, or the captured clock of a job that refreshes
collateral) the main process sends the bundle's files (``evaluate_files``). Only recorded evidence is evaluated here
(a job that refreshes collateral fetches through the main process's client). Workers start with ``spawn`` (no fork
of a threaded process); a worker's dcap pool and ledger are closed when it exits.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.util
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from verifier.adapters.dcap.pool import DcapPool
from verifier.adapters.ledger import Ledger
from verifier.adapters.ledger.jobs import Item
from verifier.app.job_item import captured_time, superseding_item
from verifier.app.profiles import anchors_for, refs_for
from verifier.appraise.policy import Policy
from verifier.core.errors import VerifierError
from verifier.core.model import CheckResult
from verifier.engine.ceiling import prior_checks
from verifier.engine.context import Context
from verifier.engine.evaluate import evaluate
from verifier.evidence.bundle import Bundle
from verifier.verify.memo import VerificationMemo

JSON = dict[str, Any]
T = TypeVar("T")
_WORKER: dict[str, Any] = {}  # this worker process's loop, dcap pool, anchors, refs, memo, ledger and job


@dataclass(frozen=True, slots=True)
class StoredJob:
    """What a worker needs to re-verify recorded verdicts by id on its own: the ledger's path and the job's terms."""

    db_path: str
    job_id: str
    policy: Policy
    at: int | None  # None: each verdict's capture time
    retain_bodies: str


class InlineExecutor(Executor):
    """Runs each call at once on the caller's thread. For a job worker process: its loop serves one evaluation at a
    time and nothing else, so handing the CPU work (SPDM, NRAS, the signature) to a thread would only add hand-offs;
    the process pool is what uses the cores."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered to the awaiting caller, as a thread pool does
            future.set_exception(exc)
        return future


def process_pool(
    processes: int, *, trust_profile: str, refs_path: str | None, dcap_timeout: float, stored: StoredJob | None = None
) -> ProcessPoolExecutor:
    """``stored``: the workers may read the job's verdicts from the ledger themselves (``reverify_stored``)."""
    return ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start,
        initargs=(trust_profile, refs_path, dcap_timeout, stored),
    )


def _start(trust_profile: str, refs_path: str | None, dcap_timeout: float, stored: StoredJob | None = None) -> None:
    loop = asyncio.new_event_loop()
    pool = DcapPool(size=1, timeout=dcap_timeout)
    loop.run_until_complete(pool.__aenter__())
    ledger = Ledger.open_readonly(stored.db_path) if stored is not None else None

    def stop() -> None:
        if ledger is not None:
            ledger.close()
        loop.run_until_complete(pool.__aexit__(None, None, None))
        loop.close()

    multiprocessing.util.Finalize(None, stop, exitpriority=10)  # run by multiprocessing when the worker exits
    _WORKER.update(
        loop=loop,
        pool=pool,
        anchors=anchors_for(trust_profile),
        refs=refs_for(trust_profile, refs_path),
        memo=VerificationMemo(),
        cpu=InlineExecutor(),
        ledger=ledger,
        job=stored,
    )


def evaluate_files(
    files: dict[str, bytes],
    policy: Policy,
    at: int,
    supersedes: str,
    prior: dict[str, CheckResult] | None = None,
) -> tuple[JSON, dict[str, bytes]]:
    """(verdict JSON, kept bundle files) of one recorded bundle evaluated at ``at`` in this worker process;
    ``prior``: the superseded verdict's check rows (observer checks are never upgraded over them)."""
    verdict, kept = _evaluate(Bundle.from_files(files), policy, at, supersedes, prior)
    return verdict, kept.files()


def reverify_stored(verdict_id: str) -> Item:
    """The job item of one recorded verdict, read by id from the ledger (every evidence file checked against its
    sha256) and re-verified in this worker process under the pool's ``StoredJob``. A verdict that cannot be read is
    an item with an error (``indeterminate``), as in the main process."""
    ledger: Ledger = _WORKER["ledger"]
    job: StoredJob = _WORKER["job"]
    try:
        old = ledger.get(verdict_id)
        stored = ledger.evidence_with_digests(verdict_id)
        if old is None:
            raise KeyError(verdict_id)
        bundle = Bundle.from_files({name: data for name, (_, data) in stored.items()})
    except KeyError:
        return Item(verdict_id, "indeterminate", None, error=f"verdict {verdict_id} vanished from the ledger")
    except VerifierError as exc:
        return Item(verdict_id, "indeterminate", None, error=str(exc)[:500])
    captured_at = captured_time(old)
    job_at = captured_at if job.at is None else job.at
    prior = prior_checks(old)  # observer checks (tls.binds_peer) are never upgraded over the old verdict's
    captured = _evaluate(bundle, job.policy, captured_at, verdict_id, prior)
    now = captured if job_at == captured_at else _evaluate(bundle, job.policy, job_at, verdict_id, prior)
    return superseding_item(
        job_id=job.job_id,
        verdict_id=verdict_id,
        old=old,
        captured=captured,
        now=now,
        captured_at=captured_at,
        job_at=job_at,
        collateral="recorded",
        retain_bodies=job.retain_bodies,
        stored=stored,
    )


def _evaluate(
    bundle: Bundle, policy: Policy, at: int, supersedes: str, prior: dict[str, CheckResult] | None
) -> tuple[JSON, Bundle]:
    w = _WORKER
    pool: DcapPool = w["pool"]
    ctx = Context(
        policy=policy,
        now=at,
        anchors=w["anchors"],
        quotes=pool,
        dcap_version=pool.version(),
        refs=w["refs"],
        memo=w["memo"],
        cpu=w["cpu"],
    )
    evaluation = w["loop"].run_until_complete(evaluate(bundle, ctx, supersedes=supersedes, prior=prior))
    return evaluation.verdict.to_json(), evaluation.bundle
