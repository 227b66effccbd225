"""The response signature: ``GET /v1/signature/{id}`` (redpill-protocol.md §2).

Body ``{text, signature, signing_address, signing_algo?, signature_kind?, api_version?, receipt?}``;
missing ``signing_algo`` means ecdsa. ``text`` is ``req_hash:resp_hash`` or
``model:req_hash:resp_hash`` (§2.4: parsed with ``rsplit(":", 2)``, the model prefix is
informational). Schemes:

- ``ecdsa``: secp256k1 EIP-191 personal_sign over the UTF-8 text, 65 bytes ``r||s||v`` hex, the
  signer an Ethereum address compared case-insensitively (§2.1);
- ``ed25519``: 64 bytes hex (no 0x) over the UTF-8 text; the address is the raw 32-byte key (§2.2).

Anything else is unverifiable (§2.3).
"""

from __future__ import annotations

import hmac
import re
import sys
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eth_account import Account
from eth_account.messages import encode_defunct

from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate
from verifier.evidence.json_object import load_object

# py_ecc, imported by eth-account, raises the interpreter's recursion limit to 100000 at import. With it,
# json.loads of deeply nested untrusted input ("[" * 100000) overflows the C stack — a segfault of the
# service — instead of raising RecursionError. Put the default back (we never use py_ecc's recursion).
sys.setrecursionlimit(min(sys.getrecursionlimit(), 1000))

ALGOS = ("ecdsa", "ed25519")
_HASH = re.compile(r"[0-9a-f]{64}", re.ASCII)
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+", re.ASCII)
_MAX_TEXT = 4096


@dataclass(frozen=True, slots=True)
class SignedText:
    model: str | None  # 3-part text only; informational (gateways rewrite model names, §2.4)
    request_hash: str
    response_hash: str


@dataclass(frozen=True, slots=True)
class ResponseSignature:
    text: str
    signature: str
    signing_address: str
    signing_algo: str
    signed: SignedText
    kind: str | None = None  # NEAR cloud-api: "gateway" | "provider_tee"


def parse_signed_text(text: str) -> SignedText:
    parts = text.rsplit(":", 2)
    if len(parts) == 2:
        model, (req, resp) = None, parts
    elif len(parts) == 3 and parts[0]:
        model, req, resp = parts
    else:
        raise EvidenceError(f"signed text {text[:120]!r}: expected req_hash:resp_hash or model:req_hash:resp_hash",
                            reason="signed_text_malformed")
    for name, value in (("request", req), ("response", resp)):
        if not _HASH.fullmatch(value):
            raise EvidenceError(f"signed text: {name} hash {value[:80]!r} is not 64 lowercase hex characters",
                                reason="signed_text_malformed", details={"got": value[:80]})
    return SignedText(model=model, request_hash=req, response_hash=resp)


def _field(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise EvidenceError(f"signature: {key}: got {value!r:.80}, expected a non-empty string")
    return value


def parse_signature(raw: bytes | str | dict[str, Any]) -> ResponseSignature:
    body = raw if isinstance(raw, dict) else load_object(raw, "signature")
    text = _field(body, "text")
    if len(text) > _MAX_TEXT:
        raise EvidenceError(f"signature: text is {len(text)} characters, expected at most {_MAX_TEXT}", reason="signed_text_malformed")
    algo = body.get("signing_algo", "ecdsa")
    if not isinstance(algo, str):
        raise EvidenceError(f"signature: signing_algo: got {algo!r:.40}, expected a string")
    kind = body.get("signature_kind")
    return ResponseSignature(
        text=text,
        signature=_field(body, "signature"),
        signing_address=_field(body, "signing_address"),
        signing_algo=algo.lower(),
        signed=parse_signed_text(text),
        kind=kind if isinstance(kind, str) else None,
    )


def normalize_signer(signing_algo: str, signing_address: str) -> str:
    """The canonical form signers are compared in: ecdsa ``0x`` + 40 lowercase hex; ed25519 64 lowercase hex."""
    algo = str(signing_algo).lower()
    if algo not in ALGOS:
        raise EvidenceError(f"signing_algo {str(signing_algo)[:40]!r}: expected one of {', '.join(ALGOS)}",
                            reason="unsupported_signing_algo")
    s = str(signing_address).strip()
    body = s[2:] if s[:2] in ("0x", "0X") else s
    want = 20 if algo == "ecdsa" else 32
    if not _HEX.fullmatch(body) or len(body) != 2 * want:
        raise EvidenceError(f"{algo} signing_address {s[:80]!r}: expected {want} bytes as hex",
                            details={"got": s[:80]})
    return ("0x" if algo == "ecdsa" else "") + body.lower()


def verify_signature(sig: ResponseSignature) -> str:
    """Verify ``sig`` over its exact text; returns the normalized signer. CheckFailed when it does not verify."""
    if sig.signing_algo not in ALGOS:
        raise Indeterminate(f"signing_algo {sig.signing_algo[:40]!r} has no known implementation (§2.3)",
                            reason="unsupported_signing_algo")
    claimed = normalize_signer(sig.signing_algo, sig.signing_address)
    if sig.signing_algo == "ecdsa":
        return _verify_ecdsa(sig, claimed)
    return _verify_ed25519(sig, claimed)


def _signature_bytes(sig: ResponseSignature, n: int) -> bytes:
    s = sig.signature.strip()
    body = s[2:] if s[:2] in ("0x", "0X") else s
    if not _HEX.fullmatch(body) or len(body) != 2 * n:
        raise CheckFailed(f"{sig.signing_algo} signature: expected {n} bytes as hex, got {len(body)} characters",
                          reason="signature_invalid", details={"got": s[:140]})
    return bytes.fromhex(body)


def _verify_ecdsa(sig: ResponseSignature, claimed: str) -> str:
    raw = _signature_bytes(sig, 65)
    try:
        recovered = str(Account.recover_message(encode_defunct(text=sig.text), signature=raw)).lower()
    except Exception as exc:  # eth-account raises several types (ValueError, BadSignature, ...) for bad r/s/v
        raise CheckFailed(f"ecdsa signature does not recover: {str(exc)[:120]}", reason="signature_invalid") from None
    if not hmac.compare_digest(recovered.encode(), claimed.encode()):
        raise CheckFailed(f"ecdsa signature recovers to {recovered}, signing_address is {claimed}", reason="signer_mismatch",
                          details={"expected": claimed, "got": recovered})
    return claimed


def _verify_ed25519(sig: ResponseSignature, claimed: str) -> str:
    raw = _signature_bytes(sig, 64)
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(claimed)).verify(raw, sig.text.encode("utf-8"))
    except (InvalidSignature, ValueError):
        raise CheckFailed(f"ed25519 signature does not verify for key {claimed}", reason="signature_invalid",
                          details={"signer": claimed}) from None
    return claimed
