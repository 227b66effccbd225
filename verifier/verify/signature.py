"""Cryptographic verification of a response signature (docs/protocol.md §2): EIP-191 ecdsa and ed25519.

``ecdsa`` is EIP-191 version 0x45 "personal_sign" (eips.ethereum.org/EIPS/eip-191): the digest is
``keccak256(b"\\x19Ethereum Signed Message:\\n" + decimal byte length + message)`` and the signature
65 bytes ``r(32) ‖ s(32) ‖ v(1)``. ``v`` is 27/28 (recovery id + 27, what every producer writes) or
the bare recovery id 0/1; anything else is rejected, including the EIP-155 ``chain_id * 2 + 35``
forms that eth-account also accepts (they belong to transactions, never to a personal_sign).
Like eth-account, and like the ``ecrecover`` precompile, a high ``s`` (> n/2) recovers (the
malleable twin ``(r, n - s, v ^ 1)`` names the same key: no one gains a signature over other text);
``r`` and ``s`` must lie in [1, n - 1]. The key is recovered with libsecp256k1 (coincurve) from the
digest, and the signer is its address. ``ed25519`` verifies with ``cryptography`` (RFC 8032).
"""

from __future__ import annotations

import hmac
import re

from coincurve import PublicKey
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verifier.core.errors import CheckFailed, Indeterminate
from verifier.evidence.eth_address import address_of_public_key, keccak256
from verifier.evidence.signature import ALGOS, ResponseSignature, normalize_signer

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n"
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+", re.ASCII)


def verify_signature(sig: ResponseSignature) -> str:
    """Verify ``sig`` over its exact text; returns the normalized signer. CheckFailed when it does not verify."""
    if sig.signing_algo not in ALGOS:
        raise Indeterminate(
            f"signing_algo {sig.signing_algo[:40]!r} has no known implementation (§2.3)",
            reason="unsupported_signing_algo",
        )
    claimed = normalize_signer(sig.signing_algo, sig.signing_address)
    if sig.signing_algo == "ecdsa":
        return _verify_ecdsa(sig, claimed)
    return _verify_ed25519(sig, claimed)


def eip191_digest(message: bytes) -> bytes:
    """The 32-byte digest an EIP-191 personal_sign signs for ``message``."""
    return keccak256(_EIP191_PREFIX + str(len(message)).encode("ascii") + message)


def recover_eip191(message: bytes, signature: bytes) -> bytes:
    """The 20-byte address whose key made the 65-byte ``r ‖ s ‖ v`` personal_sign ``signature`` over ``message``.

    CheckFailed (signature_invalid) when ``signature`` is not such a signature or recovers no key.
    """
    if len(signature) != 65:
        raise CheckFailed(
            f"ecdsa signature: expected 65 bytes r||s||v, got {len(signature)}", reason="signature_invalid"
        )
    v = signature[64]
    if v not in (0, 1, 27, 28):
        raise CheckFailed(
            f"ecdsa signature: v is {v}, expected 27 or 28 (or 0 or 1)", reason="signature_invalid", details={"got": v}
        )
    for name, value in (("r", signature[:32]), ("s", signature[32:64])):
        if not 0 < int.from_bytes(value, "big") < SECP256K1_N:
            raise CheckFailed(
                f"ecdsa signature: {name} is not in [1, n-1]", reason="signature_invalid", details={"got": value.hex()}
            )
    try:
        key = PublicKey.from_signature_and_message(
            signature[:64] + bytes([v % 27]), eip191_digest(message), hasher=None
        )
    except ValueError:
        raise CheckFailed("ecdsa signature recovers no public key", reason="signature_invalid") from None
    return address_of_public_key(key.format(compressed=False)[1:])


def _signature_bytes(sig: ResponseSignature, n: int) -> bytes:
    s = sig.signature.strip()
    body = s[2:] if s[:2] in ("0x", "0X") else s
    if not _HEX.fullmatch(body) or len(body) != 2 * n:
        raise CheckFailed(
            f"{sig.signing_algo} signature: expected {n} bytes as hex, got {len(body)} characters",
            reason="signature_invalid",
            details={"got": s[:140]},
        )
    return bytes.fromhex(body)


def _verify_ecdsa(sig: ResponseSignature, claimed: str) -> str:
    recovered = "0x" + recover_eip191(sig.text.encode("utf-8"), _signature_bytes(sig, 65)).hex()
    if not hmac.compare_digest(recovered.encode(), claimed.encode()):
        raise CheckFailed(
            f"ecdsa signature recovers to {recovered}, signing_address is {claimed}",
            reason="signer_mismatch",
            details={"expected": claimed, "got": recovered},
        )
    return claimed


def _verify_ed25519(sig: ResponseSignature, claimed: str) -> str:
    raw = _signature_bytes(sig, 64)
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(claimed)).verify(raw, sig.text.encode("utf-8"))
    except (InvalidSignature, ValueError):
        raise CheckFailed(
            f"ed25519 signature does not verify for key {claimed}",
            reason="signature_invalid",
            details={"signer": claimed},
        ) from None
    return claimed
