"""Deterministic keys, serials and byte strings derived from a world seed and a label.

Everything the simulator signs is reproducible: EC keys are ``derive_private_key`` of a hashed
scalar, signatures use RFC 6979 deterministic ECDSA (RSA PKCS#1 v1.5 is deterministic anyway). Two
processes that build a world from the same seed therefore hold byte-identical trust anchors.
Test keys only: a seed is a password-grade secret at best.
"""

from __future__ import annotations

import hashlib
from math import gcd

from cryptography.hazmat.primitives.asymmetric import ec, rsa

_P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P384_N = int("ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973", 16)


def derive(seed: bytes, label: str, n: int = 32) -> bytes:
    """``n`` pseudo-random bytes for ``label`` (SHAKE-256 of seed ‖ 0 ‖ label)."""
    return hashlib.shake_256(seed + b"\0" + label.encode()).digest(n)


def ec_key(seed: bytes, label: str, curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
    order = _P384_N if isinstance(curve, ec.SECP384R1) else _P256_N
    scalar = int.from_bytes(derive(seed, "ec/" + label, 64), "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, curve)


def p256(seed: bytes, label: str) -> ec.EllipticCurvePrivateKey:
    return ec_key(seed, label, ec.SECP256R1())


def p384(seed: bytes, label: str) -> ec.EllipticCurvePrivateKey:
    return ec_key(seed, label, ec.SECP384R1())


def serial(seed: bytes, label: str, n: int = 20) -> int:
    """A positive certificate serial of at most ``n`` bytes (RFC 5280: ≤ 20 octets)."""
    raw = bytearray(derive(seed, "serial/" + label, n))
    raw[0] = (raw[0] & 0x7F) | 0x40  # positive, full length
    return int.from_bytes(raw, "big")


def fixed_rsa_key() -> rsa.RSAPrivateKey:
    """The simulator's one fixed key: RSA-2048 (e = 65537) for the NRAS intermediate, like NVIDIA's.

    Searching 1024-bit primes from a seed costs ~0.8 s in pure Python, so every world shares this
    published TEST key. The intermediate certificate (the pinned anchor) still differs per seed: its
    issuer key and serial are seeded, so one world's JWKS never passes another world's pin.
    """
    p, q, e = _RSA_P, _RSA_Q, 65537
    d = pow(e, -1, (p - 1) * (q - 1) // gcd(p - 1, q - 1))
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q))
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)  # a known-good constant key


# A throw-away test key generated for the simulator; it protects nothing.
_RSA_P = int(
    "fd9ad737835ce5523d606578a6100d6823c280df6e5031513c6e5ab9c98ed8c1c861f4e4f3a64b1a1e0dff252d1fe09c"
    "4a37b934e477f90da37f7c5b653119a364a99c24922babba3104f56656ebec5588e02d2a75cf4a1883c635ebff6fb660"
    "7e733e49a27399769be75c99e767a15ae7c73e4158dfa35d7042c7529e2dbecd",
    16,
)
_RSA_Q = int(
    "c3768c835dc95c9a5f6eb56b423b6512d5f75f3c84aeabd23ad9d4e32be8bd770e0dcae839e2aa45a29e8bfa64480377"
    "c4488bed13435ec286d5b71b4aa83656a43c3762f5ad5095acab1030ec69205f0505915b9ded9d99b77aa8a8a8f56034"
    "15cb4d396da2ca502c902d48e8aae506929a913f0eccefee65af53aa79d634f1",
    16,
)
