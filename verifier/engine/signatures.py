"""Stage 1: the response signature — parsed, then verified (off the event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import Executor

from verifier.core.errors import EvidenceError, Skip, VerifierError
from verifier.evidence.bundle import Bundle
from verifier.evidence.signature import ResponseSignature, parse_signature
from verifier.verify.results import Outcome, SignatureFacts, attempt, failed
from verifier.verify.signature import verify_signature


async def verify_signature_stage(
    bundle: Bundle, fetch_errors: Mapping[str, VerifierError], cpu: Executor | None
) -> SignatureFacts:
    parsed: Outcome[ResponseSignature]
    if bundle.signature is None:
        parsed = failed(
            fetch_errors.get("signature") or Skip("no signature.json in the bundle", reason="not_in_bundle")
        )
    else:
        parsed = attempt(lambda: parse_signature(bundle.signature or b""))
        if parsed.error is not None and isinstance(parsed.error, EvidenceError):
            parsed = failed(EvidenceError(f"signature.json: {parsed.error.message}", reason=parsed.error.reason))
    signer: Outcome[str]
    if parsed.value is None:
        signer = Outcome(error=parsed.error)
    else:
        sig = parsed.value
        loop = asyncio.get_running_loop()
        signer = await loop.run_in_executor(cpu, attempt, lambda: verify_signature(sig))
    retained = {
        part: digest
        for part, digest in (("request", bundle.request_sha256), ("response", bundle.response_sha256))
        if digest is not None
    }
    return SignatureFacts(
        signature=parsed, signer=signer, request=bundle.request, response=bundle.response, retained_hashes=retained
    )
