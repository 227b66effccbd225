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
import os
import pickle
import signal
import socket
import struct
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from verifier.adapters.collateral_cache import CollateralCache, CollateralStore, SqliteCollateralStore
from verifier.adapters.dcap.pool import DcapPool
from verifier.adapters.gateway import CallBudget, GatewayClient, Retry
from verifier.adapters.ledger import Ledger
from verifier.adapters.nras_client import NrasClient
from verifier.adapters.pcs import PcsClient
from verifier.adapters.recorder import prior_from
from verifier.adapters.transport import redactor
from verifier.app.limits import Limited
from verifier.app.profiles import anchors_for
from verifier.app.settings import Settings
from verifier.appraise.policy import Policy
from verifier.appraise.refs import Refs
from verifier.core.errors import Indeterminate, VerifierError
from verifier.engine.context import Context
from verifier.engine.pipeline import Exchange, PriorAttestation, verify_exchange
from verifier.evidence.bundle import Bundle
from verifier.verify.memo import VerificationMemo

log = logging.getLogger("verifier.verify_pool")
JSON = dict[str, Any]
MAX_FRAME = 1 << 30  # a job carries at most 8 MiB of request and 64 MiB of response; a result its bundle
_HEADER = struct.Struct("!Q")
_JOB_ID = struct.Struct("!Q")
START_TIMEOUT = 120.0  # seconds a worker may take to import, start its dcap pool and say it is ready
RESTART_DELAY = 1.0  # seconds between replacing workers that keep dying


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    settings: Settings
    policy: Policy
    refs: Refs | None
    dcap_workers: int
    nice: int


# ------------------------------------------------------------------ framing (both sides)


