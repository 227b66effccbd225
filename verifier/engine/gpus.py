"""Stage 4: every attestation's GPUs — SPDM evidence to NVIDIA's root (off the loop), then NRAS's tokens.

Every attestation that vouches for the signer must show its own GPUs (one cannot vouch for another's),
except a gateway attestation whose hops (model attestations) carry them. NRAS answers come from the bundle
(``nras/response.json``, ``nras/response-N.json`` for the N-th GPU-bearing attestation) or are fetched and kept.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from verifier.appraise.registry import merge_failures
from verifier.core.errors import EvidenceError, Indeterminate, Skip, VerifierError
from verifier.core.model import Severity
from verifier.engine.context import Context
from verifier.evidence.bundle import Bundle
from verifier.evidence.gpu_cert import gpu_identities
from verifier.evidence.gpu_payload import GpuPayload, chutes_gpu_nonce, parse_chutes_gpu_evidence, parse_nvidia_payload
from verifier.evidence.report import Attestation
from verifier.verify.gpu_device import VerifiedGpu, verify_gpu
from verifier.verify.nras_token import NrasResult, verify_nras_response
from verifier.verify.results import GpuFacts, Outcome, Selection, attempt, attempt_async, failed


@dataclass(slots=True)
class FetchedNras:
    files: dict[str, bytes] = field(default_factory=dict)


def _payload(att: Attestation) -> GpuPayload | None:
    if att.gpu_evidence is not None:
        return parse_chutes_gpu_evidence(
            att.gpu_evidence, nonce_hex=att.instance_nonce or "", e2e_pubkey_b64=att.e2e_pubkey
        )
    if att.nvidia_payload is not None:
        payload = parse_nvidia_payload(att.nvidia_payload)
        return payload if payload.evidence else None
    return None


def _payloads(selection: Selection, ctx: Context) -> list[tuple[Attestation, GpuPayload]]:
    if not selection.candidates:
        raise Skip("no attestation was selected for the signer", reason="blocked")
    found: list[tuple[Attestation, GpuPayload]] = []
    errors: list[tuple[str, VerifierError]] = []
    for att in selection.candidates:
        try:
            payload = _payload(att)
        except EvidenceError as exc:
            errors.append((att.path, EvidenceError(f"GPU evidence does not parse: {exc.message}")))
            continue
        if payload is not None and len(payload.evidence) > ctx.policy.max_gpus_per_attestation:
            errors.append(
                (
                    att.path,
                    EvidenceError(
                        f"{len(payload.evidence)} GPUs, more than the policy's cap "
                        f"gpu.max_per_attestation = {ctx.policy.max_gpus_per_attestation}"
                    ),
                )
            )
        elif payload is not None:
            found.append((att, payload))
    merge_failures(errors)
    with_gpus = {att.path for att, _ in found}
    exempt = {a.path for a in selection.candidates if a.role == "gateway"} if selection.hops and with_gpus else set()
    bare = [a.path for a in selection.candidates if a.path not in with_gpus and a.path not in exempt]
    if bare:
        message = f"{', '.join(bare)} carr{'ies' if len(bare) == 1 else 'y'} no GPU evidence" + (
            f" (while {', '.join(sorted(with_gpus))} do)" if with_gpus else ""
        )
        raise Indeterminate(message, reason="no_gpu_evidence", details={"attestations": bare})
    return found


async def verify_gpus(
    selection: Selection, bundle: Bundle, ctx: Context, fetched: FetchedNras
) -> Outcome[tuple[GpuFacts, ...]]:
    listed = attempt(lambda: _payloads(selection, ctx))
    if listed.value is None:
        return failed(listed.error)  # type: ignore[arg-type]
    nonce = bundle.meta.nonce
    facts = []
    for n, (att, payload) in enumerate(listed.value):
        expected = (
            None
            if nonce is None
            else (chutes_gpu_nonce(nonce.hex(), att.e2e_pubkey or "") if att.role == "instance" else nonce)
        )
        devices = await _devices(payload, ctx)
        nras: Outcome[NrasResult]
        if ctx.policy.severity("gpu.nras") is Severity.OFF:
            nras = failed(Skip("NRAS is off by policy", reason="policy_off"))
        elif expected is None:
            nras = failed(Indeterminate("no expected nonce in the bundle", reason="no_nonce"))
        else:
            name = "response.json" if n == 0 else f"response-{n}.json"
            nras = await attempt_async(partial(_nras, name, payload, expected, bundle, ctx, fetched))
        facts.append(GpuFacts(attestation=att, payload=payload, expected_nonce=expected, devices=devices, nras=nras))
    return Outcome(value=tuple(facts))


async def _devices(payload: GpuPayload, ctx: Context) -> Outcome[tuple[VerifiedGpu, ...]]:
    loop = asyncio.get_running_loop()
    root = ctx.anchors.nvidia_device_root_pem
    outcomes = await asyncio.gather(
        *(
            loop.run_in_executor(
                ctx.cpu,
                attempt,
                partial(verify_gpu, ev, root_pem=root, now=ctx.now, memo=ctx.memo.gpu_chains if ctx.memo else None),
            )
            for ev in payload.evidence
        )
    )
    errors = [(f"GPU-{ev.index}", o.error) for ev, o in zip(payload.evidence, outcomes, strict=True) if o.error]

    def combine() -> tuple[VerifiedGpu, ...]:
        merge_failures(errors)
        return tuple(o.value for o in outcomes if o.value is not None)

    return attempt(combine)


async def _nras(
    name: str, payload: GpuPayload, expected: bytes, bundle: Bundle, ctx: Context, fetched: FetchedNras
) -> NrasResult:
    kept = {**bundle.nras, **fetched.files}
    body = kept.get(name)
    if body is None:
        if ctx.nras is None:
            raise Skip(f"no nras/{name} in the bundle and NRAS fetching is off", reason="not_in_bundle")
        body = await ctx.nras.attest(payload.nras_request)
        fetched.files[name] = body
    jwks = await _jwks(kept, ctx, fetched)
    loop = asyncio.get_running_loop()

    def verify(keys: dict[str, Any]) -> NrasResult:
        return verify_nras_response(
            body,
            jwks=keys,
            expected_nonce=expected,
            devices=gpu_identities(payload.evidence),
            now=ctx.now,
            anchors=ctx.anchors,
            leeway=ctx.policy.gpu.nras_leeway,
            memo=ctx.memo.nras_keys if ctx.memo else None,
        )

    try:
        return await loop.run_in_executor(ctx.cpu, verify, jwks)
    except Indeterminate as exc:
        if exc.reason != "nras_jwks_unavailable" or ctx.nras is None:
            raise
        # NRAS rotates keys about daily: refetch the JWKS once for the token's kid
        jwks = await ctx.nras.jwks(exc.details.get("kid"))
        fetched.files["jwks.json"] = json.dumps(jwks, sort_keys=True).encode()
        return await loop.run_in_executor(ctx.cpu, verify, jwks)


async def _jwks(kept: dict[str, bytes], ctx: Context, fetched: FetchedNras) -> dict[str, Any]:
    raw = kept.get("jwks.json")
    if raw is not None:
        try:
            jwks = json.loads(raw)
        except (ValueError, RecursionError):
            raise EvidenceError("nras/jwks.json is not JSON") from None
        if not isinstance(jwks, dict):
            raise EvidenceError("nras/jwks.json is not a JSON object")
        return jwks
    if ctx.nras is None:
        raise Skip("no nras/jwks.json in the bundle and NRAS fetching is off", reason="not_in_bundle")
    jwks = await ctx.nras.jwks()
    fetched.files["jwks.json"] = json.dumps(jwks, sort_keys=True).encode()
    return jwks
