"""What one evaluation runs against: the policy, refs, time, trust anchors and the injected I/O ports."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from verifier.appraise.policy import Policy
from verifier.core.ports import QuoteVerifier
from verifier.core.trust import TrustAnchors
from verifier.evidence.collateral import Collateral
from verifier.verify.memo import VerificationMemo


class CollateralProvider(Protocol):
    async def get(self, *, fmspc: str, ca: str, now: int) -> Collateral: ...


class NrasProvider(Protocol):
    async def attest(self, nras_request: dict[str, Any]) -> bytes: ...

    async def jwks(self, kid: str | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Context:
    policy: Policy
    now: int  # the verification time: every validity window is judged at this instant
    anchors: TrustAnchors
    quotes: QuoteVerifier | None = None  # None: tdx.quote cannot run (indeterminate)
    collateral: CollateralProvider | None = None  # None: only the bundle's collateral
    nras: NrasProvider | None = None  # None: only the bundle's NRAS responses
    dcap_version: str | None = None
    refs: Any = None  # verifier.appraise.refs.Refs: the reference values software identity is appraised against
    cpu: Executor | None = None  # where CPU-heavy verification runs (None: the loop's default executor), never the loop
    memo: VerificationMemo | None = None  # validated chains and keys, owned by the running services (None: no memo)
