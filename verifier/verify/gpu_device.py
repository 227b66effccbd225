"""Offline verification of one GPU's evidence: device chain to the pinned root, SPDM signature, FWID.

The chain the GPU supplies ends in its own copy of the root; that copy is dropped and the chain must
reach the *pinned* root (NVIDIA/nvtrust ``local_gpu_verifier`` does the same). OpenSSL validates the
path per RFC 5280 at the verification time (``verify.x509_path``); every certificate must hold an
EC P-384 key (NVIDIA's device PKI is P-384 throughout, and the leaf signs the SPDM transcript with
ECDSA P-384 / SHA-384, DMTF DSP0274 with NVIDIA's base asymmetric algorithm).

``verify_gpu`` is a pure function of bytes (``GpuEvidence``, the root PEM, an int time) returning a
frozen dataclass: inputs, outputs and the project errors it raises all pickle, so it runs in a
thread or process pool as is. A validated chain is remembered per process by sha256(root || chain
bytes) with its validity window, so a recurring chain (a GPU's chain recurs until it reboots) costs
one path validation; a cached chain is still judged against each call's ``now``.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verifier.core.errors import CheckFailed, ConfigError, EvidenceError
from verifier.evidence.certificate import common_name, public_key
from verifier.evidence.gpu_cert import GpuIdentity, chain_identity, device_chain, leaf_fwid
from verifier.evidence.gpu_payload import GpuEvidence
from verifier.evidence.spdm import SIG_LEN, parse_spdm
from verifier.verify.memo import Memo
from verifier.verify.x509_path import validate_path

_MAX_CHAIN = 8
_HOPPER_BELOW_ROOT = 4  # leaf, BROM, ICA, Identity (nvtrust MAX_CERT_CHAIN_LENGTH is 5 with the root)


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
    leaf_sha256: str  # sha256 of the leaf certificate DER
    device_sha256: str  # sha256 of the device (BROM) certificate DER: one per physical GPU

    @property
    def identity(self) -> GpuIdentity:
        return GpuIdentity(self.index, self.ueid, self.hwmodel, self.leaf_sha256, self.device_sha256)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Chain:
    leaf_key: ec.EllipticCurvePublicKey
    identity: GpuIdentity  # index 0: the caller's index is set per call
    cert_fwid: bytes | None
    leaf_window: tuple[int, int]
    window: tuple[int, int]  # intersection of every certificate's validity, root included


def verify_gpu(ev: GpuEvidence, *, root_pem: bytes, now: int, memo: Memo | None = None) -> VerifiedGpu:
    """One GPU's evidence, verified offline at ``now``; ``memo`` remembers validated chains (judged again at
    ``now``)."""
    where = f"GPU-{ev.index}"
    spdm = parse_spdm(ev.evidence)  # structure first: garbage is EvidenceError, not a crypto failure
    chain_hash = hashlib.sha256(ev.certificate_pem).digest()
    key = hashlib.sha256(hashlib.sha256(root_pem).digest() + chain_hash).digest()
    chain: _Chain | None = memo.get(key) if memo is not None else None
    if chain is None:
        chain = _verify_chain(ev.certificate_pem, _load_root(root_pem), now=now, where=where)
        if memo is not None:
            memo.put(key, chain)
    lo, hi = chain.window
    if not lo <= now <= hi:
        raise CheckFailed(
            f"{where}: a device certificate is not valid at {now} (chain valid {lo}..{hi})",
            reason="gpu_cert_expired",
            details={"now": now, "not_before": lo, "not_after": hi},
        )
    half = SIG_LEN // 2
    r, s = int.from_bytes(spdm.signature[:half], "big"), int.from_bytes(spdm.signature[half:], "big")
    try:
        chain.leaf_key.verify(encode_dss_signature(r, s), spdm.signed_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise CheckFailed(
            f"{where}: the SPDM measurement signature does not verify with the leaf key", reason="gpu_signature_invalid"
        ) from None
    fwid = spdm.fwid
    if fwid is not None and (chain.cert_fwid is None or chain.cert_fwid != fwid):
        raise CheckFailed(
            f"{where}: the SPDM FWID differs from the leaf certificate's",
            reason="gpu_fwid_mismatch",
            details={"expected": chain.cert_fwid.hex() if chain.cert_fwid else None, "got": fwid.hex()},
        )
    ident = chain.identity
    return VerifiedGpu(
        index=ev.index,
        arch=ev.arch,
        hwmodel=ident.hwmodel,
        ueid=ident.ueid,
        driver_version=spdm.driver_version,
        vbios_version=spdm.vbios_version,
        fwid=fwid.hex() if fwid is not None else None,
        fwid_checked=fwid is not None,
        feature_flag=spdm.feature_flag,
        project=spdm.project,
        project_sku=spdm.project_sku,
        chip_sku=spdm.chip_sku,
        not_before=chain.leaf_window[0],
        not_after=chain.leaf_window[1],
        chain_sha256=chain_hash.hex(),
        leaf_sha256=ident.leaf_sha256,
        device_sha256=ident.device_sha256,
    )


@functools.lru_cache(maxsize=8)
def _load_root(root_pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(root_pem)
    except ValueError:
        raise ConfigError("the pinned NVIDIA device root is not a PEM certificate") from None


def _verify_chain(pem: bytes, root: x509.Certificate, *, now: int, where: str) -> _Chain:
    def bad(why: str) -> CheckFailed:
        return CheckFailed(f"{where}: {why}", reason="gpu_cert_chain_invalid")

    received = device_chain(pem, where)
    # never trust a root the evidence carries: drop self-issued certificates (at most one, at the end)
    certs = [c for c in received if c.subject != c.issuer]
    if not 2 <= len(certs) <= _MAX_CHAIN or len(received) - len(certs) > 1 or certs != received[: len(certs)]:
        raise bad(
            f"the chain has {len(received)} certificates in an unexpected shape "
            "(Hopper: leaf, BROM, ICA, Identity, root)"
        )
    ident = chain_identity(0, certs, where)
    if ident.hwmodel.startswith("GH") and len(certs) != _HOPPER_BELOW_ROOT:
        raise bad(f"the Hopper chain has {len(certs)} certificates below the root (expected {_HOPPER_BELOW_ROOT})")
    ec_keys: list[ec.EllipticCurvePublicKey] = []
    for i, cert in enumerate([*certs, root]):
        key = public_key(cert, f"{where} certificate {i} ({common_name(cert, where)!r})")
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            kind = (
                key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__.removeprefix("_")
            )
            raise bad(f"certificate {i} ({common_name(cert, where)!r}) holds a {kind} key, not EC P-384")
        ec_keys.append(key)
    validate_path(
        certs[0],
        certs[1:],
        root,
        now=now,
        partial=False,
        reason="gpu_cert_chain_invalid",
        expired_reason="gpu_cert_expired",
        what=f"{where} device chain",
    )
    leaf, leaf_key = certs[0], ec_keys[0]
    every = [*certs, root]
    try:
        window = (max(_ts(c.not_valid_before_utc) for c in every), min(_ts(c.not_valid_after_utc) for c in every))
        leaf_window = (_ts(leaf.not_valid_before_utc), _ts(leaf.not_valid_after_utc))
    except (ValueError, OverflowError, OSError) as exc:
        raise EvidenceError(f"{where}: a certificate validity time is out of range: {exc}") from None
    return _Chain(
        leaf_key=leaf_key, identity=ident, cert_fwid=leaf_fwid(leaf, where), leaf_window=leaf_window, window=window
    )


def _ts(dt: datetime) -> int:
    return int(dt.timestamp())
