"""The online pipeline: one completion in, one verdict out. Reads top-down as the checklist it runs.

1. hash the exact request/response bytes (the evaluation hashes them; here: the chat id)
2. fetch the signature for the chat id (retried with backoff inside a deadline)
3. mint a fresh 32-byte nonce (``secrets``) ...
4. ... and fetch the attestation report bound to it and to the signer, in the TLS-fingerprint layout where the
   policy asks for it (or, inside the policy's reuse window, cite an attestation this verifier fetched and verified)
5. gather everything into an evidence bundle, with the TLS peers the gateway client observed (tls.json)
6. evaluate it: select the attestation, TDX, GPU, appraise -> verdict
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from verifier.core.errors import EvidenceError, Indeterminate, VerifierError
from verifier.core.model import NonceOrigin
from verifier.engine.evaluate import Context, Evaluation, evaluate
from verifier.evidence.bundle import Bundle, BundleMeta
from verifier.evidence.exchange import chat_id_from_response
from verifier.evidence.signature import normalize_signer, parse_signature
from verifier.evidence.tls_observation import PeerObservation, TlsObservations, combine


class InputError(VerifierError):
    """The caller's input cannot be verified as given (names the field)."""

    reason = "bad_input"


@dataclass(frozen=True, slots=True)
class Exchange:
    request: bytes  # exact bytes sent
    response: bytes  # exact bytes received (an SSE stream as received)
    model: str
    gateway: str
    chat_id: str | None = None  # default: the response's id (first SSE chunk for streams)
    signing_algo: str = "ecdsa"
    headers: bytes | None = None  # headers.json: allow-listed upstream response headers (the proxy records them)
    # the TLS peers the caller observed, when its gateway client does not share its peer log: the proxy's completion
    # connection, handed to a verifier worker process (app.verify_pool) with the exchange
    peers: tuple[PeerObservation, ...] = ()


class Gateway(Protocol):
    async def signature(self, chat_id: str, *, model: str, signing_algo: str) -> bytes: ...

    async def report(
        self,
        *,
        model: str,
        nonce: bytes,
        signing_address: str | None,
        signing_algo: str,
        tls_params: Mapping[str, str] | None = None,
    ) -> bytes: ...

    def peers(self) -> tuple[PeerObservation, ...]:
        """The TLS peers of the connections the used answers (and a relayed completion) arrived on."""
        ...

    async def finished(self) -> None:
        """No more upstream calls for this exchange (the proxy's channel may serve the next one)."""
        ...


@dataclass(frozen=True, slots=True)
class PriorAttestation:
    """An attestation this verifier fetched with its own fresh nonce, in a verdict that did not itself reuse one,
    and verified (see ``max_attestation_age``). Its age counts from that original fetch."""

    verdict_id: str
    captured_at: int  # when the original verdict fetched the report
    nonce: bytes
    report: bytes
    collateral: dict[str, bytes] = field(default_factory=dict)
    nras: dict[str, bytes] = field(default_factory=dict)


class PriorAttestations(Protocol):
    async def find(
        self, *, signer: str, signing_algo: str, model: str, gateway: str, now: int, max_age: int
    ) -> PriorAttestation | None: ...


async def verify_exchange(
    ex: Exchange,
    *,
    gateway: Gateway,
    ctx: Context,
    prior: PriorAttestations | None = None,
    mint: Callable[[int], bytes] = secrets.token_bytes,
) -> Evaluation:
    errors: dict[str, VerifierError] = {}

    # 1. the chat id names the signature; the bytes themselves are hashed by the evaluation
    chat_id = ex.chat_id or chat_id_from_response(ex.response)
    if not chat_id:
        raise InputError("chat_id: the response carries no id; pass chat_id explicitly")

    # 2. the signature, and the signer it names
    signature: bytes | None = None
    signer: str | None = None
    try:
        signature = await gateway.signature(chat_id, model=ex.model, signing_algo=ex.signing_algo)
        parsed = parse_signature(signature)
        signer = normalize_signer(parsed.signing_algo, parsed.signing_address)
    except Indeterminate as exc:
        errors["signature"] = exc
    except EvidenceError:
        pass  # kept in the bundle; the signature checks judge it

    # 3-4. a fresh nonce and the report bound to it, or a prior attestation inside the reuse window
    reused: PriorAttestation | None = None
    if prior is not None and signer is not None and ctx.policy.max_attestation_age > 0:
        reused = await prior.find(
            signer=signer,
            signing_algo=ex.signing_algo,
            model=ex.model,
            gateway=ex.gateway,
            now=ctx.now,
            max_age=ctx.policy.max_attestation_age,
        )
    report: bytes | None = None
    if reused is not None:
        nonce, report = reused.nonce, reused.report
    else:
        nonce = mint(32)
        try:
            report = await gateway.report(
                model=ex.model,
                nonce=nonce,
                signing_address=signer,
                signing_algo=ex.signing_algo,
                tls_params=dict(ctx.policy.tls.request_params),
            )
        except Indeterminate as exc:
            errors["report"] = exc

    # 5. the evidence bundle: everything the verdict rests on, re-verifiable offline
    await gateway.finished()
    peers = combine(ex.peers, gateway.peers())
    bundle = Bundle(
        meta=BundleMeta(
            model=ex.model,
            chat_id=chat_id,
            signing_algo=ex.signing_algo,
            signing_address=signer,
            nonce=nonce,
            nonce_origin=NonceOrigin.MINTED,
            captured_at=ctx.now,
            gateway=ex.gateway,
            reused_from=reused.verdict_id if reused else None,
            report_fetched_at=reused.captured_at if reused else (ctx.now if report is not None else None),
        ),
        request=ex.request,
        response=ex.response,
        signature=signature,
        report=report,
        headers=ex.headers,
        collateral=dict(reused.collateral) if reused else {},
        nras=dict(reused.nras) if reused else {},
        tls=TlsObservations(calls=peers).to_json_bytes() if peers else None,
    )

    # 6. evaluate and appraise (reuse is an input: the bundle says where its attestation came from)
    return await evaluate(
        bundle, ctx, fetch_errors=errors, fetched_now=reused is None and report is not None, observed_now=True
    )
