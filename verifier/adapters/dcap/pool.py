"""A pool of long-lived dcap-qvl worker processes (``verifier.adapters.dcap.worker``) behind ``QuoteVerifier``.

The service never imports dcap_qvl (an import-linter contract): a native crash kills only a
worker, and verify() (≈1 ms, holds the GIL) does not block the event loop (reference
docs/dcap.md §0.3-0.4, §2). Each worker answers one JSON line per request line.
Any doubt about a worker's answer (timeout, EOF, garbage, wrong id) is Indeterminate, never a pass;
the worker is killed and replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import sys
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from verifier.adapters.dcap.errors import reason_for
from verifier.core.errors import CheckFailed, Indeterminate
from verifier.core.ports import DcapResult

log = logging.getLogger(__name__)

_LINE_LIMIT = 32 * 1024 * 1024  # StreamReader limit: an answer carries the claims JSON (~5 KB) but be generous
_GRACE = 2.0  # seconds a worker gets to exit after its stdin is closed
_PROTOCOL_ERRORS = ("bad request:", "worker error:")  # the worker's own faults, not the evidence's


class _WorkerFault(Exception):
    """The worker misbehaved: it is killed and replaced."""


async def _log_stderr(proc: asyncio.subprocess.Process) -> None:
    """Forward a worker's stderr to the log (a traceback there explains a crash); ends at EOF."""
    assert proc.stderr is not None
    with contextlib.suppress(Exception):
        while line := await proc.stderr.readline():
            log.warning("dcap worker %d: %s", proc.pid, line.decode(errors="replace").rstrip()[:1000])


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process, version: str | None) -> None:
        self.proc = proc
        self.version = version
        self.stderr_task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.proc.returncode is None


