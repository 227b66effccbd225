"""Offline verification of one GPU's evidence: device chain to the pinned root, SPDM signature, FWID.

nvidia-gpu.md §2.1 (SPDM), §2.2 (chain, FWID). The chain the GPU supplies ends in its own copy of
the root; it is dropped and the chain must reach the *pinned* root (nvtrust does the same).
A verified chain is remembered by sha256(root || chain bytes): the 4 signature checks cost ~1.6 ms
and a GPU's chain recurs until it reboots (primitive-costs.md).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from verifier.core.errors import CheckFailed, ConfigError, EvidenceError
from verifier.evidence.gpu_payload import GpuEvidence
from verifier.evidence.spdm import parse_spdm

_DICE_TCB_INFO = ("2.23.133.5.4.1", "2.23.133.5.4.1.1")  # TCG DICE TcbInfo (Hopper / Blackwell)
_FWID_LEN = 48
_MAX_CHAIN = 8
_CACHE_MAX = 4096


@dataclass(frozen=True, slots=True)
class VerifiedGpu:
    index: int
    arch: str
    hwmodel: str  # CN of the BROM certificate (cert[1]), e.g. "GH100 A01 GSP BROM"
    ueid: str  # leaf certificate serial, decimal (NRAS `ueid`)
    driver_version: str | None
    vbios_version: str | None
    fwid: str | None  # hex; None when the opaque data carries no FWID (then not compared)
    fwid_checked: bool
    feature_flag: int | None  # 0 SPT, 1 MPT, 2 PPCIE
    project: str | None
    project_sku: str | None
    chip_sku: str | None
    not_before: int  # leaf validity, unix seconds
    not_after: int
    chain_sha256: str  # sha256 of the PEM chain as received

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Chain:
    leaf_key: ec.EllipticCurvePublicKey
    hwmodel: str
    ueid: str
    cert_fwid: bytes | None
    leaf_window: tuple[int, int]
    window: tuple[int, int]  # intersection of every certificate's validity, root included


_cache: dict[bytes, _Chain] = {}
_cache_lock = threading.Lock()


def verify_gpu(ev: GpuEvidence, *, root_pem: bytes, now: int) -> VerifiedGpu:
    spdm = parse_spdm(ev.evidence)  # structure first: garbage is EvidenceError, not a crypto failure
    chain_hash = hashlib.sha256(ev.certificate_pem).digest()
    key = hashlib.sha256(hashlib.sha256(root_pem).digest() + chain_hash).digest()
    chain = _cache.get(key)
    if chain is None:
        try:
            chain = _verify_chain(ev.certificate_pem, _load_root(root_pem))
        except ValueError as exc:  # a certificate field that does not decode
            raise EvidenceError(f"GPU-{ev.index}: the certificate chain does not decode: {exc}") from None
        with _cache_lock:
            if len(_cache) >= _CACHE_MAX:
                _cache.clear()
            _cache[key] = chain
    lo, hi = chain.window
    if not lo <= now <= hi:
        raise CheckFailed(
            f"GPU-{ev.index}: a device certificate is not valid at {now} (chain valid {lo}..{hi})",
            reason="gpu_cert_expired", details={"now": now, "not_before": lo, "not_after": hi},
        )
    r, s = int.from_bytes(spdm.signature[:48], "big"), int.from_bytes(spdm.signature[48:], "big")
    try:
        chain.leaf_key.verify(encode_dss_signature(r, s), spdm.signed_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise CheckFailed(f"GPU-{ev.index}: the SPDM measurement signature does not verify with the leaf key",
                          reason="gpu_signature_invalid") from None
    fwid = spdm.fwid
    if fwid is not None and (chain.cert_fwid is None or chain.cert_fwid != fwid):
        raise CheckFailed(
            f"GPU-{ev.index}: the SPDM FWID differs from the leaf certificate's",
            reason="gpu_fwid_mismatch",
            details={"expected": chain.cert_fwid.hex() if chain.cert_fwid else None, "got": fwid.hex()},
        )
    return VerifiedGpu(
        index=ev.index, arch=ev.arch, hwmodel=chain.hwmodel, ueid=chain.ueid,
        driver_version=spdm.driver_version, vbios_version=spdm.vbios_version,
        fwid=fwid.hex() if fwid is not None else None, fwid_checked=fwid is not None,
        feature_flag=spdm.feature_flag, project=spdm.project, project_sku=spdm.project_sku, chip_sku=spdm.chip_sku,
        not_before=chain.leaf_window[0], not_after=chain.leaf_window[1], chain_sha256=chain_hash.hex(),
    )


def clear_chain_cache() -> None:
    with _cache_lock:
        _cache.clear()


@functools.lru_cache(maxsize=8)
def _load_root(root_pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(root_pem)
    except ValueError:
        raise ConfigError("the pinned NVIDIA device root is not a PEM certificate") from None


def _verify_chain(pem: bytes, root: x509.Certificate) -> _Chain:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise EvidenceError("the GPU certificate chain is not a PEM certificate list") from None
    # §2.2: never trust a root the evidence carries; drop self-issued certificates, keep the rest.
    chain = [c for c in certs if c.subject != c.issuer]
    if not 2 <= len(chain) <= _MAX_CHAIN or len(certs) - len(chain) > 1 or chain != certs[: len(chain)]:
        raise CheckFailed(f"the GPU chain has {len(certs)} certificates in an unexpected shape (Hopper: leaf, BROM, ICA, Identity, root)",
                          reason="gpu_cert_chain_invalid")
    for child, parent in zip(chain, [*chain[1:], root], strict=True):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CheckFailed(
                f"GPU certificate {_cn(child)!r} is not issued by {_cn(parent)!r}: {str(exc) or type(exc).__name__}",
                reason="gpu_cert_chain_invalid",
            ) from None
    leaf = chain[0]
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise CheckFailed("the GPU leaf key is not ECDSA P-384", reason="gpu_cert_chain_invalid")
    hwmodel = _cn(chain[1])
    if hwmodel.startswith("GH") and len(chain) != 4:  # Hopper: exactly 5 with the root (nvtrust MAX_CERT_CHAIN_LENGTH)
        raise CheckFailed(f"the Hopper GPU chain has {len(chain)} certificates below the root (expected 4)", reason="gpu_cert_chain_invalid")
    every = [*chain, root]
    window = (max(_ts(c.not_valid_before_utc) for c in every), min(_ts(c.not_valid_after_utc) for c in every))
    return _Chain(
        leaf_key=key, hwmodel=hwmodel, ueid=str(leaf.serial_number), cert_fwid=_cert_fwid(leaf, hopper=hwmodel.startswith("GH")),
        leaf_window=(_ts(leaf.not_valid_before_utc), _ts(leaf.not_valid_after_utc)), window=window,
    )


def _cert_fwid(leaf: x509.Certificate, *, hopper: bool) -> bytes | None:
    """Hopper: last 48 bytes of the TcbInfo extension; Blackwell: fwids[0].digest of DiceTcbInfo (§2.2)."""
    for ext in leaf.extensions:
        if ext.oid.dotted_string in _DICE_TCB_INFO and isinstance(ext.value, x509.UnrecognizedExtension):
            raw = ext.value.value
            if hopper:
                return raw[-_FWID_LEN:] if len(raw) >= _FWID_LEN else None
            return _dice_fwid0(raw)
    return None


def _dice_fwid0(raw: bytes) -> bytes | None:
    """DiceTcbInfo ::= SEQUENCE { ..., fwids [6] IMPLICIT SEQUENCE OF SEQUENCE { hashAlg OID, digest OCTET STRING }, ... }."""
    try:
        tag, body, _ = _tlv(raw, 0)
        if tag != 0x30:
            return None
        pos = 0
        while pos < len(body):
            tag, value, pos = _tlv(body, pos)
            if tag == 0xA6:  # [6] constructed: FWIDLIST
                t, fwid, _ = _tlv(value, 0)
                _, _oid, p = _tlv(fwid, 0)
                t2, digest, _ = _tlv(fwid, p)
                return digest if t == 0x30 and t2 == 0x04 else None
    except IndexError:
        return None
    return None


def _tlv(buf: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER TLV at ``pos``: (tag, value, next position); IndexError when truncated."""
    tag, n = buf[pos], buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if not 1 <= k <= 3:
            raise IndexError("DER length")
        n = int.from_bytes(buf[pos : pos + k], "big")
        pos += k
    if pos + n > len(buf):
        raise IndexError("DER truncated")
    return tag, buf[pos : pos + n], pos + n


def _cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = attrs[0].value if attrs else cert.subject.rfc4514_string()
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _ts(dt: datetime) -> int:
    return int(dt.timestamp())

