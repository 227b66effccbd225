"""The verdict: what one evaluation proved, as a frozen value. Nothing mutates a verdict after evaluation.

The ledger stores ``to_json()``; ``from_json`` reads it back; the table renderer and the OpenAPI schema
describe the same shape. The ledger's id is given with ``with_id`` (a new value, not an edit).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from verifier.core.model import JSON, CheckResult, Status


class MalformedVerdict(ValueError):
    """A JSON document that is not a verdict as ``Verdict.to_json`` writes it."""


@dataclass(frozen=True, slots=True)
class Subject:
    model: str | None
    chat_id: str | None
    gateway: str | None
    signing_algo: str | None
    signer: str | None
    request_sha256: str | None
    response_sha256: str | None
    signed_text: str | None
    model_binding: dict[str, JSON] = field(default_factory=dict)  # what bound the model: by, names
    # whether the TLS channel that served the completion is bound to the attested TD: bound, connection, observed,
    # reason (tls.binds_peer)
    tls_binding: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NonceRef:
    value: str | None
    origin: str | None


@dataclass(frozen=True, slots=True)
class Times:
    verified_at: int  # the instant every validity window was judged at
    captured_at: int | None  # when the evidence was gathered (the exchange, the signature)
    evaluated_at: float
    duration_ms: float


@dataclass(frozen=True, slots=True)
class PolicyRef:
    id: str
    sha256: str


@dataclass(frozen=True, slots=True)
class AttestationRef:
    format: str | None
    paths: tuple[str, ...]
    hops: tuple[str, ...] = ()  # model attestations vouched for by an attested gateway (NEAR two-layer)
    origin: str = "recorded"  # "fetched": fetched now with our fresh nonce; "reused"; "recorded": from a bundle
    fetched_at: int | None = None  # when this verifier fetched the report (reused: the original fetch)
    reused_from: str | None = None
    age_s: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    trust_profile: str
    simulator: bool
    subject: Subject
    nonce: NonceRef
    times: Times
    policy: PolicyRef
    versions: dict[str, str | None]
    checks: tuple[CheckResult, ...]
    claims: dict[str, JSON]
    notes: tuple[dict[str, str], ...]
    collateral: tuple[dict[str, JSON], ...]
    attestation: AttestationRef
    anchors: dict[str, str]
    trust_vector: dict[str, dict[str, JSON]] = field(default_factory=dict)
    refs: dict[str, JSON] | None = None  # id and sha256 of the reference values appraised against
    supersedes: str | None = None
    id: str | None = None

    def with_id(self, verdict_id: str) -> Verdict:
        return replace(self, id=verdict_id)

    def check(self, check_id: str) -> CheckResult | None:
        return next((c for c in self.checks if c.id == check_id), None)

    def to_json(self) -> dict[str, JSON]:
        s, a = self.subject, self.attestation
        return {
            "id": self.id,
            "status": str(self.status),
            "trust_profile": self.trust_profile,
            "simulator": self.simulator,
            "subject": {
                "model": s.model,
                "chat_id": s.chat_id,
                "gateway": s.gateway,
                "signing_algo": s.signing_algo,
                "signer": s.signer,
                "request_sha256": s.request_sha256,
                "response_sha256": s.response_sha256,
                "signed_text": s.signed_text,
                "model_binding": dict(s.model_binding),
                "tls_binding": dict(s.tls_binding),
            },
            "nonce": {"value": self.nonce.value, "origin": self.nonce.origin},
            "times": {
                "verified_at": self.times.verified_at,
                "captured_at": self.times.captured_at,
                "evaluated_at": self.times.evaluated_at,
                "duration_ms": self.times.duration_ms,
            },
            "policy": {"id": self.policy.id, "sha256": self.policy.sha256},
            "refs": dict(self.refs) if self.refs is not None else None,
            "versions": dict(self.versions),
            "checks": [c.to_json() for c in self.checks],
            "claims": self.claims,
            "notes": [dict(n) for n in self.notes],
            "collateral": [dict(c) for c in self.collateral],
            "attestation": {
                "format": a.format,
                "paths": list(a.paths),
                "hops": list(a.hops),
                "origin": a.origin,
                "fetched_at": a.fetched_at,
                "reused_from": a.reused_from,
                "age_s": a.age_s,
            },
            "trust_vector": {k: dict(v) for k, v in self.trust_vector.items()},
            "anchors": dict(self.anchors),
            "supersedes": self.supersedes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        """The verdict ``to_json`` wrote; MalformedVerdict (naming what is wrong) for anything else, e.g. a stored
        verdict edited outside the ledger."""
        if not isinstance(data, dict):
            raise MalformedVerdict(f"a verdict is a JSON object, not {type(data).__name__}")
        try:
            return cls._from_json(data)
        except KeyError as exc:
            raise MalformedVerdict(f"field {exc.args[0]!r} is missing") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise MalformedVerdict(f"a field has the wrong shape ({exc})") from None

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> Verdict:
        s, a, t = data["subject"], data["attestation"], data["times"]
        return cls(
            id=data.get("id"),
            status=Status(data["status"]),
            trust_profile=data["trust_profile"],
            simulator=bool(data["simulator"]),
            subject=Subject(
                model=s.get("model"),
                chat_id=s.get("chat_id"),
                gateway=s.get("gateway"),
                signing_algo=s.get("signing_algo"),
                signer=s.get("signer"),
                request_sha256=s.get("request_sha256"),
                response_sha256=s.get("response_sha256"),
                signed_text=s.get("signed_text"),
                model_binding=dict(s.get("model_binding") or {}),
                tls_binding=dict(s.get("tls_binding") or {}),
            ),
            nonce=NonceRef(value=data["nonce"].get("value"), origin=data["nonce"].get("origin")),
            times=Times(
                verified_at=t["verified_at"],
                captured_at=t.get("captured_at"),
                evaluated_at=t.get("evaluated_at", 0.0),
                duration_ms=t.get("duration_ms", 0.0),
            ),
            policy=PolicyRef(id=data["policy"]["id"], sha256=data["policy"]["sha256"]),
            refs=data.get("refs"),
            versions=dict(data.get("versions") or {}),
            checks=tuple(CheckResult.from_json(c) for c in data["checks"]),
            claims=dict(data.get("claims") or {}),
            notes=tuple(dict(n) for n in data.get("notes") or ()),
            collateral=tuple(dict(c) for c in data.get("collateral") or ()),
            attestation=AttestationRef(
                format=a.get("format"),
                paths=tuple(a.get("paths") or ()),
                hops=tuple(a.get("hops") or ()),
                origin=a.get("origin", "recorded"),
                fetched_at=a.get("fetched_at"),
                reused_from=a.get("reused_from"),
                age_s=a.get("age_s"),
            ),
            trust_vector=dict(data.get("trust_vector") or {}),
            anchors=dict(data.get("anchors") or {}),
            supersedes=data.get("supersedes"),
        )