class _Slots:
    """FIFO hand-off of idle slots (a worker, or None for an empty slot). Not an asyncio.Queue: with
    one, a caller that just gave a worker back takes it straight back and starves the waiters."""

    def __init__(self) -> None:
        self._idle: deque[_Worker | None] = deque()
        self._waiters: deque[asyncio.Future[_Worker | None]] = deque()

    async def take(self) -> _Worker | None:
        if self._idle and not self._waiters:
            return self._idle.popleft()
        fut: asyncio.Future[_Worker | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.give(fut.result())  # handed over just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def give(self, slot: _Worker | None) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(slot)
                return
        self._idle.append(slot)


class DcapPool:
    """``size`` workers; ``verify`` takes an idle one. An empty slot (``None``) is refilled on use."""

    def __init__(
        self,
        size: int = os.cpu_count() or 1,
        timeout: float = 10.0,
        command: Sequence[str] | None = None,
        *,
        start_timeout: float | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("DcapPool size must be >= 1")
        self.size = size
        self.timeout = timeout
        self.start_timeout = max(timeout, 10.0) if start_timeout is None else start_timeout
        self.command = list(command) if command is not None else [sys.executable, "-m", "verifier.adapters.dcap.worker"]
        self._idle = _Slots()
        self._workers: set[_Worker] = set()
        self._ids = itertools.count(1)
        self._version: str | None = None
        self._closed = False
        self._stats = {"restarts": 0, "timeouts": 0}  # for the service's metrics

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> DcapPool:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start all workers. One that fails to start leaves an empty slot (``alive()`` is False)."""
        results = await asyncio.gather(*(self._spawn() for _ in range(self.size)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                log.warning("dcap worker did not start: %s", result)
                self._idle.give(None)
            else:
                self._idle.give(result)

    async def close(self) -> None:
        """Close every worker's stdin, wait up to the grace period, then kill."""
        self._closed = True
        await asyncio.gather(*(self._stop(w) for w in list(self._workers)))

    def version(self) -> str | None:
        """dcap-qvl's version, from a worker's hello (None before any worker started)."""
        return self._version

    def alive(self) -> bool:
        """True iff all ``size`` worker processes are running."""
        return not self._closed and len(self._workers) == self.size and all(w.running for w in self._workers)

    def stats(self) -> dict[str, int]:
        """Workers killed and replaced, and requests that timed out, since the pool started."""
        return dict(self._stats)

    def pids(self) -> list[int]:
        """Process ids of the current workers (diagnostics)."""
        return sorted(w.proc.pid for w in self._workers)

    # ------------------------------------------------------------------ verify

    async def verify(self, quote: bytes, collateral_json: str, now: int, root_ca_der: bytes) -> DcapResult:
        if self._closed:
            raise Indeterminate("the dcap-qvl worker pool is closed", reason="dcap_worker_failed")
        req_id = next(self._ids)
        line = (
            json.dumps(
                {
                    "id": req_id,
                    "quote": quote.hex(),
                    "collateral": collateral_json,
                    "now": now,
                    "root_ca": root_ca_der.hex(),
                }
            ).encode()
            + b"\n"
        )
        worker = await self._idle.take()  # a worker, or None for an empty slot
        try:
            if worker is None or not worker.running:
                if worker is not None:
                    await self._kill(worker)
                worker = None
                worker = await self._spawn()
            answer = await asyncio.wait_for(self._exchange(worker, line, req_id), self.timeout)
        except (TimeoutError, _WorkerFault) as exc:
            replacement = None
            self._stats["timeouts"] += isinstance(exc, TimeoutError)
            self._stats["restarts"] += worker is not None
            try:  # a replacement now, so alive() recovers; if it cannot start the slot stays empty
                if worker is not None:
                    await self._kill(worker)
                    replacement = await self._try_spawn()
            finally:
                self._idle.give(replacement)
            if worker is None:
                raise Indeterminate(f"dcap-qvl worker could not start: {exc}", reason="dcap_worker_failed") from exc
            if isinstance(exc, TimeoutError):
                raise Indeterminate(
                    f"dcap-qvl worker did not answer within {self.timeout} s", reason="dcap_worker_timeout"
                ) from None
            raise Indeterminate(f"dcap-qvl worker failed: {exc}", reason="dcap_worker_failed") from exc
        except BaseException:  # cancellation: the worker may still answer later, so never reuse it
            try:
                if worker is not None:
                    await self._kill(worker)
            finally:
                self._idle.give(None)
            raise
        if self._closed:
            await self._kill(worker)
        self._idle.give(worker)
        return self._result(answer)

    async def _exchange(self, worker: _Worker, line: bytes, req_id: int) -> dict[str, Any]:
        stdin, stdout = worker.proc.stdin, worker.proc.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(line)
            await stdin.drain()
            raw = await stdout.readline()
        except (OSError, ValueError) as exc:  # broken pipe; ValueError: line over the StreamReader limit
            raise _WorkerFault(f"{type(exc).__name__}: {exc}") from exc
        if not raw.endswith(b"\n"):
            raise _WorkerFault(f"worker exited (EOF; returncode {worker.proc.returncode})")
        try:
            answer = json.loads(raw)
        except ValueError:
            raise _WorkerFault(f"unparsable answer {raw[:80]!r}") from None
        if not isinstance(answer, dict) or answer.get("id") != req_id:
            raise _WorkerFault(f"answer is not for request {req_id}: {raw[:80]!r}")
        return answer

    # ------------------------------------------------------------------ processes

    async def _spawn(self) -> _Worker:
        """Start one worker and read its hello; _WorkerFault if it does not say hello in time."""
        if self._closed:
            raise _WorkerFault("pool is closed")
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=_LINE_LIMIT,
            )
        except OSError as exc:
            raise _WorkerFault(f"cannot run {self.command[0]!r}: {exc}") from exc
        worker = _Worker(proc, None)
        self._workers.add(worker)
        worker.stderr_task = asyncio.create_task(_log_stderr(proc))
        if self._closed:  # close() ran while we were starting it: it did not see this one
            await self._kill(worker)
            raise _WorkerFault("pool is closed")
        try:
            assert proc.stdout is not None
            raw = await asyncio.wait_for(proc.stdout.readline(), self.start_timeout)
            hello = json.loads(raw)
            if not isinstance(hello, dict) or hello.get("hello") is not True:
                raise ValueError(f"not a hello: {raw[:80]!r}")
        except (TimeoutError, ValueError) as exc:
            await self._kill(worker)
            raise _WorkerFault(f"no hello from worker: {type(exc).__name__}: {exc}") from None
        except BaseException:
            await self._kill(worker)
            raise
        version = hello.get("dcap_qvl")
        worker.version = version if isinstance(version, str) else None
        self._version = worker.version or self._version
        return worker

    async def _try_spawn(self) -> _Worker | None:
        try:
            return await self._spawn()
        except _WorkerFault as exc:
            log.warning("dcap worker replacement did not start: %s", exc)
            return None

    async def _kill(self, worker: _Worker) -> None:
        self._workers.discard(worker)
        if worker.proc.stdin is not None:
            worker.proc.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            worker.proc.kill()
        await worker.proc.wait()
        if worker.stderr_task is not None:  # ends at EOF, unless a grandchild still holds the pipe
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.stderr_task, 1.0)

    async def _stop(self, worker: _Worker) -> None:
        """EOF on stdin makes the worker exit (worker.main); kill it after the grace period."""
        if worker.proc.stdin is not None:
            worker.proc.stdin.close()
        try:
            await asyncio.wait_for(worker.proc.wait(), _GRACE)
        except TimeoutError:
            log.warning("dcap worker %d did not exit within %.0f s; killing it", worker.proc.pid, _GRACE)
        await self._kill(worker)

    @staticmethod
    def _result(answer: dict[str, Any]) -> DcapResult:
        if answer.get("ok") is False:
            error = answer.get("error")
            if not isinstance(error, str) or error.startswith(_PROTOCOL_ERRORS):
                raise Indeterminate(f"dcap-qvl worker rejected the request: {error!r}", reason="dcap_worker_failed")
            raise CheckFailed(f"dcap-qvl: {error}", reason=reason_for(error), details={"dcap_error": error})
        status, advisories = answer.get("status"), answer.get("advisory_ids")
        number, tcb_date, claims = answer.get("tcb_eval_data_number"), answer.get("tcb_date"), answer.get("claims")
        if (
            answer.get("ok") is not True
            or not isinstance(status, str)
            or not status
            or not isinstance(advisories, list)
            or not all(isinstance(a, str) for a in advisories)
            or not (number is None or (isinstance(number, int) and not isinstance(number, bool)))
            or not (tcb_date is None or isinstance(tcb_date, str))
            or not isinstance(claims, dict)
        ):
            raise Indeterminate(
                f"dcap-qvl worker answer is malformed: {str(answer)[:200]}", reason="dcap_worker_failed"
            )
        return DcapResult(
            status=status, advisory_ids=tuple(advisories), tcb_eval_data_number=number, tcb_date=tcb_date, claims=claims
        )
