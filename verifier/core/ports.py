"""I/O ports: the protocols the core depends on; adapters (aiohttp, subprocess, SQLite) are injected."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class DcapResult:
    """What dcap-qvl established about a quote that verified (errors are raised, not returned)."""

    status: str  # Intel TCB status: UpToDate, SWHardeningNeeded, OutOfDate, ...
    advisory_ids: tuple[str, ...]
    tcb_eval_data_number: int | None
    tcb_date: str | None
    claims: dict[str, Any] = field(default_factory=dict)  # dcap-qvl QuoteClaims JSON (for the record)


class QuoteVerifier(Protocol):
    """dcap-qvl behind a process boundary (``verifier.adapters.dcap.pool.DcapPool``)."""

    async def verify(self, quote: bytes, collateral_json: str, now: int, root_ca_der: bytes) -> DcapResult:
        """Raise CheckFailed (evidence wrong, with a reason code) or Indeterminate (worker trouble)."""
        ...
