"""Checks over the response signature: the signature itself, then the exact-byte hashes it signs."""

from __future__ import annotations

from verifier.appraise.registry import Appraisal, Passed, check
from verifier.core.errors import CheckFailed, Indeterminate, Skip
from verifier.evidence import exchange
from verifier.verify.results import Facts


@check("signature.valid", "the response signature verifies for signing_address")
def signature_valid(f: Facts, a: Appraisal) -> Passed:
    sig = f.signature.signature.get()
    signer = f.signature.signer.get()
    return Passed(f"{sig.signing_algo} signature by {signer}", {"signer": signer, "signing_algo": sig.signing_algo})


def _hash_rule(f: Facts, name: str, body: bytes | None, signed: str) -> Passed:
    retained = f.signature.retained_hashes.get(name)
    if body is None and retained is None:
        raise Skip(f"no {name}.body in the bundle", reason="not_in_bundle")
    got = exchange.sha256_hex(body) if body is not None else retained
    assert got is not None
    how = (
        "exact bytes"
        if body is not None
        else "sha256 recorded when the bytes were received; the bytes were not retained"
    )
    if got == signed:
        return Passed(f"sha256 {got} ({how})", {"sha256": got})
    fallback = exchange.reserialized_sha256(body) if name == "response" and body is not None else None
    if fallback is not None and fallback == signed:
        # Phala's proxy hashes its own json.dumps re-serialization: a match says nothing about the bytes received
        raise Indeterminate(
            f"exact bytes hash to {got}; only a Python json.dumps re-serialization matches the signed {signed} "
            "(NOT byte-exact)",
            reason="hash_match_reserialized",
            details={"expected": signed, "got": got, "reserialized": fallback},
        )
    raise CheckFailed(
        f"sha256 of the exact {name} bytes is {got}, signed text says {signed}",
        reason="hash_mismatch",
        details={"expected": signed, "got": got},
    )


@check("request.hash", "sha256 of the exact request bytes equals the signed request hash", needs=("signature.valid",))
def request_hash(f: Facts, a: Appraisal) -> Passed:
    return _hash_rule(f, "request", f.signature.request, f.signature.signature.get().signed.request_hash)


@check(
    "response.hash", "sha256 of the exact response bytes equals the signed response hash", needs=("signature.valid",)
)
def response_hash(f: Facts, a: Appraisal) -> Passed:
    return _hash_rule(f, "response", f.signature.response, f.signature.signature.get().signed.response_hash)
