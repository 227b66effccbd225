"""Typed results of the verification stage: what the engine established, per piece of evidence.

Every step's result is an ``Outcome``: the verified value, or the error that stopped it (a fail, an
indeterminate, a skip). Appraisal functions read these values; they never parse or fetch. Errors are
re-raised as fresh copies so that one stored error can be reported by several checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from verifier.core.errors import Skip, VerifierError
from verifier.core.ports import DcapResult
from verifier.evidence.bundle import Bundle
from verifier.evidence.collateral import Collateral
from verifier.evidence.event_log import Event
from verifier.evidence.gpu_payload import GpuPayload
from verifier.evidence.quote import TdxQuote
from verifier.evidence.report import Attestation, Report
from verifier.evidence.signature import ResponseSignature
from verifier.evidence.tls_observation import TlsObservations
from verifier.verify.gpu_device import VerifiedGpu
from verifier.verify.nras_token import NrasResult

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    value: T | None = None
    error: VerifierError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def get(self) -> T:
        """The value, or a fresh copy of the error that stopped this step."""
        if self.error is not None:
            err = self.error
            raise type(err)(err.message, reason=err.reason, details=dict(err.details))
        assert self.value is not None
        return self.value


def failed(error: VerifierError) -> Outcome[T]:
    return Outcome(error=error)


def attempt(fn: Callable[[], T]) -> Outcome[T]:
    try:
        return Outcome(value=fn())
    except VerifierError as exc:
        return Outcome(error=exc)


async def attempt_async(fn: Callable[[], Awaitable[T]]) -> Outcome[T]:
    try:
        return Outcome(value=await fn())
    except VerifierError as exc:
        return Outcome(error=exc)


@dataclass(frozen=True, slots=True)
class SignatureFacts:
    signature: Outcome[ResponseSignature]  # parsed signature.json
    signer: Outcome[str]  # the key that verifiably signed the text (recovered / checked)
    request: bytes | None
    response: bytes | None
    retained_hashes: dict[str, str] = field(default_factory=dict)  # body name -> sha256 when bytes were not kept


@dataclass(frozen=True, slots=True)
class Selection:
    """The report, the signer under test, and the attestations that must vouch for it."""

    report: Outcome[Report]
    attestations: Outcome[tuple[Attestation, ...]]  # for the signer (report.signer)
    candidates: tuple[Attestation, ...]  # every attestation the TDX and GPU checks verify: the signer's, then the hops
    signer: str | None
    algo: str | None
    hops: tuple[Attestation, ...] = ()  # model attestations behind an attested gateway signer
    names: frozenset[str] = frozenset()  # the requested model and its aliases (lower case)


@dataclass(frozen=True, slots=True)
class TdxFacts:
    attestation: Attestation
    quote: Outcome[TdxQuote]
    collateral: Outcome[Collateral]
    dcap: Outcome[DcapResult]
    events: Outcome[tuple[Event, ...]]  # parsed; the replay is judged by tdx.event_log


@dataclass(frozen=True, slots=True)
class GpuFacts:
    attestation: Attestation
    payload: GpuPayload
    expected_nonce: bytes | None
    devices: Outcome[tuple[VerifiedGpu, ...]]
    nras: Outcome[NrasResult]


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the appraisal reads: the bundle, and what verification established about it."""

    bundle: Bundle
    now: int
    signature: SignatureFacts
    selection: Selection
    tdx: tuple[TdxFacts, ...]
    gpus: Outcome[tuple[GpuFacts, ...]]  # error: no or malformed GPU evidence for some attestation
    # tls.json parsed: the TLS peers observed on the connections to the gateway (observer data, never authenticated)
    tls: Outcome[TlsObservations] = field(
        default_factory=lambda: failed(
            Skip("the bundle holds no tls.json: no TLS peer was observed", reason="not_in_bundle")
        )
    )
    tls_live: bool = False  # True: observed by this process just now (the online pipeline); False: read from a bundle
