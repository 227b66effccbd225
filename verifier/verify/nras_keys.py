"""NRAS signing keys: a JWKS key is trusted only if its x5c chains to the pinned NRAS intermediate.

``x5c[1]`` must be the pinned intermediate byte for byte, ``x5c[0]`` → ``x5c[1]`` must pass RFC 5280 path
validation at the verification time with that intermediate as trust anchor (``verify.x509_path``), and the JWK
must be ``x5c[0]``'s P-384 key. A key whose chain validated is remembered (``memo``) with its validity window,
which every use judges again at its own time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.core.trust import TrustAnchors
from verifier.evidence.certificate import load_der, public_key
from verifier.verify.memo import Memo
from verifier.verify.x509_path import validate_path


@dataclass(frozen=True, slots=True)
class TrustedKey:
    public_key: ec.EllipticCurvePublicKey
    window: tuple[int, int]  # leaf ∩ intermediate validity


def jwks_by_kid(jwks: object) -> dict[str, Mapping[str, Any]]:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise EvidenceError('the NRAS JWKS is not {"keys": [...]}')
    return {k["kid"]: k for k in jwks["keys"] if isinstance(k, dict) and isinstance(k.get("kid"), str)}


def trusted_key(kid: str, jwk: Mapping[str, Any], anchors: TrustAnchors, now: int, memo: Memo | None) -> TrustedKey:
    """A JWK whose chain validated once is remembered with its validity window, still judged at each ``now``."""
    ident = hashlib.sha256(
        json.dumps(jwk, sort_keys=True, default=str).encode() + anchors.nras_intermediate_der
    ).digest()
    key: TrustedKey | None = memo.get(ident) if memo is not None else None
    if key is None:
        key = _check_jwk(kid, jwk, anchors, now)
        if memo is not None:
            memo.put(ident, key)
    lo, hi = key.window
    if not lo <= now <= hi:  # as OpenSSL judges it on a cache miss: the token cannot outlive its signing certificate
        raise CheckFailed(
            f"NRAS JWKS key {kid}: its certificate chain is not valid at {now} (valid {lo}..{hi})",
            reason="nras_token_expired",
            details={"kid": kid, "now": now, "not_before": lo, "not_after": hi},
        )
    return key


def _check_jwk(kid: str, jwk: Mapping[str, Any], anchors: TrustAnchors, now: int) -> TrustedKey:
    def bad(why: str) -> CheckFailed:
        return CheckFailed(f"NRAS JWKS key {kid}: {why}", reason="nras_token_invalid", details={"kid": kid})

    x5c = jwk.get("x5c")
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-384":
        raise bad("not an EC P-384 key")
    if not isinstance(x5c, list) or len(x5c) < 2 or not all(isinstance(c, str) for c in x5c):
        raise bad("no x5c chain")
    try:
        ders = [base64.b64decode(c, validate=True) for c in x5c[:2]]
        leaf, inter = (load_der(d, f"NRAS JWKS key {kid} x5c[{i}]") for i, d in enumerate(ders))
        jwk_key = ECAlgorithm.from_jwk(dict(jwk))
    except (binascii.Error, ValueError, TypeError, EvidenceError, jwt.InvalidKeyError):
        raise bad("x5c or x/y do not decode") from None
    if not hmac.compare_digest(ders[1], anchors.nras_intermediate_der):
        raise bad("x5c[1] is not the pinned NRAS intermediate")
    try:
        pub = public_key(leaf, f"NRAS JWKS key {kid} x5c[0]")
    except EvidenceError as exc:
        raise bad(exc.message) from None
    if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp384r1":
        raise bad("x5c[0] key is not P-384")
    if not isinstance(jwk_key, ec.EllipticCurvePublicKey) or jwk_key.public_numbers() != pub.public_numbers():
        raise bad("the JWK x/y differ from x5c[0]'s key")
    validate_path(
        leaf,
        [],
        inter,
        now=now,
        partial=True,
        reason="nras_token_invalid",
        expired_reason="nras_token_expired",
        what=f"NRAS JWKS key {kid} x5c",
    )
    window = (
        max(_ts(leaf.not_valid_before_utc), _ts(inter.not_valid_before_utc)),
        min(_ts(leaf.not_valid_after_utc), _ts(inter.not_valid_after_utc)),
    )
    return TrustedKey(pub, window)


def _ts(dt: datetime) -> int:
    return int(dt.timestamp())
