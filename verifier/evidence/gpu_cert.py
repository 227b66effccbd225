"""What a GPU's device-identity certificate chain says: the device it names, and the leaf's FWID.

Chain as a GPU hands it out (NVIDIA/nvtrust ``local_gpu_verifier``, NVIDIA/attestation-sdk
``nv_x509.cpp``): leaf (``GH100 A01 GSP FMC LF``), device (``GH100 A01 GSP BROM``), Provisioner ICA,
Identity, and the GPU's own copy of the root. NVIDIA names a GPU by
``ueid`` = the leaf's serial number in decimal and ``hwmodel`` = the CN of certificate 1.

Identity (``GpuIdentity``): ueid, hwmodel, and sha256 of the leaf and device certificate DER. The
device (BROM) certificate is per physical GPU, the leaf per device key. The FWID is *not* an
identity: it measures the firmware, and every GPU running the same firmware shares it (the eight
GPUs of ``fixtures/redpill/attestation/nearcloud-two-layer-ed25519-tls-20260629`` do).

FWID, decoded with asn1crypto from extension OID 2.23.133.5.4.1 (Hopper: ``SEQUENCE { version INTEGER,
deviceKey SubjectPublicKeyInfo, fwid FWID }``, the RIoT / early TCG DICE composite device identifier)
or 2.23.133.5.4.1.1 (Blackwell: TCG DICE Attestation Architecture ``DiceTcbInfo``, ``fwids[0]``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.certificate import common_name, extensions, load_pem_chain
from verifier.evidence.gpu_payload import GpuEvidence

TCB_INFO_OIDS = ("2.23.133.5.4.1", "2.23.133.5.4.1.1")
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)  # what asn1crypto raises on bad DER


@dataclass(frozen=True, slots=True)
class GpuIdentity:
    index: int  # position in the attestation's evidence list; NRAS names it GPU-<index>
    ueid: str  # leaf serial number, decimal (NRAS ``ueid``)
    hwmodel: str  # CN of the device certificate, e.g. "GH100 A01 GSP BROM" (NRAS ``hwmodel`` says "GH100")
    leaf_sha256: str
    device_sha256: str  # sha256 of the device (BROM) certificate DER: one per physical GPU


def device_chain(pem: bytes, where: str) -> list[x509.Certificate]:
    """The chain as received, leaf first (its own root copy included: callers never trust it)."""
    return load_pem_chain(pem, f"{where} certificate chain")


def chain_identity(index: int, chain: Sequence[x509.Certificate], where: str) -> GpuIdentity:
    if len(chain) < 2:
        raise EvidenceError(f"{where}: the certificate chain has no device certificate below the leaf")
    leaf, device = chain[0], chain[1]
    return GpuIdentity(
        index=index,
        ueid=str(leaf.serial_number),
        hwmodel=common_name(device, f"{where} device certificate"),
        leaf_sha256=_sha256_der(leaf),
        device_sha256=_sha256_der(device),
    )


def gpu_identity(ev: GpuEvidence) -> GpuIdentity:
    """The device an evidence item names (decoding only; ``verify_gpu`` proves the chain).

    Remembered per process by the chain bytes (a GPU's chain recurs until it reboots; decoding
    five certificates costs ≈0.35 ms). A chain that does not decode is not remembered.
    """
    return _identity(ev.certificate_pem, ev.index)


@functools.lru_cache(maxsize=1024)
def _identity(pem: bytes, index: int) -> GpuIdentity:
    where = f"GPU-{index}"
    return chain_identity(index, device_chain(pem, where), where)


def gpu_identities(evidence: Sequence[GpuEvidence]) -> tuple[GpuIdentity, ...]:
    return tuple(gpu_identity(ev) for ev in evidence)


def check_distinct_gpus(identities: Sequence[GpuIdentity]) -> None:
    """The GPUs of ONE attestation are distinct devices: no two share a ueid, a leaf or a device certificate.

    One GPU's evidence repeated (byte for byte, or asked twice) is one GPU, whatever the count says.
    """
    shared: dict[str, dict[str, str]] = {}
    for key in ("ueid", "leaf_sha256", "device_sha256"):
        seen: dict[str, list[int]] = {}
        for g in identities:
            seen.setdefault(getattr(g, key), []).append(g.index)
        for value, indices in seen.items():
            if len(indices) > 1:
                shared.setdefault(", ".join(f"GPU-{i}" for i in indices), {})[key] = value
    if shared:
        shown = "; ".join(
            f"{names} share " + ", ".join(f"{k} {v[:16]}…" if len(v) > 16 else f"{k} {v}" for k, v in keys.items())
            for names, keys in shared.items()
        )
        raise CheckFailed(
            f"GPU evidence names the same device more than once: {shown}",
            reason="gpu_duplicate_evidence",
            details={"expected": "distinct devices", "got": shared, "gpus": len(identities)},
        )


def leaf_fwid(leaf: x509.Certificate, where: str) -> bytes | None:
    """The FWID the leaf certificate carries, or None when it has no TcbInfo extension or it does not decode."""
    for ext in extensions(leaf, f"{where} leaf certificate"):
        if ext.oid.dotted_string in TCB_INFO_OIDS and isinstance(ext.value, x509.UnrecognizedExtension):
            return _composite_fwid(ext.value.value) or _dice_fwid(ext.value.value)
    return None


class _Fwid(core.Sequence):
    _fields: ClassVar[list[tuple[Any, ...]]] = [("hash_alg", core.ObjectIdentifier), ("digest", core.OctetString)]


class _FwidList(core.SequenceOf):
    _child_spec: ClassVar[type[core.Sequence]] = _Fwid


class _CompositeDeviceId(core.Sequence):
    _fields: ClassVar[list[tuple[Any, ...]]] = [("version", core.Integer), ("device_key", core.Any), ("fwid", _Fwid)]


class _DiceTcbInfo(core.Sequence):
    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("vendor", core.UTF8String, {"implicit": 0, "optional": True}),
        ("model", core.UTF8String, {"implicit": 1, "optional": True}),
        ("version", core.UTF8String, {"implicit": 2, "optional": True}),
        ("svn", core.Integer, {"implicit": 3, "optional": True}),
        ("layer", core.Integer, {"implicit": 4, "optional": True}),
        ("index", core.Integer, {"implicit": 5, "optional": True}),
        ("fwids", _FwidList, {"implicit": 6, "optional": True}),
        ("flags", core.BitString, {"implicit": 7, "optional": True}),
        ("vendor_info", core.OctetString, {"implicit": 8, "optional": True}),
        ("type", core.OctetString, {"implicit": 9, "optional": True}),
        ("flags_mask", core.BitString, {"implicit": 10, "optional": True}),
    ]


def _composite_fwid(raw: bytes) -> bytes | None:
    try:
        value = _CompositeDeviceId.load(raw, strict=True)
        value.native  # noqa: B018 - decode every field now: lazily decoded garbage must fail here
        digest = value["fwid"]["digest"].native
    except _DECODE_ERRORS:
        return None
    return digest if isinstance(digest, bytes) and digest else None


def _dice_fwid(raw: bytes) -> bytes | None:
    try:
        value = _DiceTcbInfo.load(raw, strict=True)
        value.native  # noqa: B018
        fwids = value["fwids"]
        digest = fwids[0]["digest"].native if isinstance(fwids, _FwidList) and len(fwids) else None
    except _DECODE_ERRORS:
        return None
    return digest if isinstance(digest, bytes) and digest else None


def _sha256_der(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
