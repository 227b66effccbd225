"""Parse the GPU evidence a report carries: ``nvidia_payload`` (Phala / NEAR) and Chutes ``gpu_evidence``.

Shapes: as recorded in ``fixtures/redpill/attestation/**`` and ``fixtures/nvidia/**``.
``nvidia_payload`` is the NRAS v3 request body
(a JSON string, any key order); each item is ``{"certificate": b64(PEM chain), "evidence": b64(SPDM),
"arch"?, "nonce"?}``. Only structure is checked here; the SPDM transcript is parsed by ``spdm.py``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from verifier.core.errors import EvidenceError

_MAX_GPUS = 64
_PEM_MARK = b"-----BEGIN CERTIFICATE-----"
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


@dataclass(frozen=True, slots=True)
class GpuEvidence:
    index: int  # position in evidence_list (NRAS names it GPU-<index>)
    arch: str
    certificate_pem: bytes  # the PEM chain as received (leaf first)
    evidence: bytes  # raw SPDM GET_MEASUREMENTS request || response
    nonce: str | None  # per-item nonce claim (NEAR), lower-case hex


@dataclass(frozen=True, slots=True)
class GpuPayload:
    nonce: str | None  # the payload's claimed nonce, lower-case hex
    arch: str | None
    evidence: tuple[GpuEvidence, ...]
    nras_request: dict[str, Any]  # the body to POST to NRAS /v3/attest/gpu


def chutes_gpu_nonce(nonce_hex: str, e2e_pubkey_b64: str) -> bytes:
    """Chutes SPDM nonce = sha256(ascii(nonce_hex) || ascii(e2e_pubkey_b64)).

    As recorded in fixtures/nvidia/redpill-chutes-8gpu-nras-fail-20260610.
    """
    try:
        return hashlib.sha256(nonce_hex.encode("ascii") + e2e_pubkey_b64.encode("ascii")).digest()
    except (UnicodeEncodeError, AttributeError):
        raise EvidenceError("Chutes nonce or e2e_pubkey is not an ASCII string") from None


def parse_nvidia_payload(value: object) -> GpuPayload:
    """``nvidia_payload`` as a JSON string/bytes or an already-decoded object."""
    obj = _load_json(value) if isinstance(value, str | bytes | bytearray) else value
    if not isinstance(obj, dict):
        raise EvidenceError("nvidia_payload is not a JSON object")
    nonce = _hex_or_none(obj.get("nonce"), "nvidia_payload.nonce")
    arch = _str_or_none(obj.get("arch"), "nvidia_payload.arch")
    items = obj.get("evidence_list")
    if not isinstance(items, list):
        raise EvidenceError("nvidia_payload.evidence_list is not a list")
    return _build(items, nonce=nonce, arch=arch, item_nonces=True)


def parse_chutes_gpu_evidence(items: object, *, nonce_hex: str, e2e_pubkey_b64: str | None = None) -> GpuPayload:
    """Chutes ``all_attestations[i].gpu_evidence``: a list of ``{certificate, evidence, arch}`` (no nonce per item).

    The GPU nonce is ``chutes_gpu_nonce(nonce_hex, e2e_pubkey_b64)`` when the instance key is given;
    without it ``nonce_hex`` is taken to be the (already derived) GPU nonce. It becomes the payload's
    claimed nonce and the NRAS request nonce (the raw instance nonce fails NRAS: NONCE_NOT_MATCHING).
    """
    if not isinstance(nonce_hex, str):
        raise EvidenceError("Chutes instance nonce is not a string")
    if e2e_pubkey_b64 is not None:
        nonce_hex = chutes_gpu_nonce(nonce_hex, e2e_pubkey_b64).hex()
    nonce = _hex_or_none(nonce_hex, "Chutes nonce")
    if not isinstance(items, list):
        raise EvidenceError("gpu_evidence is not a list")
    return _build(items, nonce=nonce, arch=None, item_nonces=False)


def _build(items: list[Any], *, nonce: str | None, arch: str | None, item_nonces: bool) -> GpuPayload:
    if len(items) > _MAX_GPUS:
        raise EvidenceError(f"GPU evidence list has {len(items)} items (at most {_MAX_GPUS})")
    gpus: list[GpuEvidence] = []
    wire: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"evidence_list[{i}]"
        if not isinstance(item, dict):
            raise EvidenceError(f"{where} is not an object")
        cert_b64, ev_b64 = item.get("certificate"), item.get("evidence")
        cert = _b64(cert_b64, f"{where}.certificate")
        if _PEM_MARK not in cert:
            raise EvidenceError(f"{where}.certificate is not base64 of a PEM certificate chain")
        evidence = _b64(ev_b64, f"{where}.evidence")
        item_arch = _str_or_none(item.get("arch"), f"{where}.arch")
        item_nonce = _hex_or_none(item.get("nonce"), f"{where}.nonce") if item_nonces else None
        gpus.append(GpuEvidence(i, (item_arch or arch or "HOPPER").upper(), cert, evidence, item_nonce))
        w: dict[str, Any] = {"certificate": cert_b64, "evidence": ev_b64}
        if item_arch is not None:
            w["arch"] = item_arch
        wire.append(w)
    arch_out = arch or (gpus[0].arch if gpus else None)
    # NRAS needs a nonce: the claimed one, else a per-item one, else the SPDM one (our own nonce
    # checks never rely on what we send; they compare eat_nonce with the expected nonce).
    req_nonce = nonce or next((g.nonce for g in gpus if g.nonce), None)
    if req_nonce is None and gpus and len(gpus[0].evidence) >= 36:
        req_nonce = gpus[0].evidence[4:36].hex()
    request = {"nonce": req_nonce, "arch": arch_out or "HOPPER", "evidence_list": wire}
    return GpuPayload(nonce=nonce, arch=arch_out, evidence=tuple(gpus), nras_request=request)


def _load_json(raw: str | bytes | bytearray) -> Any:
    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            raise EvidenceError("nvidia_payload has a duplicated key")
        return out

    try:
        return json.loads(raw, object_pairs_hook=no_dupes)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise EvidenceError("nvidia_payload is not valid JSON") from None


def _b64(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise EvidenceError(f"{where} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise EvidenceError(f"{where} is not valid base64") from None


def _str_or_none(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise EvidenceError(f"{where} is not a non-empty string")
    return value


def _hex_or_none(value: object, where: str) -> str | None:
    s = _str_or_none(value, where)
    if s is None:
        return None
    if not _HEX.fullmatch(s):
        raise EvidenceError(f"{where} is not a hex string")
    return s.lower()
