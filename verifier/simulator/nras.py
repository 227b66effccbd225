"""A fake NVIDIA Remote Attestation Service: test signing PKI, JWKS, detached-EAT responses.

Mirrors ``fixtures/nvidia/*/nras_v3_response.json`` / ``nras_jwks.json``:
``NVIDIA Attestation Service CA`` (P-384) → ``... GPU Intermediate`` (RSA-2048, the pinned anchor)
→ ``... GPU GH100`` leaf (P-384) whose JWK carries ``x5c = [leaf, intermediate]``. A response is
``[["JWT", overall], {"GPU-0": device, ...}]``: ES384 compact JWS with header ``{"kid","alg"}``,
``iat = nbf``, ``exp = iat + 3600``, ``eat_nonce``, and ``submods["GPU-n"] = ["DIGEST", ["SHA-256",
sha256(ascii device JWS)]]``. Like the real service it appraises the evidence it is sent: a GPU
whose SPDM nonce differs from the request nonce gets ``x-nvidia-error-details`` 4010
NONCE_NOT_MATCHING and the overall result is false (``fail=True`` forces that for every GPU). Each
device token names its GPU as NRAS does: ``ueid`` = the leaf serial (decimal), ``hwmodel`` = "GH100".

``CHAIN_FAULTS`` (``build_nras_pki(seed, fault=...)``) makes the signing PKI violate RFC 5280 while
the intermediate stays the one the world pins, so only path validation can catch it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from verifier.evidence.spdm import parse_spdm
from verifier.simulator import _cert, keys

ISSUER = "https://nras.simulator.invalid"
TOKEN_LIFETIME = 3600
_ORG = "NVIDIA Corporation (simulator)"

CHAIN_FAULTS = {
    "intermediate_not_ca": "the (pinned) GPU intermediate says basicConstraints CA:FALSE",
    "intermediate_no_cert_sign": "the (pinned) GPU intermediate's keyUsage lacks keyCertSign",
    "leaf_expired": "the signing leaf was valid 2025-12-08..2025-12-10 only",
    "leaf_no_digital_signature": "the signing leaf's keyUsage is keyEncipherment only (it may not sign tokens)",
}


@dataclass(frozen=True)
class NrasPki:
    ca: x509.Certificate
    intermediate: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate
    kid: str

    @property
    def intermediate_der(self) -> bytes:
        return _cert.der(self.intermediate)

    def jwks(self) -> dict[str, Any]:
        """``GET /.well-known/jwks.json``: one EC P-384 key, fields in NRAS order (kty, crv, kid, x5c, x, y)."""
        n = self.leaf_key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "EC",
                    "crv": "P-384",
                    "kid": self.kid,
                    "x5c": [
                        base64.b64encode(_cert.der(self.leaf)).decode(),
                        base64.b64encode(self.intermediate_der).decode(),
                    ],
                    "x": _b64url(n.x.to_bytes(48, "big")),
                    "y": _b64url(n.y.to_bytes(48, "big")),
                }
            ]
        }


def build_nras_pki(seed: bytes, *, fault: str | None = None) -> NrasPki:
    ca_key, leaf_key = keys.p384(seed, "nras/ca"), keys.p384(seed, "nras/leaf")
    inter_key = keys.fixed_rsa_key()
    ca_pub, inter_pub, leaf_pub = ca_key.public_key(), inter_key.public_key(), leaf_key.public_key()
    ca_name = _cert.name(("C", "US"), ("O", _ORG), ("CN", "NVIDIA Attestation Service CA 001"))
    inter_name = _cert.name(("CN", "NVIDIA Attestation Service GPU Intermediate 004"), ("O", _ORG), ("C", "US"))
    if fault is not None and fault not in CHAIN_FAULTS:
        raise ValueError(f"unknown NRAS chain fault {fault!r}; known: {sorted(CHAIN_FAULTS)}")
    ca_exts = [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (_cert.key_usage(key_cert_sign=True, crl_sign=True), True),
    ]
    inter_exts = list(ca_exts)
    if fault == "intermediate_not_ca":
        inter_exts[0] = (x509.BasicConstraints(ca=False, path_length=None), True)
    elif fault == "intermediate_no_cert_sign":
        inter_exts[1] = (_cert.key_usage(crl_sign=True, digital_signature=True), True)
    ca = _cert.issue(
        subject=ca_name,
        issuer=ca_name,
        public_key=ca_pub,
        issuer_key=ca_key,
        serial=keys.serial(seed, "nras/ca"),
        not_before=_cert.utc(2025, 1, 1),
        not_after=_cert.utc(2055, 1, 1),
        hash_alg=hashes.SHA384(),
        extensions=[*ca_exts, (_cert.ski(ca_pub), False), (_cert.aki(ca_pub), False)],
    )
    aia = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier("http://ocsp.simulator.invalid")
            )
        ]
    )
    intermediate = _cert.issue(
        subject=inter_name,
        issuer=ca_name,
        public_key=inter_pub,
        issuer_key=ca_key,
        serial=keys.serial(seed, "nras/intermediate"),
        not_before=_cert.utc(2025, 12, 8),
        not_after=_cert.utc(2049, 12, 8),
        hash_alg=hashes.SHA384(),
        extensions=[
            *inter_exts,
            (_cert.crl_dp("http://crl.simulator.invalid/crl-nras/nv-nras-l1-root.crl"), False),
            (aia, False),
            (_cert.ski(inter_pub), False),
            (_cert.aki(ca_pub), False),
        ],
    )
    # Real leaves live ~48 h and rotate daily; the simulator's one leaf covers any test clock.
    usage = (
        _cert.key_usage(key_encipherment=True)
        if fault == "leaf_no_digital_signature"
        else _cert.key_usage(digital_signature=True, key_encipherment=True, key_agreement=True)
    )
    leaf = _cert.issue(
        subject=_cert.name(("C", "US"), ("O", _ORG), ("CN", "NVIDIA Attestation Service GPU GH100")),
        issuer=inter_name,
        public_key=leaf_pub,
        issuer_key=inter_key,
        serial=keys.serial(seed, "nras/leaf"),
        not_before=_cert.utc(2025, 12, 8),
        not_after=_cert.utc(2025, 12, 10) if fault == "leaf_expired" else _cert.utc(2049, 12, 8),
        hash_alg=hashes.SHA256(),
        extensions=[
            (usage, True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False),
            (_cert.ski(leaf_pub), False),
            (_cert.aki(inter_pub), False),
        ],
    )
    kid = f"nv-eat-kid-sim-20251208000000000-{uuid.UUID(bytes=keys.derive(seed, 'nras/kid', 16), version=4)}"
    return NrasPki(ca, intermediate, leaf_key, leaf, kid)


def attest(
    pki: NrasPki, request: str | bytes | dict[str, Any], *, now: int, fail: bool = False, issuer: str = ISSUER
) -> list[Any]:
    """``POST /v3/attest/gpu``: appraise the request (an ``nvidia_payload``) and return the detached EAT."""
    body = json.loads(request) if isinstance(request, str | bytes) else request
    nonce = body["nonce"].lower()
    std: dict[str, Any] = {"iss": issuer, "nbf": now, "exp": now + TOKEN_LIFETIME, "iat": now}
    devices: dict[str, str] = {}
    ok_all = True
    for i, item in enumerate(body["evidence_list"]):
        evidence = base64.b64decode(item["evidence"])
        chain = x509.load_pem_x509_certificates(base64.b64decode(item["certificate"]))
        jti = _jti(pki, now, nonce, f"GPU-{i}")
        error = _appraise(evidence, chain[0], nonce) if not fail else _NONCE_ERROR
        if error:
            ok_all = False
            claims: dict[str, Any] = {**std, "jti": jti, "x-nvidia-error-details": error}
        else:
            claims = _device_claims(evidence, chain, nonce, std, jti)
        devices[f"GPU-{i}"] = _jws(pki, claims)
    overall = {
        "sub": "NVIDIA-PLATFORM-ATTESTATION",
        "x-nvidia-ver": "2.0",
        "nbf": now,
        "iss": issuer,
        "x-nvidia-overall-att-result": ok_all,
        "submods": {
            name: ["DIGEST", ["SHA-256", hashlib.sha256(tok.encode("ascii")).hexdigest()]]
            for name, tok in devices.items()
        },
        "eat_nonce": nonce,
        "exp": now + TOKEN_LIFETIME,
        "iat": now,
        "jti": _jti(pki, now, nonce, "overall"),
    }
    return [["JWT", _jws(pki, overall)], devices]


_NONCE_ERROR = {
    "code": 4010,
    "fieldName": "nonce",
    "httpStatus": "400 BAD_REQUEST",
    "description": "Nonce from request is not matching with evidence nonce ",
    "message": "NONCE_NOT_MATCHING",
}
_SIGNATURE_ERROR = {
    "code": 4013,
    "fieldName": "evidence",
    "httpStatus": "400 BAD_REQUEST",
    "description": "Evidence signature verification failed",
    "message": "INVALID_EVIDENCE_SIGNATURE",
}


def _appraise(evidence: bytes, leaf: x509.Certificate, nonce_hex: str) -> dict[str, Any] | None:
    if evidence[4:36].hex() != nonce_hex:
        return _NONCE_ERROR
    sig = evidence[-96:]
    der = encode_dss_signature(int.from_bytes(sig[:48], "big"), int.from_bytes(sig[48:], "big"))
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return _SIGNATURE_ERROR
    try:
        key.verify(der, evidence[:-96], ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return _SIGNATURE_ERROR
    return None


def _device_claims(
    evidence: bytes, chain: list[x509.Certificate], nonce: str, std: dict[str, Any], jti: str
) -> dict[str, Any]:
    spdm = parse_spdm(evidence)
    ok = {
        k: True
        for k in (
            "x-nvidia-gpu-arch-check",
            "x-nvidia-gpu-attestation-report-parsed",
            "x-nvidia-gpu-attestation-report-nonce-match",
            "x-nvidia-gpu-attestation-report-signature-verified",
            "x-nvidia-gpu-attestation-report-cert-chain-validated",
            *(
                f"x-nvidia-gpu-{rim}-rim-{step}"
                for rim in ("driver", "vbios")
                for step in (
                    "fetched",
                    "schema-validated",
                    "cert-validated",
                    "signature-verified",
                    "measurements-available",
                )
            ),
            "x-nvidia-gpu-vbios-index-no-conflict",
        )
    }
    return {
        "iss": std["iss"],
        "eat_nonce": nonce,
        "nbf": std["nbf"],
        "exp": std["exp"],
        "iat": std["iat"],
        "jti": jti,
        "ueid": str(chain[0].serial_number),
        "oemid": "5703",
        "hwmodel": "GH100",
        "secboot": True,
        "dbgstat": "disabled",
        "measres": "success",
        "x-nvidia-gpu-driver-version": spdm.driver_version or "",
        "x-nvidia-gpu-vbios-version": spdm.vbios_version or "00.00.00.00.00",
        "x-nvidia-attestation-warning": None,
        **ok,
    }


def _jws(pki: NrasPki, claims: dict[str, Any]) -> str:
    head = _b64url(json.dumps({"kid": pki.kid, "alg": "ES384"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{head}.{body}".encode("ascii")
    r, s = decode_dss_signature(pki.leaf_key.sign(signing_input, ec.ECDSA(hashes.SHA384(), deterministic_signing=True)))
    return f"{head}.{body}.{_b64url(r.to_bytes(48, 'big') + s.to_bytes(48, 'big'))}"


def _jti(pki: NrasPki, now: int, nonce: str, name: str) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(f"{pki.kid}/{now}/{nonce}/{name}".encode()).digest()[:16], version=4))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
