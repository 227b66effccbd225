"""A verifier worker process (spawned by ``verify_pool.VerifierPool``): lowers its CPU priority, then verifies the
exchanges the proxy hands it, each with this process's own services, and sends back the shaped verdict and bundle.

Its services: an aiohttp session (gateway signature and report calls, Intel PCS / PCCS, NRAS), a dcap-qvl pool, a
verification memo, and a read-only connection to the ledger (the attestation reuse index and the collateral cache
are read there). It never writes the ledger: collateral to cache goes back to the proxy, as does each upstream
call's budget and each answer's byte reservation. Its errors go back as a reason code and a redacted message; its
log lines never carry the text of a verification's exception (it could quote evidence or the key).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

from verifier.adapters.collateral_cache import CollateralCache, SqliteCollateralStore
from verifier.adapters.dcap.pool import DcapPool
from verifier.adapters.gateway import GatewayClient, Retry
from verifier.adapters.ledger import Ledger
from verifier.adapters.nras_client import NrasClient
from verifier.adapters.pcs import PcsClient
from verifier.adapters.recorder import prior_from
from verifier.adapters.tls_peer import ObservedResponse
from verifier.adapters.tls_trust import connector_ssl, upstream_ssl_context
from verifier.adapters.transport import redactor
from verifier.app.limits import Limited
from verifier.app.profiles import anchors_for
from verifier.app.worker_channel import JOB_ID, WorkerConfig, frame, read_frame
from verifier.core.errors import VerifierError
from verifier.engine.context import Context
from verifier.engine.pipeline import Exchange, PriorAttestation, verify_exchange
from verifier.evidence.bundle import Bundle
from verifier.verify.memo import VerificationMemo

log = logging.getLogger("verifier.verify_worker")


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
            self._sock.sendall(JOB_ID.pack(self._jid))
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
            self._writer.write(frame(("call", rid, jid, op, arg)))
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


def result_frame(jid: int, message: tuple[Any, ...]) -> bytes:
    """The frame answering job ``jid``; one naming the error class when ``message`` does not pickle (a verdict too
    deep for pickle, an object that cannot be sent), so every job is answered and none waits forever."""
    try:
        return frame(message)
    except Exception as exc:
        log.error("verification job %d: its result cannot be sent: %s", jid, type(exc).__name__)
        return frame(("internal", jid, type(exc).__name__))


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
        aiohttp.ClientSession(
            timeout=timeout,
            headers={"User-Agent": "attestation-verifier"},
            connector=aiohttp.TCPConnector(ssl=connector_ssl(upstream_ssl_context(s.ca_file))),
            response_class=ObservedResponse,  # tls.json: the peer of each gateway answer
        ) as session,
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
                writer.write(result_frame(jid, message))
                await writer.drain()

        writer.write(frame(("ready", os.getpid())))
        await writer.drain()
        try:
            while True:
                try:
                    message = await read_frame(reader)
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
