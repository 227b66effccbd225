"""Online verification in worker processes: the proxy relays, the workers verify, the proxy commits.

``VerifierPool(workers=N)`` starts N processes (multiprocessing ``spawn``: no fork of a threaded process). Each
runs its own event loop with its own services: an aiohttp session (gateway signature and report calls, Intel
PCS / PCCS, NRAS), a dcap-qvl pool, a verification memo, a read-only connection to the ledger (the attestation
reuse index and the collateral cache are read there) — and lowers its CPU priority first (``os.nice``; its
dcap-qvl workers inherit it), so the relaying process always preempts verification.

``verify(exchange, api_key=, now=, calls=, reserve=)`` hands one captured exchange to the least-loaded worker
and returns the ``shaped`` verdict JSON and bundle (``app.records``), which the caller commits through its one
ledger writer: workers never write the ledger. Many verifications run concurrently in each worker, as they do
in-process. What stays in the calling process: the per-gateway call budget (a worker asks for each call on a
small synchronous channel, so signature retries spend exactly what they would in-process), the in-flight byte
admission (each upstream answer's size is reserved by a call back), the collateral cache's writes and the commit.

The gateway key travels only inside a job frame over a socketpair between the two processes: never in a command
line, an environment variable, a file, or anything multiprocessing pickles or logs; a worker's errors are sent
back as a class name, a reason code and a redacted message, and its log lines never carry exception text of a
verification. Frames are pickles, exchanged only between this process and the workers it spawned.

A worker that dies (killed, crashed) fails exactly the verifications it was running, each as
``Indeterminate`` ``verifier_worker_died`` (never retried elsewhere: a poison input must not kill every worker),
and is replaced; the other workers carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from verifier.adapters.collateral_cache import CollateralStore
from verifier.adapters.gateway import CallBudget
from verifier.app.limits import Limited
from verifier.app.settings import Settings
from verifier.app.verify_worker import worker_main
from verifier.app.worker_channel import JOB_ID, WorkerConfig, frame, read_frame
from verifier.appraise.policy import Policy
from verifier.appraise.refs import Refs
from verifier.core.errors import Indeterminate, VerifierError
from verifier.engine.pipeline import Exchange
from verifier.evidence.bundle import Bundle

log = logging.getLogger("verifier.verify_pool")
JSON = dict[str, Any]
START_TIMEOUT = 120.0  # seconds a worker may take to import, start its dcap pool and say it is ready
RESTART_DELAY = 1.0  # seconds between replacing workers that keep dying


@dataclass(slots=True)
class _Job:
    future: asyncio.Future[tuple[JSON, Bundle]]
    calls: CallBudget | None
    reserve: Callable[[int], Awaitable[None]] | None


@dataclass(slots=True)
class _Worker:
    index: int
    process: Any  # multiprocessing.Process (spawn context)
    writer: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    jobs: dict[int, _Job] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    alive: bool = True

    @property
    def pid(self) -> int | None:
        pid: int | None = self.process.pid
        return pid


class VerifierPool:
    """``workers`` verifier processes at niceness ``nice`` (0: the caller's priority)."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        refs: Refs | None,
        *,
        workers: int,
        nice: int = 10,
        collateral_store: CollateralStore | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        if workers < 1:
            raise ValueError("VerifierPool needs at least one worker")
        if settings.db_path == ":memory:":
            raise ValueError("verifier workers read the ledger's reuse index: they need a ledger file, not :memory:")
        self.size = workers
        self._config = WorkerConfig(
            settings=settings,
            policy=policy,
            refs=refs,
            dcap_workers=max(1, settings.dcap_workers // workers),
            nice=max(0, min(19, nice)),
        )
        self._store = collateral_store
        self._start_timeout = start_timeout
        self._workers: list[_Worker | None] = [None] * workers
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._closing = False
        self._restarts: set[asyncio.Task[None]] = set()
        self.restarts = 0  # workers replaced after they died
        self.completed = 0  # verifications a worker answered with a verdict

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start every worker and wait until each is ready; on failure, stop the ones that did start and raise."""
        results = await asyncio.gather(*(self._spawn(i) for i in range(self.size)), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await self.close()
            raise failed[0]

    async def _spawn(self, index: int) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        parent, child = socket.socketpair()
        parent_budget, child_budget = socket.socketpair()
        process = ctx.Process(
            target=worker_main,
            args=(child, child_budget, self._config),
            name=f"verifier-worker-{index}",
            daemon=True,
        )
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, process.start)  # spawn pickles the config; it holds no key
        finally:
            child.close()
            child_budget.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent)
        budget_reader, budget_writer = await asyncio.open_unix_connection(sock=parent_budget)
        worker = _Worker(index, process, writer)
        worker.tasks = [
            loop.create_task(self._read(worker, reader), name=f"verifier-worker-{index} reader"),
            loop.create_task(
                self._budget(worker, budget_reader, budget_writer), name=f"verifier-worker-{index} budget"
            ),
        ]
        self._workers[index] = worker
        waits = [loop.create_task(worker.ready.wait()), loop.create_task(worker.ended.wait())]
        await asyncio.wait(waits, timeout=self._start_timeout, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        if not worker.ready.is_set() or not worker.alive:
            worker.alive = False  # never ready: nothing to fail, nothing to replace (the caller decides)
            worker.ended.set()
            if process.is_alive():
                process.kill()
            for task in worker.tasks:
                task.cancel()
            writer.close()
            raise Indeterminate(
                f"verifier worker {index} did not start within {self._start_timeout} s (exit code {process.exitcode})",
                reason="verifier_worker_unavailable",
            )
        self._changed.set()

    async def close(self) -> None:
        """Stop every worker (the caller has let running verifications finish first)."""
        self._closing = True
        for task in list(self._restarts):
            task.cancel()
        workers = [w for w in self._workers if w is not None]
        for worker in workers:
            with contextlib.suppress(ConnectionError, RuntimeError):
                worker.writer.write(frame(("close",)))
                await worker.writer.drain()
        loop = asyncio.get_running_loop()
        for worker in workers:
            await loop.run_in_executor(None, worker.process.join, 15)
            if worker.process.is_alive():
                worker.process.kill()
                await loop.run_in_executor(None, worker.process.join, 5)
            self._died(worker, "closed")
            for task in worker.tasks:
                task.cancel()
            await asyncio.gather(*worker.tasks, return_exceptions=True)
            worker.writer.close()

    def pids(self) -> list[int]:
        """The worker processes' ids (live ones)."""
        return [w.pid for w in self._workers if w is not None and w.alive and w.pid is not None]

    def in_flight(self) -> int:
        return sum(len(w.jobs) for w in self._workers if w is not None)

    # -------------------------------------------------------------- verification

    async def verify(
        self,
        exchange: Exchange,
        *,
        api_key: str | None,
        now: int,
        calls: CallBudget | None = None,
        reserve: Callable[[int], Awaitable[None]] | None = None,
    ) -> tuple[JSON, Bundle]:
        """(shaped verdict JSON, bundle) of one exchange verified at ``now`` by a worker; ``Indeterminate``
        ``verifier_worker_died`` if its worker dies meanwhile; ``Limited`` and ``VerifierError`` as in-process."""
        worker = await self._pick()
        jid = next(self._ids)
        job = _Job(asyncio.get_running_loop().create_future(), calls, reserve)
        worker.jobs[jid] = job
        try:
            worker.writer.write(frame(("job", jid, exchange, api_key, now, calls is not None, reserve is not None)))
            await worker.writer.drain()
        except (ConnectionError, RuntimeError):
            self._died(worker, "its channel broke")
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            if worker.jobs.pop(jid, None) is not None and worker.alive:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    worker.writer.write(frame(("cancel", jid)))
            raise
        finally:
            worker.jobs.pop(jid, None)

    async def _pick(self) -> _Worker:
        """The live worker with the fewest verifications; waits (bounded) while every worker is being replaced."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout
        while True:
            live = [w for w in self._workers if w is not None and w.alive and w.ready.is_set()]
            if live:
                return min(live, key=lambda w: len(w.jobs))
            left = deadline - loop.time()
            if self._closing or left <= 0:
                raise Indeterminate("no verifier worker process is running", reason="verifier_worker_unavailable")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def _read(self, worker: _Worker, reader: asyncio.StreamReader) -> None:
        why = "its channel closed"
        try:
            while True:
                message = await read_frame(reader)
                kind = message[0]
                if kind == "ready":
                    worker.ready.set()
                    continue
                if kind == "call":
                    _, rid, jid, op, arg = message
                    asyncio.get_running_loop().create_task(self._answer(worker, rid, worker.jobs.get(jid), op, arg))
                    continue
                job = worker.jobs.get(message[1])
                if job is None or job.future.done():
                    continue  # cancelled meanwhile
                if kind == "done":
                    self.completed += 1
                    job.future.set_result((message[2], message[3]))
                elif kind == "verifier_error":
                    job.future.set_exception(VerifierError(message[3], reason=message[2]))
                elif kind == "limited":
                    job.future.set_exception(Limited(*message[2:6]))
                else:
                    job.future.set_exception(
                        Indeterminate(
                            f"the verifier worker failed unexpectedly ({message[2]})", reason="verifier_worker_error"
                        )
                    )
        except (asyncio.IncompleteReadError, ConnectionError, OSError, pickle.UnpicklingError, ValueError) as exc:
            why = "its channel closed" if isinstance(exc, asyncio.IncompleteReadError) else type(exc).__name__
        except asyncio.CancelledError:
            raise
        self._died(worker, why)

    async def _answer(self, worker: _Worker, rid: int, job: _Job | None, op: str, arg: Any) -> None:
        """A worker's call back: reserve bytes under the caller's admission, or save collateral to the cache."""
        reply: tuple[Any, ...]
        try:
            if op == "reserve" and job is not None and job.reserve is not None:
                await job.reserve(int(arg))
            elif op == "collateral_save" and self._store is not None:
                await self._store.save(arg)
            reply = ("reply", rid, None)
        except Limited as exc:
            reply = ("reply", rid, ("limited", exc.status, exc.code, exc.message, exc.retry_after))
        except Exception as exc:  # a cache write that failed: the worker logs and carries on, as in-process
            reply = ("reply", rid, ("error", type(exc).__name__))
        with contextlib.suppress(ConnectionError, RuntimeError):
            worker.writer.write(frame(reply))

    async def _budget(self, worker: _Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The worker's synchronous ``CallBudget.take()``: one job id in, one byte out (1 = call, 0 = do not)."""
        try:
            while True:
                (jid,) = JOB_ID.unpack(await reader.readexactly(JOB_ID.size))
                job = worker.jobs.get(jid)
                ok = job is not None and (job.calls is None or job.calls.take())
                writer.write(b"1" if ok else b"0")
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def _died(self, worker: _Worker, why: str) -> None:
        if not worker.alive:
            return
        worker.alive = False
        worker.ended.set()
        if not worker.ready.is_set():
            return  # died while starting: ``_spawn`` reports it
        code = worker.process.exitcode
        jobs, worker.jobs = worker.jobs, {}
        for job in jobs.values():
            if not job.future.done():
                job.future.set_exception(
                    Indeterminate(
                        f"the verifier worker process (pid {worker.pid}) ended during this verification ({why}"
                        + (f", exit code {code}" if code is not None else "")
                        + "); it was not retried",
                        reason="verifier_worker_died",
                    )
                )
        if self._closing:
            return
        log.warning(
            "verifier worker %d (pid %s) ended (%s); %d verification(s) failed as verifier_worker_died; replacing it",
            worker.index,
            worker.pid,
            why,
            len(jobs),
        )
        task = asyncio.get_running_loop().create_task(self._replace(worker))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _replace(self, worker: _Worker) -> None:
        with contextlib.suppress(Exception):
            worker.writer.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, worker.process.join, 5)
        if worker.process.is_alive():
            worker.process.kill()
        while not self._closing:
            self.restarts += 1
            try:
                await self._spawn(worker.index)
                return
            except Indeterminate:
                await asyncio.sleep(RESTART_DELAY)
