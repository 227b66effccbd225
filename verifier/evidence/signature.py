"""The response signature: ``GET /v1/signature/{id}`` (docs/protocol.md §2). Parsing only.

Body ``{text, signature, signing_address, signing_algo?, signature_kind?, api_version?, receipt?}``;
missing ``signing_algo`` means ecdsa. ``text`` is ``req_hash:resp_hash`` or
``model:req_hash:resp_hash`` (§2.4: parsed with ``rsplit(":", 2)``, the model prefix is
informational). Schemes:

- ``ecdsa``: secp256k1 EIP-191 personal_sign over the UTF-8 text, 65 bytes ``r||s||v`` hex, the
  signer an Ethereum address compared case-insensitively (§2.1);
- ``ed25519``: 64 bytes hex (no 0x) over the UTF-8 text; the address is the raw 32-byte key (§2.2).

Anything else is unverifiable (§2.3). The cryptographic check is ``verifier.verify.signature``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from verifier.core.errors import EvidenceError
from verifier.evidence.eth_address import parse_address
from verifier.evidence.json_object import load_object

ALGOS = ("ecdsa", "ed25519")
_HASH = re.compile(r"[0-9a-f]{64}", re.ASCII)
_ED25519_KEY = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
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
        raise EvidenceError(
            f"signed text {text[:120]!r}: expected req_hash:resp_hash or model:req_hash:resp_hash",
            reason="signed_text_malformed",
        )
    for name, value in (("request", req), ("response", resp)):
        if not _HASH.fullmatch(value):
            raise EvidenceError(
                f"signed text: {name} hash {value[:80]!r} is not 64 lowercase hex characters",
                reason="signed_text_malformed",
                details={"got": value[:80]},
            )
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
        raise EvidenceError(
            f"signature: text is {len(text)} characters, expected at most {_MAX_TEXT}", reason="signed_text_malformed"
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise EvidenceError(
                "signature: text is not encodable as UTF-8 (a lone surrogate)", reason="signed_text_malformed"
            ) from None
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
        raise EvidenceError(
            f"signing_algo {str(signing_algo)[:40]!r}: expected one of {', '.join(ALGOS)}",
            reason="unsupported_signing_algo",
        )
    s = str(signing_address).strip()
    if algo == "ecdsa":
        return "0x" + parse_address(s).hex()
    body = s[2:] if s[:2] in ("0x", "0X") else s
    if not _ED25519_KEY.fullmatch(body):
        raise EvidenceError(f"ed25519 signing_address {s[:80]!r}: expected 32 bytes as hex", details={"got": s[:80]})
    return body.lower()
