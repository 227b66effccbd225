"""EAT Attestation Results (draft-ietf-rats-ear-04, JWT form) for recorded verdicts, signed EdDSA with PyJWT.

Claims: ``eat_profile`` ``tag:ietf.org,2026:rats/ear#04``, ``iat``, ``ear_verifier_id`` {developer, build},
``eat_nonce`` (the verdict's nonce, base64url), and ``submods``: ``signature`` (the response signature and the
signing key's binding), one ``td:<attestation path>`` per attested TD (the gateway, a model behind it) and one
``gpu:<index>`` per attested GPU. Each submod has ``ear_status``, ``ear_trustworthiness_vector`` (AR4SI claim values
taken from the verdict's ``trust_vector``, the aspects that submod speaks for) and ``ear_appraisal_policy_ids``
(``policy:<id>@sha256:<hex>`` and, when reference values were used, ``refs:<id>@sha256:<hex>``). Extension claims,
in the EAR "private" style: ``x-verifier-verdict-id``, ``x-verifier-verdict-status``, ``x-verifier-log-index``.

A submod's status is its worst tier (contraindicated, then none, then warning, then affirming); a verdict that did
not pass never carries an affirming submod: it is lowered to ``none``. The key's ``kid`` is its RFC 7638 JWK
thumbprint; the JWKS publishes every key in the key file, retired ones too.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from verifier import __version__

EAR_PROFILE = "tag:ietf.org,2026:rats/ear#04"
DEVELOPER = "https://github.com/attestation-verifier"
TIER_ORDER = ("contraindicated", "none", "warning", "affirming")  # worst first
TIER_OF_VALUE = {0: "none", 2: "affirming", 32: "warning", 96: "contraindicated"}
_SIGNATURE_ASPECTS = ("instance-identity", "sourced-data")
_TD_ASPECTS = ("hardware", "configuration", "executables", "runtime-opaque", "instance-identity")
_GPU_ASPECTS = ("hardware",)
EXT_VERDICT_ID, EXT_STATUS, EXT_LOG_INDEX = "x-verifier-verdict-id", "x-verifier-verdict-status", "x-verifier-log-index"


class EarError(ValueError):
    """An EAR that does not verify, or a JWKS that cannot be used."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    x = _b64url(key.public_bytes(Encoding.Raw, PublicFormat.Raw))
    # RFC 7638 thumbprint: the required members in lexicographic order, no whitespace
    thumb = hashlib.sha256(
        json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":")).encode()
    ).digest()
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": _b64url(thumb), "alg": "EdDSA", "use": "sig"}


def jwks(keys: tuple[Ed25519PrivateKey, ...]) -> dict[str, Any]:
    """Every key's public JWK, newest (the signing key) first."""
    return {"keys": [public_jwk(k.public_key()) for k in reversed(keys)]}


def _vector(trust_vector: dict[str, Any], aspects: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for aspect in aspects:
        entry = trust_vector.get(aspect)
        value = entry.get("value") if isinstance(entry, dict) else None
        out[aspect] = value if isinstance(value, int) and value in TIER_OF_VALUE else 0
    return out


def _status(vector: dict[str, int], verdict_status: str) -> str:
    tiers = {TIER_OF_VALUE[v] for v in vector.values()} or {"none"}
    worst = next(t for t in TIER_ORDER if t in tiers)
    return "none" if worst == "affirming" and verdict_status != "pass" else worst


def _policy_ids(verdict: dict[str, Any]) -> list[str]:
    policy = verdict.get("policy") or {}
    ids = [f"policy:{policy.get('id')}@sha256:{policy.get('sha256')}"]
    refs = verdict.get("refs")
    if isinstance(refs, dict) and refs.get("sha256"):
        ids.append(f"refs:{refs.get('id')}@sha256:{refs.get('sha256')}")
    return ids


def ear_claims(verdict: dict[str, Any], *, log_index: int | None, iat: int) -> dict[str, Any]:
    """The EAR claims-set of a recorded verdict (its JSON as stored)."""
    status = str(verdict.get("status"))
    vector = verdict.get("trust_vector") or {}
    policy_ids = _policy_ids(verdict)
    attestation = verdict.get("attestation") or {}
    claims_gpus = (verdict.get("claims") or {}).get("gpus") or []

    def submod(aspects: tuple[str, ...]) -> dict[str, Any]:
        v = _vector(vector, aspects)
        return {
            "ear_status": _status(v, status),
            "ear_trustworthiness_vector": v,
            "ear_appraisal_policy_ids": policy_ids,
        }

    submods = {"signature": submod(_SIGNATURE_ASPECTS)}
    for path in [*(attestation.get("paths") or []), *(attestation.get("hops") or [])]:
        submods[f"td:{path}"] = submod(_TD_ASPECTS)
    for i, _gpu in enumerate(claims_gpus):
        submods[f"gpu:{i}"] = submod(_GPU_ASPECTS)
    claims: dict[str, Any] = {
        "eat_profile": EAR_PROFILE,
        "iat": iat,
        "ear_verifier_id": {"developer": DEVELOPER, "build": f"verifier {__version__}"},
        "submods": submods,
        EXT_VERDICT_ID: verdict.get("id"),
        EXT_STATUS: status,
        EXT_LOG_INDEX: log_index,
    }
    nonce = (verdict.get("nonce") or {}).get("value")
    if isinstance(nonce, str):
        try:
            claims["eat_nonce"] = _b64url(bytes.fromhex(nonce))
        except ValueError:
            claims["eat_nonce"] = nonce
    return claims


def sign_ear(claims: dict[str, Any], key: Ed25519PrivateKey) -> str:
    kid = public_jwk(key.public_key())["kid"]
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": "JWT"})


def verify_ear(token: str, jwks_doc: dict[str, Any]) -> dict[str, Any]:
    """The claims of an EAR signed by a key of ``jwks_doc`` (by its ``kid``), with the EAR profile. EarError
    otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise EarError(f"not a JWT: {exc}") from None
    if header.get("alg") != "EdDSA":
        raise EarError(f"alg {header.get('alg')!r}: expected EdDSA")
    keys = jwks_doc.get("keys") if isinstance(jwks_doc, dict) else None  # type: ignore[redundant-expr]  # untrusted
    if not isinstance(keys, list):
        raise EarError("JWKS: expected an object with a keys array")
    match = [k for k in keys if isinstance(k, dict) and k.get("kid") == header.get("kid")]
    if not match:
        raise EarError(f"no key with kid {str(header.get('kid'))[:60]!r} in the JWKS")
    try:
        public = jwt.PyJWK(match[0], algorithm="EdDSA").key
        claims: dict[str, Any] = jwt.decode(token, public, algorithms=["EdDSA"], options={"require": ["iat"]})
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:  # a malformed JWK as much as a bad signature
        raise EarError(f"the EAR does not verify: {exc}") from None
    if claims.get("eat_profile") != EAR_PROFILE:
        raise EarError(f"eat_profile {str(claims.get('eat_profile'))[:60]!r}: expected {EAR_PROFILE}")
    if not isinstance(claims.get("submods"), dict) or not claims["submods"]:
        raise EarError("the EAR has no submods")
    return claims
