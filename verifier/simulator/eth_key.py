"""A gateway's secp256k1 signing key: EIP-191 personal_sign with libsecp256k1 (coincurve).

Signs the way the Python producers do (``Account.sign_message(encode_defunct(text=...))``,
docs/protocol.md §2.1): RFC 6979 deterministic nonces, low ``s``, ``v = recovery id + 27``, so
the bytes equal eth-account's for the same key and text. The digest is built here, independently of
the verifier's ``verify.signature``, so the simulator is a second implementation to test it against.
Addresses are written EIP-55 mixed-case (eips.ethereum.org/EIPS/eip-55), as Python producers do.
"""

from __future__ import annotations

from dataclasses import dataclass

from coincurve import PrivateKey

from verifier.evidence.eth_address import address_of_public_key, keccak256


@dataclass(frozen=True)
class EthKey:
    secret: bytes  # 32-byte secp256k1 scalar

    @property
    def public_key(self) -> bytes:
        """The 64-byte uncompressed point ``X ‖ Y`` (no ``04``)."""
        return PrivateKey(self.secret).public_key.format(compressed=False)[1:]

    @property
    def address(self) -> str:
        """``0x`` + the EIP-55 checksummed address, as Python producers report it."""
        return to_checksum_address(address_of_public_key(self.public_key))

    def personal_sign(self, text: str) -> bytes:
        """65 bytes ``r ‖ s ‖ v`` over EIP-191 ``"\\x19Ethereum Signed Message:\\n" + len + text`` (UTF-8)."""
        message = text.encode("utf-8")
        digest = keccak256(b"\x19Ethereum Signed Message:\n%d%s" % (len(message), message))
        rsv = PrivateKey(self.secret).sign_recoverable(digest, hasher=None)
        return rsv[:64] + bytes([rsv[64] + 27])


def to_checksum_address(address: bytes) -> str:
    """``0x`` + EIP-55 hex of a 20-byte address: letter i upper case iff nibble i of keccak256(lower hex) ≥ 8."""
    lower = address.hex()
    nibbles = keccak256(lower.encode()).hex()[: len(lower)]
    return "0x" + "".join(c.upper() if int(n, 16) >= 8 else c for c, n in zip(lower, nibbles, strict=True))
