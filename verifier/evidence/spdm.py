"""SPDM 1.1 GET_MEASUREMENTS request || MEASUREMENTS response, as NVIDIA GPUs return it.

Layout: DMTF DSP0274 (SPDM 1.1) GET_MEASUREMENTS / MEASUREMENTS, with NVIDIA's opaque data TLVs as
NVIDIA/nvtrust reads them (``local_gpu_verifier/src/verifier/attestation/spdm_msrt_resp_msg.py``).
Every length is bounds-checked; the 96-byte P-384 signature must end the buffer exactly.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.gpu_payload import GpuPayload

SIG_LEN = 96
_REQ_LEN = 37  # version, code, param1, param2, nonce(32), slot id
_VERSION = 0x11
_GET_MEASUREMENTS, _MEASUREMENTS = 0xE0, 0x60
_BLOCK_HDR = struct.Struct("<BBH")
_TLV_HDR = struct.Struct("<HH")

# opaque data types (NVIDIA's OPAQUE_FIELD_ID_* numbering)
OPAQUE_DRIVER_VERSION = 3
OPAQUE_VBIOS_VERSION = 6
OPAQUE_CHIP_SKU = 15
OPAQUE_PROJECT = 17
OPAQUE_PROJECT_SKU = 18
OPAQUE_FWID = 20
OPAQUE_FEATURE_FLAG = 36


@dataclass(frozen=True, slots=True)
class SpdmReport:
    request_nonce: bytes  # evidence[4:36]: the requester's (our) nonce
    measurement_blocks: tuple[tuple[int, bytes], ...]  # (index, value); DMTF header stripped
    responder_nonce: bytes
    opaque: dict[int, bytes]
    signed_bytes: bytes  # everything but the signature
    signature: bytes  # r || s, 48 bytes each

    def _ascii(self, t: int) -> str | None:
        raw = self.opaque.get(t)
        if raw is None:
            return None
        return raw.split(b"\0", 1)[0].decode("ascii", "replace")

    @property
    def driver_version(self) -> str | None:
        return self._ascii(OPAQUE_DRIVER_VERSION)

    @property
    def vbios_version(self) -> str | None:
        """8 bytes; string = b[3].b[2].b[1].b[0].b[4] in upper-case hex (e.g. 96.00.CF.00.02)."""
        b = self.opaque.get(OPAQUE_VBIOS_VERSION)
        if b is None or len(b) < 5:
            return None
        return ".".join(f"{b[i]:02X}" for i in (3, 2, 1, 0, 4))

    @property
    def fwid(self) -> bytes | None:
        return self.opaque.get(OPAQUE_FWID)

    @property
    def feature_flag(self) -> int | None:
        """0 SPT, 1 MPT, 2 PPCIE (little-endian)."""
        b = self.opaque.get(OPAQUE_FEATURE_FLAG)
        return int.from_bytes(b, "little") if b else None

    @property
    def project(self) -> str | None:
        return self._ascii(OPAQUE_PROJECT)

    @property
    def project_sku(self) -> str | None:
        return self._ascii(OPAQUE_PROJECT_SKU)

    @property
    def chip_sku(self) -> str | None:
        return self._ascii(OPAQUE_CHIP_SKU)


class _Reader:
    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise EvidenceError(
                f"SPDM evidence truncated in {what} "
                f"(need {n} bytes at offset {self.pos}, have {len(self.buf) - self.pos})"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def u(self, n: int, what: str) -> int:
        return int.from_bytes(self.take(n, what), "little")


def parse_spdm(evidence: bytes) -> SpdmReport:
    if not isinstance(evidence, bytes | bytearray):
        raise EvidenceError("SPDM evidence is not bytes")
    evidence = bytes(evidence)
    r = _Reader(evidence)
    ver, code, _p1, _p2 = r.take(4, "request header")
    if ver != _VERSION or code != _GET_MEASUREMENTS:
        raise EvidenceError(f"not an SPDM 1.1 GET_MEASUREMENTS request (version {ver:#x}, code {code:#x})")
    nonce = r.take(32, "request nonce")
    r.take(1, "slot id")
    rver, rcode, _rp1, _rp2, nblocks = r.take(5, "response header")
    if rver != _VERSION or rcode != _MEASUREMENTS:
        raise EvidenceError(f"not an SPDM 1.1 MEASUREMENTS response (version {rver:#x}, code {rcode:#x})")
    rec_len = r.u(3, "measurement record length")
    blocks = _parse_blocks(r.take(rec_len, "measurement record"), nblocks)
    responder_nonce = r.take(32, "responder nonce")
    opaque = _parse_opaque(r.take(r.u(2, "opaque length"), "opaque data"))
    if len(evidence) - r.pos != SIG_LEN:
        raise EvidenceError(
            f"SPDM evidence has {len(evidence) - r.pos} bytes after the opaque data "
            f"(expected a {SIG_LEN}-byte signature)"
        )
    return SpdmReport(nonce, blocks, responder_nonce, opaque, evidence[:-SIG_LEN], evidence[-SIG_LEN:])


def _parse_blocks(buf: bytes, count: int) -> tuple[tuple[int, bytes], ...]:
    """Index(1) MeasSpec(1) MeasSize(2 LE) value; DMTF values: ValueType(1) ValueSize(2 LE) digest."""
    out: list[tuple[int, bytes]] = []
    pos, end = 0, len(buf)
    while pos < end:
        if pos + 4 > end:
            raise EvidenceError(f"measurement block header truncated at record offset {pos}")
        index, spec, size = _BLOCK_HDR.unpack_from(buf, pos)
        pos += 4
        if pos + size > end:
            raise EvidenceError(f"measurement block {index} overruns the measurement record")
        if spec & 0x01:
            if size < 3 or int.from_bytes(buf[pos + 1 : pos + 3], "little") != size - 3:
                raise EvidenceError(f"measurement block {index}: DMTF value size disagrees with the block size")
            out.append((index, buf[pos + 3 : pos + size]))
        else:
            out.append((index, buf[pos : pos + size]))
        pos += size
    if len(out) != count:
        raise EvidenceError(f"SPDM response claims {count} measurement blocks but holds {len(out)}")
    return tuple(out)


def _parse_opaque(buf: bytes) -> dict[int, bytes]:
    """Type(2 LE) Length(2 LE) Value, exactly filling the opaque data."""
    out: dict[int, bytes] = {}
    pos, end = 0, len(buf)
    while pos < end:
        if pos + 4 > end:
            raise EvidenceError(f"opaque TLV header truncated at opaque offset {pos}")
        t, n = _TLV_HDR.unpack_from(buf, pos)
        pos += 4
        if pos + n > end:
            raise EvidenceError(f"opaque value type {t} overruns the opaque data")
        if t in out:
            raise EvidenceError(f"opaque data type {t} appears twice")
        out[t] = buf[pos : pos + n]
        pos += n
    return out


def check_gpu_nonces(payload: GpuPayload, expected: bytes) -> None:
    """Every GPU's SPDM request nonce, and the payload's claimed nonces, equal ``expected`` (constant time)."""
    if not payload.evidence:
        raise CheckFailed("the payload carries no GPU evidence", reason="no_gpu_evidence")
    bad: dict[str, dict[str, str]] = {}
    if payload.nonce is not None and not hmac.compare_digest(bytes.fromhex(payload.nonce), expected):
        bad["payload"] = {"expected": expected.hex(), "got": payload.nonce}
    for ev in payload.evidence:
        spdm_nonce = parse_spdm(ev.evidence).request_nonce
        if not hmac.compare_digest(spdm_nonce, expected):
            bad[f"GPU-{ev.index}"] = {"expected": expected.hex(), "got": spdm_nonce.hex()}
        if ev.nonce is not None and not hmac.compare_digest(bytes.fromhex(ev.nonce), expected):
            bad[f"GPU-{ev.index} payload"] = {"expected": expected.hex(), "got": ev.nonce}
    if bad:
        raise CheckFailed(
            f"GPU nonce differs from the expected nonce {expected.hex()}: {', '.join(bad)}",
            reason="gpu_nonce_mismatch",
            details={"mismatches": bad, "expected": expected.hex()},
        )
