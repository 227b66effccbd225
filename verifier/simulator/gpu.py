"""NVIDIA Hopper GPU evidence: a test device-identity PKI, SPDM GET_MEASUREMENTS transcripts, ``nvidia_payload``.

Device chain (mirrors ``fixtures/nvidia/single-gpu-nras-20260629``), all P-384 / ecdsa-with-SHA384,
valid to 9999-12-31 like NVIDIA's:
``GH100 A01 GSP FMC LF`` (per boot; SAN othername 1.3.6.1.4.1.412.274.1, extension 2.23.133.5.4.1
``SEQUENCE { version, device key SPKI, FWID { sha384, digest } }``) → ``GH100 A01 GSP BROM`` (per device) →
``NVIDIA GH100 Provisioner ICA 1`` → ``NVIDIA GH100 Identity`` → ``NVIDIA Device Identity CA`` (root).
Evidence: SPDM 1.1 (DMTF DSP0274) request (nonce at [4:36]) ‖ response with 64 DMTF SHA-384 measurement
blocks, a responder nonce, opaque TLVs (driver, VBIOS, FWID, feature flag, ...) and a P-384 r‖s
signature over everything before it. The payload is Phala's ``json.dumps({"nonce", "evidence_list", "arch"})``.

Knobs for negative tests: ``CHAIN_FAULTS`` (``faulty_chain_pem``: RFC 5280 violations the chain's
own intermediates or leaf commit, under the genuine test root), ``leaf_with_key`` (a leaf holding
another key type), and ``device_evidence(..., attempt=n)`` (the same GPU answering the same nonce again).
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from asn1crypto import core
from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import AuthorityInformationAccessOID, ObjectIdentifier

from verifier.simulator import _cert, keys

ARCH = "HOPPER"
DICE_TCB_INFO_OID = "2.23.133.5.4.1"
NVIDIA_SAN_OID = "1.3.6.1.4.1.412.274.1"
N_BLOCKS = 64
DRIVER_VERSION = "595.71.05"
VBIOS_RAW = bytes.fromhex("00d9009602000000")  # → "96.00.D9.00.02"
VBIOS_VERSION = "96.00.D9.00.02"

# opaque data types (NVIDIA's SPDM opaque data; as verifier.evidence.spdm reads them)
OPAQUE_DRIVER_VERSION, OPAQUE_GPU_INFO, OPAQUE_VBIOS_VERSION = 3, 4, 6
OPAQUE_NVDEC0_STATUS, OPAQUE_MSRSCNT, OPAQUE_CPRINFO, OPAQUE_BOARD_ID = 11, 12, 13, 14
OPAQUE_CHIP_SKU, OPAQUE_CHIP_SKU_MOD, OPAQUE_PROJECT, OPAQUE_PROJECT_SKU, OPAQUE_PROJECT_SKU_MOD = 15, 16, 17, 18, 19
OPAQUE_FWID, OPAQUE_PROTECTED_PCIE_STATUS, OPAQUE_DATA_VERSION, OPAQUE_FEATURE_FLAG = 20, 21, 34, 36

_ORG = "NVIDIA Corporation (simulator)"
_FOREVER = _cert.utc(9999, 12, 31, 23, 59, 59)
_CRL_BASE = "http://crl.simulator.invalid/crl/"
_OCSP = "http://ocsp.simulator.invalid"
_SHA384_OID = "2.16.840.1.101.3.4.2.2"

CHAIN_FAULTS = {
    "intermediate_not_ca": "the Provisioner ICA is re-issued with basicConstraints CA:FALSE",
    "intermediate_no_basic_constraints": "the Provisioner ICA is re-issued without basicConstraints (so it is no CA)",
    "intermediate_path_len": "the Provisioner ICA is re-issued with pathLenConstraint 0, yet the BROM below it is a "
    "CA too",
    "intermediate_no_cert_sign": "the Provisioner ICA is re-issued with a keyUsage that lacks keyCertSign",
    "intermediate_expired": "the Provisioner ICA is re-issued valid 2022-03-01..2024-03-01 only",
    "leaf_no_digital_signature": "the FMC leaf is re-issued with keyUsage keyAgreement only (it may not sign SPDM)",
}


class _Fwid(core.Sequence):
    _fields: ClassVar[list[tuple[Any, ...]]] = [("hash_alg", core.ObjectIdentifier), ("digest", core.OctetString)]


class _CompositeDeviceId(core.Sequence):
    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("version", core.Integer),
        ("device_key", asn1_keys.PublicKeyInfo),
        ("fwid", _Fwid),
    ]


@dataclass(frozen=True)
class GpuDevice:
    index: int
    brom: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate
    fwid: bytes
    measurements: tuple[bytes, ...]  # 64 SHA-384 values; block index i+1 holds measurements[i]
    brom_key: ec.EllipticCurvePrivateKey
    leaf_extensions: tuple[tuple[x509.ExtensionType, bool], ...]


@dataclass(frozen=True)
class DevicePki:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    identity: x509.Certificate
    ica_key: ec.EllipticCurvePrivateKey
    ica: x509.Certificate
    identity_key: ec.EllipticCurvePrivateKey

    @property
    def root_pem(self) -> bytes:
        return _cert.pem(self.root)

    def chain_pem(self, dev: GpuDevice) -> bytes:
        """What the GPU hands out: leaf, BROM, ICA, Identity, root (5 PEM certificates)."""
        return _cert.pem(dev.leaf, dev.brom, self.ica, self.identity, self.root)


def _ca_exts(pub: ec.EllipticCurvePublicKey, issuer_pub: ec.EllipticCurvePublicKey, crl: str | None):
    exts: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (_cert.key_usage(key_cert_sign=True, crl_sign=True), True),
    ]
    if crl:
        exts += [
            (_cert.crl_dp(_CRL_BASE + crl), False),
            (
                x509.AuthorityInformationAccess(
                    [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(_OCSP))]
                ),
                False,
            ),
        ]
    return [*exts, (_cert.ski(pub), False), (_cert.aki(issuer_pub), False)]


def build_device_pki(seed: bytes) -> DevicePki:
    sha384 = hashes.SHA384()
    root_key, id_key, ica_key = (keys.p384(seed, f"nvidia/{n}") for n in ("root", "identity", "ica"))
    root_pub, id_pub, ica_pub = (k.public_key() for k in (root_key, id_key, ica_key))
    root_name = _cert.name(("CN", "NVIDIA Device Identity CA"), ("O", "NVIDIA (simulator)"))
    id_name = _cert.name(("CN", "NVIDIA GH100 Identity"), ("O", _ORG))
    ica_name = _cert.name(("CN", "NVIDIA GH100 Provisioner ICA 1"), ("O", _ORG), ("C", "US"))
    root = _cert.issue(
        subject=root_name,
        issuer=root_name,
        public_key=root_pub,
        issuer_key=root_key,
        serial=keys.serial(seed, "nvidia/root", 16),
        not_before=_cert.utc(2021, 11, 5),
        not_after=_FOREVER,
        extensions=_ca_exts(root_pub, root_pub, None),
        hash_alg=sha384,
    )
    identity = _cert.issue(
        subject=id_name,
        issuer=root_name,
        public_key=id_pub,
        issuer_key=root_key,
        serial=keys.serial(seed, "nvidia/identity", 16),
        not_before=_cert.utc(2022, 1, 12),
        not_after=_FOREVER,
        extensions=_ca_exts(id_pub, root_pub, "l1-root.crl"),
        hash_alg=sha384,
    )
    ica = _cert.issue(
        subject=ica_name,
        issuer=id_name,
        public_key=ica_pub,
        issuer_key=id_key,
        serial=keys.serial(seed, "nvidia/ica", 16),
        not_before=_cert.utc(2022, 3, 1),
        not_after=_FOREVER,
        extensions=_ca_exts(ica_pub, id_pub, "l2-gh100.crl"),
        hash_alg=sha384,
    )
    return DevicePki(root_key, root, identity, ica_key, ica, id_key)


def build_device(seed: bytes, pki: DevicePki, index: int) -> GpuDevice:
    """GPU ``index``: its BROM (device identity) and FMC leaf (per-boot key, FWID in the TcbInfo extension)."""
    sha384 = hashes.SHA384()
    label = f"nvidia/gpu{index}"
    brom_key, leaf_key, alias_key = (keys.p384(seed, f"{label}/{n}") for n in ("brom", "leaf", "alias"))
    brom_pub, leaf_pub = brom_key.public_key(), leaf_key.public_key()
    brom_serial = keys.serial(seed, f"{label}/brom", 9)
    brom_name = _cert.name(
        ("serialNumber", f"{brom_serial:018X}"), ("C", "US"), ("O", _ORG), ("CN", "GH100 A01 GSP BROM")
    )
    brom = _cert.issue(
        subject=brom_name,
        issuer=pki.ica.subject,
        public_key=brom_pub,
        issuer_key=pki.ica_key,
        serial=brom_serial,
        not_before=_cert.utc(2020, 10, 17),
        not_after=_FOREVER,
        hash_alg=sha384,
        extensions=[
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (_cert.key_usage(key_cert_sign=True), True),
            (_cert.ski(brom_pub), False),
            (_cert.aki(pki.ica_key.public_key()), False),
        ],
    )
    fwid = keys.derive(seed, f"{label}/fwid", 48)
    leaf_ski = _cert.ski(leaf_pub)
    alias_spki = alias_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tcb_info = _CompositeDeviceId(
        {
            "version": 1,
            "device_key": asn1_keys.PublicKeyInfo.load(alias_spki),
            "fwid": {"hash_alg": _SHA384_OID, "digest": fwid},
        }
    ).dump()
    chip_id = keys.derive(seed, f"{label}/chip-id", 8).hex().upper()
    san = x509.SubjectAlternativeName(
        [x509.OtherName(ObjectIdentifier(NVIDIA_SAN_OID), core.UTF8String(f"NVIDIA:GH100:{chip_id}").dump())]
    )
    leaf_exts = (
        (_cert.key_usage(digital_signature=True), True),
        (leaf_ski, False),
        (_cert.aki(brom_pub), False),
        (san, False),
        (x509.UnrecognizedExtension(ObjectIdentifier(DICE_TCB_INFO_OID), tcb_info), False),
    )
    leaf = _issue_leaf(seed, index, brom, brom_key, leaf_pub, leaf_exts)
    measurements = tuple(keys.derive(seed, f"{label}/measurement/{i}", 48) for i in range(N_BLOCKS))
    return GpuDevice(index, brom, leaf_key, leaf, fwid, measurements, brom_key, leaf_exts)


def _issue_leaf(
    seed: bytes, index: int, brom: x509.Certificate, brom_key: ec.EllipticCurvePrivateKey, leaf_pub, extensions
) -> x509.Certificate:
    ski = next(e for e, _ in extensions if isinstance(e, x509.SubjectKeyIdentifier))
    return _cert.issue(
        subject=_cert.name(
            ("serialNumber", ski.digest.hex().upper()), ("C", "US"), ("O", _ORG), ("CN", "GH100 A01 GSP FMC LF")
        ),
        issuer=brom.subject,
        public_key=leaf_pub,
        issuer_key=brom_key,
        serial=keys.serial(seed, f"nvidia/gpu{index}/leaf"),
        not_before=_cert.utc(2020, 10, 17),
        not_after=_FOREVER,
        hash_alg=hashes.SHA384(),
        extensions=extensions,
    )


def leaf_with_key(seed: bytes, dev: GpuDevice, public_key) -> x509.Certificate:
    """``dev``'s leaf re-issued by its BROM for another public key (e.g. Ed448, RSA, DSA: not the P-384 NVIDIA uses)."""
    exts = tuple((e, c) for e, c in dev.leaf_extensions if not isinstance(e, x509.SubjectKeyIdentifier | x509.KeyUsage))
    usage = _cert.key_usage(digital_signature=True)
    return _issue_leaf(
        seed, dev.index, dev.brom, dev.brom_key, public_key, ((usage, True), (_cert.ski(public_key), False), *exts)
    )


