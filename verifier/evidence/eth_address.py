"""Ethereum addresses: the keccak-256 of a secp256k1 public key, read from hex in any letter case.

The address of a key is the last 20 bytes of ``keccak256(X ‖ Y)``, its uncompressed point without
the ``04`` prefix (Ethereum Yellow Paper, appendix F). Producers write it EIP-55 mixed-case
(Python proxies) or lower-case (Rust ones); it is compared case-insensitively, as every verifier of
the protocol does (docs/protocol.md §2.1): the EIP-55 checksum guards against typing mistakes,
not forgery, so a mixed-case spelling that is not the checksum form is read like any other.
Keccak-256 is the original Keccak padding (not NIST SHA3-256): pycryptodome's ``Crypto.Hash.keccak``.
"""

from __future__ import annotations

import re

from verifier.core.errors import EvidenceError

_ADDRESS = re.compile(r"[0-9a-fA-F]{40}", re.ASCII)


def keccak256(data: bytes) -> bytes:
    # Imported on first use: pycryptodome's import costs ~25 ms (cffi parses its C declarations with
    # pycparser), which every command that imports the evidence parsers but verifies no ecdsa signature
    # (``verifier policy check``, ``verify-bundle --help``) would pay for nothing.
    from Crypto.Hash import keccak

    return keccak.new(digest_bits=256, data=data).digest()


def address_of_public_key(point: bytes) -> bytes:
    """The 20-byte address of a secp256k1 key given as its 64-byte ``X ‖ Y``."""
    if len(point) != 64:
        raise ValueError(f"expected the 64-byte X‖Y of a public key, got {len(point)} bytes")
    return keccak256(point)[12:]


def parse_address(text: str) -> bytes:
    """The 20 bytes of ``text``: 40 hex digits in any case after an optional ``0x``."""
    body = text[2:] if text[:2] in ("0x", "0X") else text
    if not _ADDRESS.fullmatch(body):
        raise EvidenceError(f"ecdsa address {text[:80]!r}: expected 20 bytes as hex", details={"got": text[:80]})
    return bytes.fromhex(body)
