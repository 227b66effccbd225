"""Async access to the ledger for the event loop: SQLite never runs on the loop.

Writes run on ONE writer thread (one connection; a verdict is answered only after its transaction committed).
Reads run on a small pool of reader threads, each with its own read-only connection: in WAL mode a reader
never waits for a writer, so verdicts, bundles, lists and API-key lookups keep being served while another
process holds the write lock. (An in-memory ledger has one connection: everything runs on the writer.)
Also the ``PriorAttestations`` port of the pipeline (the attestation reuse window).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlite_utils

from verifier.adapters.collateral_cache import SqliteCollateralStore
from verifier.adapters.ledger import Ledger
from verifier.engine.pipeline import PriorAttestation
from verifier.evidence.bundle import Bundle

T = TypeVar("T")


class Recorder:
    def __init__(
        self,
        ledger: Ledger,
        executor: ThreadPoolExecutor,
        *,
        trust_profile: str,
        path: str = ":memory:",
        readers: int = 2,
        busy_timeout: float = 5.0,
        observe_write: Callable[[float], None] | None = None,
    ) -> None:
        self.ledger = ledger  # only ever touched from `executor`'s one thread
        self._executor = executor
        self._trust_profile = trust_profile  # reuse never crosses trust profiles
        self._path, self._busy_ms = path, int(busy_timeout * 1000)
        self._observe_write = observe_write
        self._readers: ThreadPoolExecutor | None = None
        if path != ":memory:" and readers > 0:
            self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="ledger-reader")
        self._local = threading.local()
        self._opened: list[Ledger] = []
        self._opened_lock = threading.Lock()

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        trust_profile: str,
        busy_timeout: float = 5.0,
        readers: int = 2,
        observe_write: Callable[[float], None] | None = None,
    ) -> Recorder:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")
        try:
            ledger = await asyncio.get_running_loop().run_in_executor(
                executor, lambda: Ledger.open(path, busy_timeout_ms=int(busy_timeout * 1000))
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(
            ledger,
            executor,
            trust_profile=trust_profile,
            path=path,
            readers=readers,
            busy_timeout=busy_timeout,
            observe_write=observe_write,
        )

    @property
    def path(self) -> str:
        """The ledger's path (":memory:" for an in-memory ledger, which no other process can open)."""
        return self._path

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def write(self, fn: Callable[[Ledger], T]) -> T:
        """Run ``fn(ledger)`` on the writer thread."""
        return await self._call(fn, self.ledger)

    async def read(self, fn: Callable[[Ledger], T]) -> T:
        """Run ``fn(ledger)`` on a reader thread with its own read-only connection."""
        if self._readers is None:
            return await self.write(fn)
        return await asyncio.get_running_loop().run_in_executor(self._readers, lambda: fn(self._reader()))

    def _reader(self) -> Ledger:
        reader: Ledger | None = getattr(self._local, "ledger", None)
        if reader is None:
            reader = self._local.ledger = Ledger.open_readonly(self._path, busy_timeout_ms=self._busy_ms)
            with self._opened_lock:
                self._opened.append(reader)
        return reader

    def collateral_store(self) -> SqliteCollateralStore:
        """The collateral cache's table behind these threads (reads on a reader, writes on the writer)."""

        async def read(fn: Callable[[sqlite_utils.Database], Any]) -> Any:
            return await self.read(lambda ledger: fn(ledger.db))

        async def write(fn: Callable[[sqlite_utils.Database], Any]) -> Any:
            return await self.write(lambda ledger: fn(ledger.db))

        return SqliteCollateralStore(read, write)

    async def save(
        self, verdict: dict[str, Any], bundle: Bundle, *, secrets: tuple[str, ...] = (), submitted_by: str | None = None
    ) -> str:
        started = time.monotonic()
        try:
            return await self._call(
                self.ledger.save, verdict, bundle.files(), secrets=secrets, submitted_by=submitted_by
            )
        finally:
            if self._observe_write is not None:
                self._observe_write(time.monotonic() - started)

    async def get(self, verdict_id: str, *, submitted_by: str | None = None) -> dict[str, Any] | None:
        return await self.read(lambda ledger: ledger.get(verdict_id, submitted_by=submitted_by))

    async def bundle(self, verdict_id: str, *, submitted_by: str | None = None) -> Bundle | None:
        try:
            files = await self.read(lambda ledger: ledger.evidence(verdict_id, submitted_by=submitted_by))
        except KeyError:
            return None
        return Bundle.from_files(files)

    async def list(self, **filters: Any) -> tuple[list[dict[str, Any]], str | None]:
        return await self.read(lambda ledger: ledger.list(**filters))

    async def healthy(self) -> bool:
        try:
            return await self._call(self.ledger.healthy)
        except Exception:
            return False

    async def find(
        self, *, signer: str, signing_algo: str, model: str, gateway: str, now: int, max_age: int
    ) -> PriorAttestation | None:
        row = await self._call(
            self.ledger.find_reusable_attestation,
            signer=signer,
            signing_algo=signing_algo,
            model=model,
            gateway=gateway,
            now=now,
            max_age=max_age,
            trust_profile=self._trust_profile,
        )
        if row is None:
            return None
        return prior_from(row, await self.bundle(row["verdict_id"]))

    async def close(self) -> None:
        close = getattr(self.ledger, "close", None)
        if close is not None:
            await self._call(close)
        self._executor.shutdown(wait=True)
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        with self._opened_lock:
            for reader in self._opened:
                reader.close()
            self._opened.clear()


def prior_from(row: dict[str, Any], bundle: Bundle | None) -> PriorAttestation | None:
    """The reuse source an ``attestations`` index row names, from its verdict's bundle: only a report this verifier
    fetched itself with its own nonce (never one that was itself reused)."""
    if bundle is None or bundle.report is None or bundle.meta.nonce is None or bundle.meta.reused_from is not None:
        return None
    return PriorAttestation(
        verdict_id=row["verdict_id"],
        captured_at=int(row["captured_at"]),
        nonce=bundle.meta.nonce,
        report=bundle.report,
        collateral=bundle.collateral,
        nras=bundle.nras,
    )
