"""Async access to the ledger for the event loop: every call runs on ONE writer thread.

The ledger's sqlite connection is owned by a single-thread executor (aesthetics.md §6.7: one writer),
so a verdict is answered only after its transaction committed. Also the ``PriorAttestations`` port
of the pipeline (the attestation reuse window).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from verifier.adapters.ledger import Ledger
from verifier.engine.pipeline import PriorAttestation
from verifier.evidence.bundle import Bundle

T = TypeVar("T")


class Recorder:
    def __init__(self, ledger: Ledger, executor: ThreadPoolExecutor, *, trust_profile: str) -> None:
        self.ledger = ledger  # only ever touched from `executor`'s one thread
        self._executor = executor
        self._trust_profile = trust_profile  # reuse never crosses trust profiles

    @classmethod
    async def open(cls, path: str, *, trust_profile: str) -> Recorder:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")
        ledger = await asyncio.get_running_loop().run_in_executor(executor, Ledger.open, path)
        return cls(ledger, executor, trust_profile=trust_profile)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def save(self, verdict: dict[str, Any], bundle: Bundle, *, secrets: tuple[str, ...] = ()) -> str:
        return await self._call(self.ledger.save, verdict, bundle.files(), secrets=secrets)

    async def get(self, verdict_id: str) -> dict[str, Any] | None:
        return await self._call(self.ledger.get, verdict_id)

    async def bundle(self, verdict_id: str) -> Bundle | None:
        try:
            files = await self._call(self.ledger.evidence, verdict_id)
        except KeyError:
            return None
        return Bundle.from_files(files)

    async def list(self, **filters: Any) -> tuple[list[dict[str, Any]], str | None]:
        return await self._call(self.ledger.list, **filters)

    async def healthy(self) -> bool:
        try:
            return await self._call(self.ledger.healthy)
        except Exception:
            return False

    async def find(self, *, signer: str, signing_algo: str, model: str, gateway: str, now: int,
                   max_age: int) -> PriorAttestation | None:
        row = await self._call(self.ledger.find_reusable_attestation, signer=signer, signing_algo=signing_algo,
                               model=model, gateway=gateway, now=now, max_age=max_age, trust_profile=self._trust_profile)
        if row is None:
            return None
        bundle = await self.bundle(row["verdict_id"])
        if bundle is None or bundle.report is None or bundle.meta.nonce is None or bundle.meta.reused_from is not None:
            return None
        return PriorAttestation(
            verdict_id=row["verdict_id"], captured_at=int(row["captured_at"]), nonce=bundle.meta.nonce, report=bundle.report,
            collateral=bundle.collateral, nras=bundle.nras,
        )

    async def close(self) -> None:
        close = getattr(self.ledger, "close", None)
        if close is not None:
            await self._call(close)
        self._executor.shutdown(wait=True)

