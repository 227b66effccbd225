"""TDX report_data bindings (docs/protocol.md §4). ``report_data`` must come from the QUOTE BYTES
(``TdxQuote.report.report_data``), never from a JSON ``report_data`` field. All compares are constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from verifier.core.errors import CheckFailed, EvidenceError

_HEX_RE = re.compile(r"[0-9a-fA-F]*", re.ASCII)
_ADDR_LEN = {"ecdsa": 20, "ed25519": 32}  # ecdsa: Ethereum address; ed25519: raw public key


def _report_data(report_data: object) -> bytes:
    if not isinstance(report_data, (bytes, bytearray)) or len(report_data) != 64:
        n = len(report_data) if isinstance(report_data, (bytes, bytearray)) else type(report_data).__name__
        raise EvidenceError(f"report_data: expected 64 bytes, got {n}")
    return bytes(report_data)


def _nonce(nonce: object) -> bytes:
    if not isinstance(nonce, (bytes, bytearray)) or len(nonce) != 32:
        raise EvidenceError("nonce: expected 32 bytes")
    return bytes(nonce)


def _hex(value: object, what: str, n: int) -> bytes:
    s = value.removeprefix("0x").removeprefix("0X") if isinstance(value, str) else None
    if s is None or not _HEX_RE.fullmatch(s) or len(s) != 2 * n:
        raise EvidenceError(f"{what}: expected {n} bytes as hex (optional 0x), got {str(value)[:80]!r}")
    return bytes.fromhex(s)


def _ascii(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not value.isascii():
        raise EvidenceError(f"{what}: expected an ASCII string")
    return value.encode("ascii")


def check_binds_signer(
    report_data: bytes, *, signing_algo: str, signing_address: str, tls_cert_fingerprint: str | None = None
) -> str:
    """report_data[0:32] binds the signer; returns the layout that matched (§4 table rows 1-3):
    "padded_address" (ecdsa: address || 12 zero bytes), "ed25519_key" (the 32-byte key), or, when a TLS
    fingerprint is given, "tls_fingerprint" (sha256(address_bytes || fingerprint_bytes))."""
    rd = _report_data(report_data)
    algo = str(signing_algo).lower()
    if algo not in _ADDR_LEN:
        raise CheckFailed(
            f"signing_algo {str(signing_algo)[:40]!r} is neither ecdsa nor ed25519", reason="unsupported_signing_algo"
        )
    addr = _hex(signing_address, f"{algo} signing_address", _ADDR_LEN[algo])
    candidates: dict[str, bytes] = {}
    if tls_cert_fingerprint is not None:
        fp = _hex(tls_cert_fingerprint, "tls_cert_fingerprint", 32)
        candidates["tls_fingerprint"] = hashlib.sha256(addr + fp).digest()
    if algo == "ecdsa":
        candidates["padded_address"] = addr + bytes(12)
    else:
        candidates["ed25519_key"] = addr
    matched = [name for name, want in candidates.items() if hmac.compare_digest(want, rd[:32])]
    if matched:
        return matched[0]
    first = next(iter(candidates.values()))
    raise CheckFailed(
        f"report_data[0:32] does not bind the {algo} signer under any of: {', '.join(candidates)}",
        reason="report_data_signer_mismatch",
        details={
            "expected": first.hex(),
            "got": rd[:32].hex(),
            "candidates": {k: v.hex() for k, v in candidates.items()},
        },
    )


def binds_tls_key(report_data: bytes, *, signing_algo: str, signing_address: str, spki_sha256: str) -> bool:
    """True when report_data[0:32] == sha256(address_bytes || fingerprint_bytes) (§4 TLS-bound row): the quote
    binds the TLS key whose SPKI hashes to ``spki_sha256`` together with the signer. Constant-time compare."""
    rd = _report_data(report_data)
    algo = str(signing_algo).lower()
    if algo not in _ADDR_LEN:
        raise CheckFailed(
            f"signing_algo {str(signing_algo)[:40]!r} is neither ecdsa nor ed25519", reason="unsupported_signing_algo"
        )
    addr = _hex(signing_address, f"{algo} signing_address", _ADDR_LEN[algo])
    fp = _hex(spki_sha256, "TLS SPKI fingerprint", 32)
    return hmac.compare_digest(hashlib.sha256(addr + fp).digest(), rd[:32])


def check_binds_nonce(report_data: bytes, nonce: bytes) -> None:
    """report_data[32:64] == our 32-byte nonce (§4: raw nonce in the second half)."""
    rd, nonce = _report_data(report_data), _nonce(nonce)
    if not hmac.compare_digest(rd[32:], nonce):
        raise CheckFailed(
            "report_data[32:64] is not our nonce",
            reason="nonce_mismatch",
            details={"expected": nonce.hex(), "got": rd[32:].hex()},
        )


def check_chutes_binding(report_data: bytes, *, nonce_hex: str, e2e_pubkey_b64: str) -> None:
    """Chutes: report_data[0:32] == sha256(ascii(nonce_hex) || ascii(e2e_pubkey_b64)), the strings exactly as
    in the report (§4 Chutes row). Binds the instance's E2E key to that nonce; whether the nonce is OURS is a
    separate check (the redpill gateway substitutes its own nonce, §3.4)."""
    rd = _report_data(report_data)
    want = hashlib.sha256(_ascii(nonce_hex, "nonce") + _ascii(e2e_pubkey_b64, "e2e_pubkey")).digest()
    if not hmac.compare_digest(want, rd[:32]):
        raise CheckFailed(
            "report_data[0:32] is not sha256(nonce || e2e_pubkey)",
            reason="report_data_signer_mismatch",
            details={"expected": want.hex(), "got": rd[:32].hex()},
        )


def tls_spki_fingerprint(cert_pem: bytes) -> str:
    """sha256 hex of the leaf (first) certificate's SubjectPublicKeyInfo DER (§4 tls row)."""
    try:
        certs = x509.load_pem_x509_certificates(bytes(cert_pem))
        spki = certs[0].public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, TypeError, IndexError, UnsupportedAlgorithm) as e:
        raise EvidenceError(f"TLS certificate: not a PEM certificate chain ({str(e)[:80]})") from None
    return hashlib.sha256(spki).hexdigest()