def faulty_chain_pem(seed: bytes, pki: DevicePki, dev: GpuDevice, fault: str) -> bytes:
    """``dev``'s chain (leaf, BROM, ICA, Identity, root) with one ``CHAIN_FAULTS`` violation; same keys, same root."""
    if fault not in CHAIN_FAULTS:
        raise ValueError(f"unknown chain fault {fault!r}; known: {sorted(CHAIN_FAULTS)}")
    leaf, ica = dev.leaf, pki.ica
    if fault == "leaf_no_digital_signature":
        exts = tuple(
            (_cert.key_usage(key_agreement=True), True) if isinstance(e, x509.KeyUsage) else (e, c)
            for e, c in dev.leaf_extensions
        )
        leaf = _issue_leaf(seed, dev.index, dev.brom, dev.brom_key, dev.leaf_key.public_key(), exts)
    else:
        ica_pub, id_pub = pki.ica_key.public_key(), pki.identity_key.public_key()
        exts = _ca_exts(ica_pub, id_pub, "l2-gh100.crl")
        not_after = _FOREVER
        if fault == "intermediate_not_ca":
            exts[0] = (x509.BasicConstraints(ca=False, path_length=None), True)
        elif fault == "intermediate_no_basic_constraints":
            del exts[0]
        elif fault == "intermediate_path_len":
            exts[0] = (x509.BasicConstraints(ca=True, path_length=0), True)
        elif fault == "intermediate_no_cert_sign":
            exts[1] = (_cert.key_usage(crl_sign=True, digital_signature=True), True)
        else:  # intermediate_expired
            not_after = _cert.utc(2024, 3, 1)
        ica = _cert.issue(
            subject=pki.ica.subject,
            issuer=pki.identity.subject,
            public_key=ica_pub,
            issuer_key=pki.identity_key,
            serial=pki.ica.serial_number,
            not_before=_cert.utc(2022, 3, 1),
            not_after=not_after,
            extensions=exts,
            hash_alg=hashes.SHA384(),
        )
    return _cert.pem(leaf, dev.brom, ica, pki.identity, pki.root)


