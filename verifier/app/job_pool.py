"""Evaluation in worker processes for batch jobs: each process has its own event loop, dcap-qvl worker and memo,
so a job uses every core; the main process only streams bundles to them and commits the results in batches.

Only recorded evidence is evaluated here (a job that refreshes collateral fetches through the main process's
client). Workers start with ``spawn`` (no fork of a threaded process); a worker's dcap pool is closed when it exits.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.util
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from verifier.adapters.dcap.pool import DcapPool
from verifier.app.profiles import anchors_for, refs_for
from verifier.appraise.policy import Policy
from verifier.core.model import CheckResult
from verifier.engine.context import Context
from verifier.engine.evaluate import evaluate
from verifier.evidence.bundle import Bundle
from verifier.verify.memo import VerificationMemo

JSON = dict[str, Any]
_WORKER: dict[str, Any] = {}  # this worker process's loop, dcap pool, anchors, refs and memo


def process_pool(
    processes: int, *, trust_profile: str, refs_path: str | None, dcap_timeout: float
) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start,
        initargs=(trust_profile, refs_path, dcap_timeout),
    )


def _start(trust_profile: str, refs_path: str | None, dcap_timeout: float) -> None:
    loop = asyncio.new_event_loop()
    pool = DcapPool(size=1, timeout=dcap_timeout)
    loop.run_until_complete(pool.__aenter__())

    def stop() -> None:
        loop.run_until_complete(pool.__aexit__(None, None, None))
        loop.close()

    multiprocessing.util.Finalize(None, stop, exitpriority=10)  # run by multiprocessing when the worker exits
    _WORKER.update(
        loop=loop,
        pool=pool,
        anchors=anchors_for(trust_profile),
        refs=refs_for(trust_profile, refs_path),
        memo=VerificationMemo(),
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
    )
    evaluation = w["loop"].run_until_complete(
        evaluate(Bundle.from_files(files), ctx, supersedes=supersedes, prior=prior)
    )
    return evaluation.verdict.to_json(), evaluation.bundle.files()
