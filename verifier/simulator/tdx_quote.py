"""Intel TDX quote v4 builder (ECDSA-P256 attestation key, certification data type 6 ⊃ type 5).

Layout: docs/dcap.md §4.1, as in ``fixtures/tdx/dcap-qvl-samples/tdx_quote.bin``:
header (48 B) ‖ TD report 1.0 (584 B) ‖ sig_data_len u32 ‖ quote signature r‖s (64) ‖ attestation
public key x‖y (64) ‖ cert type 6 u16 + size u32 ‖ QE report (384 B SGX report body) ‖ QE report
signature r‖s (64, by the PCK key) ‖ QE auth data (u16 len + bytes) ‖ cert type 5 u16 + size u32 ‖
PCK chain PEM (leaf, Platform CA, Root). QE report_data[0:32] = sha256(attestation key ‖ auth data).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifier.simulator.platform import INTEL_QE_VENDOR_ID, Platform

TD_ATTR_DEBUG = 0x01  # TDATTRIBUTES byte 0 bit 0 (TUD.DEBUG)
TD_ATTR_SEPT_VE_DISABLE = 1 << 28
DEFAULT_XFAM = bytes.fromhex("e702060000000000")
QE_AUTH_DATA = bytes(range(32))  # what the real sample carries


@dataclass(frozen=True, slots=True)
class TdReport:
    """TD report 1.0 fields in layout order (offsets from the body start: docs/dcap.md §4.1)."""

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes = bytes(48)
    seam_attributes: bytes = bytes(8)
    td_attributes: bytes = TD_ATTR_SEPT_VE_DISABLE.to_bytes(8, "little")
    xfam: bytes = DEFAULT_XFAM
    mr_td: bytes = bytes(48)
    mr_config_id: bytes = bytes(48)
    mr_owner: bytes = bytes(48)
    mr_owner_config: bytes = bytes(48)
    rtmrs: tuple[bytes, bytes, bytes, bytes] = field(default=(bytes(48),) * 4)
    report_data: bytes = bytes(64)

    def to_bytes(self) -> bytes:
        parts = [
            self.tee_tcb_svn,
            self.mr_seam,
            self.mr_signer_seam,
            self.seam_attributes,
            self.td_attributes,
            self.xfam,
            self.mr_td,
            self.mr_config_id,
            self.mr_owner,
            self.mr_owner_config,
            *self.rtmrs,
            self.report_data,
        ]
        sizes = [16, 48, 48, 8, 8, 8, 48, 48, 48, 48, 48, 48, 48, 48, 64]
        for name, part, size in zip(
            (
                "tee_tcb_svn",
                "mr_seam",
                "mr_signer_seam",
                "seam_attributes",
                "td_attributes",
                "xfam",
                "mr_td",
                "mr_config_id",
                "mr_owner",
                "mr_owner_config",
                "rtmr0",
                "rtmr1",
                "rtmr2",
                "rtmr3",
                "report_data",
            ),
            parts,
            sizes,
            strict=True,
        ):
            if len(part) != size:
                raise ValueError(f"TD report {name} must be {size} bytes, got {len(part)}")
        out = b"".join(parts)
        assert len(out) == 584
        return out


def header() -> bytes:
    """version 4, ECDSA-P256 key, TEE type 0x81 (TDX), reserved, Intel QE vendor id, user data (QE id)."""
    user_data = bytes.fromhex("889b7d6ff9df2405b240a830e73faf3d00000000")
    return struct.pack("<HHIHH", 4, 2, 0x81, 0, 0) + INTEL_QE_VENDOR_ID + user_data


def qe_report(p: Platform, report_data: bytes) -> bytes:
    """The QE's SGX report body (384 B): CPUSVN, MISCSELECT, ATTRIBUTES, MRENCLAVE, MRSIGNER, ISVPRODID, ISVSVN,
    REPORTDATA."""
    body = bytearray(384)
    body[0:16] = p.qe_cpu_svn
    body[16:20] = p.qe_miscselect.to_bytes(4, "little")
    body[48:64] = p.qe_attributes
    body[64:96] = p.qe_mrenclave
    body[128:160] = p.qe_mrsigner
    body[256:260] = struct.pack("<HH", p.qe_isvprodid, p.qe_isvsvn)
    body[320:384] = report_data
    return bytes(body)


def build_quote(
    p: Platform,
    report: TdReport,
    *,
    attestation_key: ec.EllipticCurvePrivateKey,
    pck_key: ec.EllipticCurvePrivateKey,
    pck_chain_pem: bytes,
    auth_data: bytes = QE_AUTH_DATA,
) -> bytes:
    signed = header() + report.to_bytes()
    att_pub = _raw_public(attestation_key)
    qe_rd = hashlib.sha256(att_pub + auth_data).digest() + bytes(32)
    qe = qe_report(p, qe_rd)
    inner = struct.pack("<HI", 5, len(pck_chain_pem)) + pck_chain_pem
    cert6 = qe + _sign_raw(pck_key, qe) + struct.pack("<H", len(auth_data)) + auth_data + inner
    sig_data = _sign_raw(attestation_key, signed) + att_pub + struct.pack("<HI", 6, len(cert6)) + cert6
    return signed + struct.pack("<I", len(sig_data)) + sig_data


def _raw_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    n = key.public_key().public_numbers()
    return n.x.to_bytes(32, "big") + n.y.to_bytes(32, "big")


def _sign_raw(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