def opaque_fields(
    dev: GpuDevice, *, driver: str = DRIVER_VERSION, vbios: bytes = VBIOS_RAW, feature_flag: int = 0
) -> list[tuple[int, bytes]]:
    """Opaque TLVs in the order a Hopper emits them (H100 G520 SKU 0280, SPT mode, NVDEC0 disabled)."""
    return [
        (OPAQUE_VBIOS_VERSION, vbios),
        (OPAQUE_BOARD_ID, bytes.fromhex("3c050000")),
        (OPAQUE_CHIP_SKU, b"895".ljust(9, b"\0")),
        (OPAQUE_CHIP_SKU_MOD, b"0".ljust(5, b"\0")),
        (OPAQUE_PROJECT, b"G520\0"),
        (OPAQUE_PROJECT_SKU, b"0280\0"),
        (OPAQUE_PROJECT_SKU_MOD, b"\0\0"),
        (OPAQUE_DRIVER_VERSION, driver.encode() + b"\0"),
        (OPAQUE_GPU_INFO, bytes.fromhex("8001000000000000")),
        (OPAQUE_MSRSCNT, b"".join(struct.pack("<I", 1 if i % 3 else 0) for i in range(64))),
        (OPAQUE_CPRINFO, bytes.fromhex("00800300")),
        (OPAQUE_NVDEC0_STATUS, b"\x55"),
        (OPAQUE_FWID, dev.fwid),
        (OPAQUE_PROTECTED_PCIE_STATUS, b"\x55"),
        (OPAQUE_DATA_VERSION, b"\x01\x00"),
        (OPAQUE_FEATURE_FLAG, feature_flag.to_bytes(2, "little")),
    ]


