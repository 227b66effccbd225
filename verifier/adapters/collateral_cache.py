"""The collateral cache: QuoteCollateralV3 per (FMSPC, CA) in SQLite, fetched from Intel PCS / a PCCS on a miss."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable

import sqlite_utils
from sqlite_utils.db import NotFoundError

from verifier.adapters.pcs import PcsClient
from verifier.core.errors import EvidenceError, UpstreamError
from verifier.evidence.collateral import Collateral

log = logging.getLogger(__name__)


class CollateralCache:
    """Collateral per (FMSPC, CA) in SQLite, fetched on a miss.

    The cache is untrusted storage: nothing read from it is believed without dcap-qvl verifying it
    again on each use. An entry is served only if valid at the verification time (both issue dates
    ≤ now < earliest nextUpdate); otherwise it is refetched. A freshly fetched collateral is
    returned even if not valid at ``now`` (dcap-qvl then says why), but is not served again later.
    """

    TABLE = "collateral_cache"
    KIND = "tdx"

    def __init__(self, db: sqlite_utils.Database, fetcher: PcsClient | None, *, offline: bool = False,
                 clock: Callable[[], float] | None = None) -> None:
        self.fetcher, self.offline, self.clock = fetcher, offline, clock or time.time
        self.table = db.table(self.TABLE)
        self.table.create({"kind": str, "fmspc": str, "ca": str, "json_text": str, "sha256": str, "fetched_at": int,
                           "valid_from": int, "valid_until": int}, pk=("kind", "fmspc", "ca"), if_not_exists=True)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._fetched: dict[tuple[str, str], tuple[int, Collateral]] = {}  # key -> (generation, latest fetch)

    def cached(self, *, fmspc: str, ca: str, now: int) -> Collateral | None:
        try:
            row = self.table.get((self.KIND, fmspc.upper(), ca))
            c = Collateral.parse(row["json_text"], source="cache")
        except (NotFoundError, EvidenceError, KeyError, TypeError):
            return None
        except sqlite3.Error as exc:  # a busy or broken cache is a miss, never a verification error
            log.warning("collateral cache read failed: %s", exc)
            return None
        return c if c.valid_at(now) else None

    async def get(self, *, fmspc: str, ca: str, now: int) -> Collateral:
        key = (fmspc.upper(), ca)
        if (hit := self.cached(fmspc=key[0], ca=ca, now=now)) is not None:
            return hit
        gen = self._fetched.get(key, (0, None))[0]
        async with self._locks.setdefault(key, asyncio.Lock()):
            if (hit := self.cached(fmspc=key[0], ca=ca, now=now)) is not None:
                return hit
            latest = self._fetched.get(key)
            if latest is not None and latest[0] != gen:  # fetched while we waited: share it even if expired at now
                return latest[1]
            if self.offline or self.fetcher is None:
                why = "offline mode" if self.offline else "no fetcher configured"
                raise UpstreamError(f"no cached collateral for FMSPC {key[0]} ({ca} CA) valid at {now}, and {why}: not fetching",
                                    reason="collateral_unavailable", details={"fmspc": key[0], "ca": ca, "now": now})
            fresh = await self.fetcher.fetch(fmspc=key[0], ca=ca)
            self._fetched[key] = (self._fetched.get(key, (0, fresh))[0] + 1, fresh)
            row = {"kind": self.KIND, "fmspc": key[0], "ca": ca, "json_text": fresh.json_text, "sha256": fresh.sha256,
                   "fetched_at": int(self.clock()), "valid_from": fresh.issued_at, "valid_until": fresh.next_update}
            try:
                self.table.upsert(row, pk=("kind", "fmspc", "ca"))
            except sqlite3.Error as exc:
                log.warning("collateral cache write failed for FMSPC %s: %s", key[0], exc)
            return fresh
