"""Intel TDX quote (v4/v5) parser: strict bounds checks, no signature verification (that is dcap-qvl's job).

Layout: docs/dcap.md §4.1 (little-endian). Every length field is checked against the buffer and against
the enclosing structure; anything malformed raises ``EvidenceError``. Bytes after the signature data are
tolerated (real Chutes quotes carry 307 trailing zero bytes).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass
from typing import Any

from verifier.core.errors import EvidenceError

HEADER_LEN = 48
TEE_TDX = 0x81
ATT_KEY_ECDSA_P256 = 2
BODY_TD10, BODY_TD15, BODY_TD15_EX = 2, 3, 4
TD10_LEN, TD15_LEN = 584, 648
CERT_QE_REPORT = 6  # QE report certification data (outer)
CERT_PCK_CHAIN = 5  # PEM chain: PCK leaf, Platform/Processor CA, Root CA (inner)
QE_REPORT_LEN = 384

_HEX_RE = re.compile(r"[0-9a-fA-F]*", re.ASCII)
_B64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}", re.ASCII)


def decode_quote_text(text: str) -> bytes:
    """Hex (optional 0x, any case) or standard base64 (Chutes) -> bytes. Surrounding whitespace is ignored."""
    if not isinstance(text, str):
        raise EvidenceError(f"quote text: expected a string, got {type(text).__name__}")
    s = text.strip()
    if s[:2] in ("0x", "0X"):
        s = s[2:]
        if not (_HEX_RE.fullmatch(s) and len(s) % 2 == 0):
            raise EvidenceError("quote text: 0x-prefixed but not an even-length hex string")
    if not s:
        raise EvidenceError("quote text: empty")
    # A real quote in base64 starts "BAAC"/"BQAC" (not hex digits only), so hex-first is unambiguous in practice.
    if _HEX_RE.fullmatch(s) and len(s) % 2 == 0:
        return bytes.fromhex(s)
    if _B64_RE.fullmatch(s) and len(s) % 4 == 0:
        try:
            return base64.b64decode(s, validate=True)
        except (binascii.Error, ValueError) as e:
            raise EvidenceError(f"quote text: invalid base64 ({e})") from None
    raise EvidenceError(f"quote text: neither hex nor base64 ({len(s)} chars)")


@dataclass(frozen=True, slots=True)
class TdReport:
    """TD report body (TD 1.0, or TD 1.5 with tee_tcb_svn2 / mr_service_td). Raw bytes."""

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    tee_tcb_svn2: bytes | None = None
    mr_service_td: bytes | None = None

    @property
    def debug(self) -> bool:
        """TDATTRIBUTES byte 0 bit 0 = TUD.DEBUG (docs/dcap.md §4.1; docs/protocol.md §4)."""
        return bool(self.td_attributes[0] & 0x01)


def _td_report(body: bytes, td15: bool) -> TdReport:
    # offsets from body start, docs/dcap.md §4.1
    def f(off: int, n: int) -> bytes:
        return body[off : off + n]

    return TdReport(
        tee_tcb_svn=f(0, 16),
        mr_seam=f(16, 48),
        mr_signer_seam=f(64, 48),
        seam_attributes=f(112, 8),
        td_attributes=f(120, 8),
        xfam=f(128, 8),
        mr_td=f(136, 48),
        mr_config_id=f(184, 48),
        mr_owner=f(232, 48),
        mr_owner_config=f(280, 48),
        rtmrs=(f(328, 48), f(376, 48), f(424, 48), f(472, 48)),
        report_data=f(520, 64),
        tee_tcb_svn2=f(584, 16) if td15 else None,
        mr_service_td=f(600, 48) if td15 else None,
    )


@dataclass(frozen=True, slots=True)
class TdxQuote:
    raw: bytes
    version: int
    att_key_type: int
    tee_type: int
    qe_vendor_id: bytes
    user_data: bytes
    body_type: int
    report: TdReport
    signed_bytes: bytes  # header || (v5: body_type, body_size) || body: what the attestation key signed
    signature: bytes  # 64, r || s
    attestation_key: bytes  # 64, x || y (P-256)
    qe_report: bytes  # 384
    qe_report_signature: bytes  # 64
    qe_auth_data: bytes
    pck_chain_pem: bytes  # inner certification data type 5, else b""

    def to_json(self) -> dict[str, Any]:
        r = self.report
        out: dict[str, Any] = {
            "version": self.version,
            "att_key_type": self.att_key_type,
            "tee_type": self.tee_type,
            "body_type": self.body_type,
            "qe_vendor_id": self.qe_vendor_id.hex(),
            "debug": r.debug,
            "tee_tcb_svn": r.tee_tcb_svn.hex(),
            "mr_seam": r.mr_seam.hex(),
            "mr_signer_seam": r.mr_signer_seam.hex(),
            "seam_attributes": r.seam_attributes.hex(),
            "td_attributes": r.td_attributes.hex(),
            "xfam": r.xfam.hex(),
            "mr_td": r.mr_td.hex(),
            "mr_config_id": r.mr_config_id.hex(),
            "mr_owner": r.mr_owner.hex(),
            "mr_owner_config": r.mr_owner_config.hex(),
            **{f"rtmr{i}": m.hex() for i, m in enumerate(r.rtmrs)},
            "report_data": r.report_data.hex(),
        }
        if r.tee_tcb_svn2 is not None:
            out["tee_tcb_svn2"] = r.tee_tcb_svn2.hex()
        if r.mr_service_td is not None:
            out["mr_service_td"] = r.mr_service_td.hex()
        return out


class _Reader:
    """Bounded cursor over buf[pos:end]; every read is checked."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int, end: int) -> None:
        self.buf, self.pos, self.end = buf, pos, end

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise EvidenceError(
                f"quote truncated: {what} needs {n} bytes at offset {self.pos}, only {self.end - self.pos} available"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def u16(self, what: str) -> int:
        return int(struct.unpack("<H", self.take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.take(4, what))[0])

    def sub(self, n: int, what: str) -> _Reader:
        start = self.pos
        self.take(n, what)
        return _Reader(self.buf, start, start + n)


def parse_quote(raw: bytes) -> TdxQuote:
    """Parse a TDX quote v4 or v5 (tee_type 0x81, ECDSA-P256 attestation key). EvidenceError when malformed."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise EvidenceError(f"quote: expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    rd = _Reader(raw, 0, len(raw))
    header = rd.take(HEADER_LEN, "header")
    version, att_key_type, tee_type = struct.unpack_from("<HHI", header)
    if version not in (4, 5):
        raise EvidenceError(f"quote: unsupported version {version} (expected 4 or 5)")
    if tee_type != TEE_TDX:
        raise EvidenceError(f"quote: tee_type {tee_type:#x} is not TDX (expected 0x81)")
    if att_key_type != ATT_KEY_ECDSA_P256:
        raise EvidenceError(f"quote: attestation key type {att_key_type} is not ECDSA-256-with-P-256 (2)")

    if version == 4:
        body_type, body = BODY_TD10, rd.take(TD10_LEN, "TD report 1.0 body")
    else:
        body_type = rd.u16("v5 body_type")
        body_size = rd.u32("v5 body_size")
        expected = {BODY_TD10: TD10_LEN, BODY_TD15: TD15_LEN}.get(body_type)
        if body_type == BODY_TD15_EX:
            if body_size < TD15_LEN:
                raise EvidenceError(f"quote: TD1.5-ex body_size {body_size} < {TD15_LEN}")
        elif expected is None:
            kind = "an SGX enclave report" if body_type == 1 else "unknown"
            raise EvidenceError(f"quote: v5 body_type {body_type} is {kind} (expected 2, 3 or 4)")
        elif body_size != expected:
            raise EvidenceError(f"quote: v5 body_type {body_type} body_size {body_size} (expected {expected})")
        body = rd.take(body_size, f"v5 body (type {body_type})")
    report = _td_report(body, td15=body_type != BODY_TD10)
    signed_bytes = raw[: rd.pos]

    sig_len = rd.u32("signature data length")
    sd = rd.sub(sig_len, "signature data")
    signature = sd.take(64, "quote signature")
    attestation_key = sd.take(64, "attestation key")
    cert_type = sd.u16("certification data type")
    if cert_type != CERT_QE_REPORT:
        raise EvidenceError(f"quote: certification data type {cert_type} (expected {CERT_QE_REPORT}, QE report)")
    cd = sd.sub(sd.u32("certification data size"), "certification data")
    qe_report = cd.take(QE_REPORT_LEN, "QE report")
    qe_report_signature = cd.take(64, "QE report signature")
    qe_auth_data = cd.take(cd.u16("QE auth data length"), "QE auth data")
    inner_type = cd.u16("inner certification data type")
    inner = cd.take(cd.u32("inner certification data size"), "inner certification data")

    return TdxQuote(
        raw=raw,
        version=version,
        att_key_type=att_key_type,
        tee_type=tee_type,
        qe_vendor_id=header[12:28],
        user_data=header[28:48],
        body_type=body_type,
        report=report,
        signed_bytes=signed_bytes,
        signature=signature,
        attestation_key=attestation_key,
        qe_report=qe_report,
        qe_report_signature=qe_report_signature,
        qe_auth_data=qe_auth_data,
        pck_chain_pem=inner if inner_type == CERT_PCK_CHAIN else b"",
    )