def spdm_transcript(
    nonce: bytes,
    measurements: Sequence[bytes],
    opaque: Sequence[tuple[int, bytes]],
    key: ec.EllipticCurvePrivateKey,
    responder_nonce: bytes,
) -> bytes:
    """SPDM 1.1 GET_MEASUREMENTS (sig requested, all blocks) ‖ MEASUREMENTS, signed P-384/SHA-384 r‖s."""
    if len(nonce) != 32 or len(responder_nonce) != 32:
        raise ValueError("SPDM nonces are 32 bytes")
    request = bytes([0x11, 0xE0, 0x01, 0xFF]) + nonce + b"\x00"
    record = b"".join(
        struct.pack("<BBH", i + 1, 0x01, 3 + len(m)) + struct.pack("<BH", 0x01, len(m)) + m
        for i, m in enumerate(measurements)
    )
    opaque_bytes = b"".join(struct.pack("<HH", t, len(v)) + v for t, v in opaque)
    response = (
        bytes([0x11, 0x60, 0x00, 0x00, len(measurements)])
        + len(record).to_bytes(3, "little")
        + record
        + responder_nonce
        + struct.pack("<H", len(opaque_bytes))
        + opaque_bytes
    )
    signed = request + response
    r, s = decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA384(), deterministic_signing=True)))
    return signed + r.to_bytes(48, "big") + s.to_bytes(48, "big")


def device_evidence(dev: GpuDevice, nonce: bytes, *, attempt: int = 0, **opaque_overrides) -> bytes:
    """``dev``'s signed answer to ``nonce``; another ``attempt`` is the same GPU asked again (new responder nonce)."""
    responder_nonce = hashlib.sha256(
        b"sim-responder:" + dev.fwid + nonce + (attempt.to_bytes(4, "big") if attempt else b"")
    ).digest()
    return spdm_transcript(
        nonce, dev.measurements, opaque_fields(dev, **opaque_overrides), dev.leaf_key, responder_nonce
    )


def nvidia_payload(nonce: bytes, items: Sequence[tuple[bytes, bytes]]) -> str:
    """Phala ``vllm-proxy`` key order: ``{"nonce", "evidence_list": [{"certificate", "evidence", "arch"}], "arch"}``."""
    evidence_list = [
        {"certificate": base64.b64encode(chain).decode(), "evidence": base64.b64encode(ev).decode(), "arch": ARCH}
        for chain, ev in items
    ]
    return json.dumps({"nonce": nonce.hex(), "evidence_list": evidence_list, "arch": ARCH})
