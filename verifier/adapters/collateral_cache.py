"""The collateral cache: QuoteCollateralV3 per (FMSPC, CA) in SQLite, fetched from Intel PCS / a PCCS on a miss.

SQLite is never touched on the event loop: the store runs its reads and writes through injected runners
(the service's ledger reader and writer threads, ``verifier.adapters.recorder``).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import sqlite_utils
from sqlite_utils.db import NotFoundError

from verifier.adapters.pcs import PcsClient
from verifier.core.errors import EvidenceError, UpstreamError
from verifier.evidence.collateral import Collateral

log = logging.getLogger(__name__)

T = TypeVar("T")
# runs a synchronous function of a database connection somewhere off the event loop
Runner = Callable[[Callable[[sqlite_utils.Database], Any]], Awaitable[Any]]

TABLE = "collateral_cache"
KIND = "tdx"
_COLUMNS = {
    "kind": str,
    "fmspc": str,
    "ca": str,
    "json_text": str,
    "sha256": str,
    "fetched_at": int,
    "valid_from": int,
    "valid_until": int,
}


class CollateralStore(Protocol):
    async def load(self, fmspc: str, ca: str) -> str | None: ...

    async def save(self, row: dict[str, Any]) -> None: ...


class SqliteCollateralStore:
    """The ``collateral_cache`` table, read through ``read`` and written through ``write``."""

    def __init__(self, read: Runner, write: Runner) -> None:
        self._read, self._write = read, write

    @classmethod
    def inline(cls, db: sqlite_utils.Database) -> SqliteCollateralStore:
        """One connection used on the caller's thread (tests, one-shot tools); creates the table if needed."""
        db.table(TABLE).create(_COLUMNS, pk=("kind", "fmspc", "ca"), if_not_exists=True)

        async def run(fn: Callable[[sqlite_utils.Database], Any]) -> Any:
            return fn(db)

        return cls(run, run)

    async def load(self, fmspc: str, ca: str) -> str | None:
        def get(db: sqlite_utils.Database) -> str | None:
            try:
                value = db.table(TABLE).get((KIND, fmspc, ca))["json_text"]
            except (NotFoundError, KeyError, TypeError):
                return None
            return value if isinstance(value, str) else None

        result: str | None = await self._read(get)
        return result

    async def save(self, row: dict[str, Any]) -> None:
        await self._write(lambda db: db.table(TABLE).upsert(row, pk=("kind", "fmspc", "ca")))


class CollateralCache:
    """Collateral per (FMSPC, CA) in SQLite, fetched on a miss.

    The cache is untrusted storage: nothing read from it is believed without dcap-qvl verifying it
    again on each use. An entry is served only if valid at the verification time (both issue dates
    ≤ now < earliest nextUpdate); otherwise it is refetched. A freshly fetched collateral is
    returned even if not valid at ``now`` (dcap-qvl then says why), but is not served again later.
    A cache that cannot be read or written (busy, broken) is a miss, never a verification error.
    """

    def __init__(
        self,
        store: CollateralStore,
        fetcher: PcsClient | None,
        *,
        offline: bool = False,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.store, self.fetcher, self.offline, self.clock = store, fetcher, offline, clock or time.time
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._fetched: dict[tuple[str, str], tuple[int, Collateral]] = {}  # key -> (generation, latest fetch)

    async def cached(self, *, fmspc: str, ca: str, now: int) -> Collateral | None:
        try:
            text = await self.store.load(fmspc.upper(), ca)
            c = Collateral.parse(text, source="cache") if text is not None else None
        except EvidenceError:
            return None
        except (sqlite3.Error, OSError) as exc:
            log.warning("collateral cache read failed: %s", exc)
            return None
        return c if c is not None and c.valid_at(now) else None

    async def get(self, *, fmspc: str, ca: str, now: int) -> Collateral:
        key = (fmspc.upper(), ca)
        if (hit := await self.cached(fmspc=key[0], ca=ca, now=now)) is not None:
            return hit
        gen = self._fetched.get(key, (0, None))[0]
        async with self._locks.setdefault(key, asyncio.Lock()):
            if (hit := await self.cached(fmspc=key[0], ca=ca, now=now)) is not None:
                return hit
            latest = self._fetched.get(key)
            if latest is not None and latest[0] != gen:  # fetched while we waited: share it even if expired at now
                return latest[1]
            if self.offline or self.fetcher is None:
                why = "offline mode" if self.offline else "no fetcher configured"
                raise UpstreamError(
                    f"no cached collateral for FMSPC {key[0]} ({ca} CA) valid at {now}, and {why}: not fetching",
                    reason="collateral_unavailable",
                    details={"fmspc": key[0], "ca": ca, "now": now},
                )
            fresh = await self.fetcher.fetch(fmspc=key[0], ca=ca)
            self._fetched[key] = (self._fetched.get(key, (0, fresh))[0] + 1, fresh)
            row = {
                "kind": KIND,
                "fmspc": key[0],
                "ca": ca,
                "json_text": fresh.json_text,
                "sha256": fresh.sha256,
                "fetched_at": int(self.clock()),
                "valid_from": fresh.issued_at,
                "valid_until": fresh.next_update,
            }
            try:
                await self.store.save(row)
            except Exception as exc:  # busy, locked, broken: the fetch is still good; the next miss refetches
                log.warning("collateral cache write failed for FMSPC %s: %s", key[0], exc)
            return fresh