def _frame(message: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    if size > MAX_FRAME:
        raise ConnectionError(f"frame of {size} bytes")
    message = pickle.loads(await reader.readexactly(size))  # noqa: S301 - only ever from our own spawned process
    if not isinstance(message, tuple) or not message:
        raise ConnectionError("malformed frame")
    return message


# ------------------------------------------------------------------ the calling (relay) process


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
                worker.writer.write(_frame(("close",)))
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
            worker.writer.write(_frame(("job", jid, exchange, api_key, now, calls is not None, reserve is not None)))
            await worker.writer.drain()
        except (ConnectionError, RuntimeError):
            self._died(worker, "its channel broke")
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            if worker.jobs.pop(jid, None) is not None and worker.alive:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    worker.writer.write(_frame(("cancel", jid)))
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
                message = await _read_frame(reader)
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
            worker.writer.write(_frame(reply))

    async def _budget(self, worker: _Worker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The worker's synchronous ``CallBudget.take()``: one job id in, one byte out (1 = call, 0 = do not)."""
        try:
            while True:
                (jid,) = _JOB_ID.unpack(await reader.readexactly(_JOB_ID.size))
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


# ------------------------------------------------------------------ the worker process


def worker_main(channel: socket.socket, budget: socket.socket, config: WorkerConfig) -> None:
    """A verifier worker's entry point (spawned): lower the priority, then serve jobs until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes the pool
    if config.nice:
        os.nice(config.nice)
    from verifier.app.logs import configure_json_logging

    configure_json_logging(logging.WARNING)  # one JSON object per line on the inherited stderr, like the parent
    asyncio.run(_serve(channel, budget, config))


class _Budget:
    """``CallBudget`` answered by the parent's budget: a blocking round trip on a channel of its own (only for
    calls beyond the first; ≈0.1 ms), so the worker never spends more than the parent's bucket allows."""

    def __init__(self, sock: socket.socket, jid: int) -> None:
        self._sock, self._jid = sock, jid

    def take(self) -> bool:
        try:
            self._sock.sendall(_JOB_ID.pack(self._jid))
            return self._sock.recv(1) == b"1"
        except OSError:
            return False


class _Rpc:
    """Calls back to the parent over the job channel, answered by ``("reply", rid, error)`` frames."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}

    async def call(self, jid: int, op: str, arg: Any) -> None:
        rid = next(self._ids)
        future = self._waiting[rid] = asyncio.get_running_loop().create_future()
        try:
            self._writer.write(_frame(("call", rid, jid, op, arg)))
            await self._writer.drain()
            error = await future
        finally:
            self._waiting.pop(rid, None)
        if error is None:
            return
        if error[0] == "limited":
            raise Limited(*error[1:5])
        raise RuntimeError(f"the parent could not {op}: {error[1]}")

    def answered(self, rid: int, error: Any) -> None:
        future = self._waiting.get(rid)
        if future is not None and not future.done():
            future.set_result(error)

    def broken(self) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the parent process went away"))


class _ParentCollateralStore:
    """The collateral cache table: read on this worker's read-only ledger connection, written by the parent."""

    def __init__(self, ledger: _LedgerReader, rpc: _Rpc) -> None:
        self._reads, self._rpc = SqliteCollateralStore(ledger.run_db, ledger.run_db), rpc

    async def load(self, fmspc: str, ca: str) -> str | None:
        return await self._reads.load(fmspc, ca)

    async def save(self, row: dict[str, Any]) -> None:
        await self._rpc.call(0, "collateral_save", row)


class _LedgerReader:
    """One read-only ledger connection on one thread: the reuse index (``PriorAttestations``) and the collateral
    cache's reads. A reuse source is cached by verdict id (ledger rows are append-only)."""

    def __init__(self, path: str, *, trust_profile: str, busy_timeout_ms: int) -> None:
        self._path, self._trust, self._busy = path, trust_profile, busy_timeout_ms
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-reader")
        self._ledger: Ledger | None = None
        self._priors: OrderedDict[str, PriorAttestation | None] = OrderedDict()

    def _db(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger.open_readonly(self._path, busy_timeout_ms=self._busy)
        return self._ledger

    async def run_db(self, fn: Callable[[Any], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, lambda: fn(self._db().db))

    async def find(
        self, *, signer: str, signing_algo: str, model: str, gateway: str, now: int, max_age: int
    ) -> PriorAttestation | None:
        def lookup() -> PriorAttestation | None:
            ledger = self._db()
            row = ledger.find_reusable_attestation(
                signer=signer,
                signing_algo=signing_algo,
                model=model,
                gateway=gateway,
                now=now,
                max_age=max_age,
                trust_profile=self._trust,
            )
            if row is None:
                return None
            verdict_id = str(row["verdict_id"])
            if verdict_id in self._priors:
                self._priors.move_to_end(verdict_id)
                return self._priors[verdict_id]
            try:
                bundle: Bundle | None = Bundle.from_files(ledger.evidence(verdict_id))
            except KeyError:
                bundle = None
            found = self._priors[verdict_id] = prior_from(row, bundle)
            while len(self._priors) > 64:
                self._priors.popitem(last=False)
            return found

        return await asyncio.get_running_loop().run_in_executor(self._thread, lookup)

    def close(self) -> None:
        def shut() -> None:
            if self._ledger is not None:
                self._ledger.close()

        with contextlib.suppress(Exception):
            self._thread.submit(shut).result(5)
        self._thread.shutdown(wait=False)


async def _serve(channel: socket.socket, budget: socket.socket, config: WorkerConfig) -> None:
    from verifier.app.records import shaped

    s = config.settings
    reader, writer = await asyncio.open_unix_connection(sock=channel)
    budget.setblocking(True)
    budget.settimeout(30.0)
    rpc = _Rpc(writer)
    anchors = anchors_for(s.trust_profile)
    ledger = _LedgerReader(s.db_path, trust_profile=anchors.name, busy_timeout_ms=int(s.db_busy_timeout * 1000))
    cpu = ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify-cpu")
    memo = VerificationMemo()
    timeout = aiohttp.ClientTimeout(total=s.upstream_timeout, connect=min(10.0, s.upstream_timeout))
    tasks: dict[int, asyncio.Task[None]] = {}
    async with (
        aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": "attestation-verifier"}) as session,
        DcapPool(size=config.dcap_workers, timeout=s.dcap_timeout) as pool,
    ):
        fetcher = PcsClient(
            session, s.pcs_url, pccs=s.pccs, timeout=s.upstream_timeout, root_ca_crl_url=s.root_ca_crl_url
        )
        collateral = CollateralCache(_ParentCollateralStore(ledger, rpc), fetcher, offline=s.offline)
        nras = None if s.offline else NrasClient(session, s.nras_url, timeout=s.upstream_timeout)

        async def job(jid: int, exchange: Exchange, api_key: str | None, now: int, budgeted: bool, admit: bool) -> None:
            redact = redactor((api_key,) if api_key else ())
            message: tuple[Any, ...]
            try:
                gateway = GatewayClient(
                    session,
                    exchange.gateway,
                    api_key=api_key,
                    timeout=s.upstream_timeout,
                    retry=Retry(deadline=s.signature_deadline),
                    calls=_Budget(budget, jid) if budgeted else None,
                    reserve=(lambda n: rpc.call(jid, "reserve", n)) if admit else None,
                )
                ctx = Context(
                    policy=config.policy,
                    now=now,
                    anchors=anchors,
                    quotes=pool,
                    collateral=collateral,
                    nras=nras,
                    dcap_version=pool.version(),
                    refs=config.refs,
                    cpu=cpu,
                    memo=memo,
                )
                evaluation = await verify_exchange(exchange, gateway=gateway, ctx=ctx, prior=ledger)
                verdict, bundle = shaped(
                    evaluation, secrets=(api_key,) if api_key else (), retain_bodies=s.retain_bodies
                )
                message = ("done", jid, verdict, bundle)
            except VerifierError as exc:
                message = ("verifier_error", jid, exc.reason, redact(exc.message))
            except Limited as exc:
                message = ("limited", jid, exc.status, exc.code, redact(exc.message), exc.retry_after)
            except asyncio.CancelledError:
                return
            except Exception as exc:  # a bug: named by class only (its text could quote evidence or the key)
                log.error("verification job %d failed unexpectedly: %s", jid, type(exc).__name__)
                message = ("internal", jid, type(exc).__name__)
            finally:
                tasks.pop(jid, None)
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.write(_frame(message))
                await writer.drain()

        writer.write(_frame(("ready", os.getpid())))
        await writer.drain()
        try:
            while True:
                try:
                    message = await _read_frame(reader)
                except (asyncio.IncompleteReadError, ConnectionError, OSError):
                    break  # the parent went away
                kind = message[0]
                if kind == "job":
                    jid = message[1]
                    tasks[jid] = asyncio.get_running_loop().create_task(job(*message[1:7]))
                elif kind == "reply":
                    rpc.answered(message[1], message[2])
                elif kind == "cancel":
                    running = tasks.get(message[1])
                    if running is not None:
                        running.cancel()
                elif kind == "close":
                    break
        finally:
            rpc.broken()
            for running in list(tasks.values()):
                running.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            writer.close()
            ledger.close()
            cpu.shutdown(wait=False)
