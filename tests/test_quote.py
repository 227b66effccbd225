"""TDX quote parser: every recorded quote parses to the manifest's measurements; malformed input -> EvidenceError."""

from __future__ import annotations

import base64
import contextlib
import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.core.errors import EvidenceError
from verifier.evidence.quote import decode_quote_text, parse_quote

TDX = Path(__file__).resolve().parent.parent / "fixtures" / "tdx"
MANIFEST = json.loads((TDX / "manifest.json").read_text())
CASES = [c for c in MANIFEST["cases"] if c.get("quote")]
TDX_CASES = [c for c in CASES if c["type"] == "TDX"]
V4 = (TDX / "dcap-qvl-samples" / "tdx_quote.bin").read_bytes()
V5 = (TDX / "dcap-qvl-samples" / "tdx_quote_outdated.bin").read_bytes()
CHUTES = (TDX / "quotes" / "redpill-chutes-20260610-instance0.bin").read_bytes()
TD_ATTR_OFF = 48 + 120  # v4 absolute offset of TDATTRIBUTES (docs/dcap.md §4.1)

_FIELD = {f"rt_mr{i}": f"rtmr{i}" for i in range(4)}


@pytest.mark.parametrize("case", TDX_CASES, ids=[c["id"] for c in TDX_CASES])
def test_manifest_quote_fields_equal_manifest_measurements(case: dict) -> None:
    raw = (TDX / case["quote"]).read_bytes()
    q = parse_quote(raw)
    assert q.version == case["quote_version"]
    assert q.tee_type == 0x81
    assert q.body_type == (3 if case["report_body"] == "TdReport15" else 2)
    got = q.to_json()
    for key, want in case["measurements"].items():
        assert got[_FIELD.get(key, key)] == want, key
    assert q.report.debug is False and got["debug"] is False
    assert q.qe_vendor_id.hex() == "939a7233f79c4ca9940a0db3957f0607"
    assert q.pck_chain_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert len(q.qe_report) == 384 and len(q.qe_auth_data) == 32


@pytest.mark.parametrize("case", TDX_CASES, ids=[c["id"] for c in TDX_CASES])
def test_signed_bytes_are_exactly_what_the_attestation_key_signed(case: dict) -> None:
    q = parse_quote((TDX / case["quote"]).read_bytes())
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + q.attestation_key)
    r, s = int.from_bytes(q.signature[:32], "big"), int.from_bytes(q.signature[32:], "big")
    key.verify(utils.encode_dss_signature(r, s), q.signed_bytes, ec.ECDSA(hashes.SHA256()))


def test_v5_td15_quote_exposes_td15_fields_and_v4_does_not() -> None:
    q5, q4 = parse_quote(V5), parse_quote(V4)
    assert q5.version == 5 and q5.body_type == 3
    assert q5.report.tee_tcb_svn2 is not None and len(q5.report.tee_tcb_svn2) == 16
    assert q5.report.mr_service_td is not None and len(q5.report.mr_service_td) == 48
    assert len(q5.signed_bytes) == 48 + 6 + 648 and "tee_tcb_svn2" in q5.to_json()
    assert q4.report.tee_tcb_svn2 is None and q4.report.mr_service_td is None
    assert len(q4.signed_bytes) == 48 + 584 and "mr_service_td" not in q4.to_json()


@pytest.mark.parametrize("name", ["tdx-quote.hex", "quote-from-tappd.hex"])
def test_dcap_qvl_hex_samples_parse(name: str) -> None:
    q = parse_quote(decode_quote_text((TDX / "dcap-qvl-samples" / name).read_text()))
    assert q.version == 4 and len(q.report.report_data) == 64


def test_sgx_sample_raises_evidence_error() -> None:
    with pytest.raises(EvidenceError, match="version 3"):
        parse_quote((TDX / "dcap-qvl-samples" / "sgx_quote.bin").read_bytes())


def test_chutes_quote_with_trailing_zero_bytes_parses() -> None:
    q = parse_quote(CHUTES)
    assert len(CHUTES) - len(q.signed_bytes) - 4 - struct.unpack_from("<I", CHUTES, 632)[0] == 307


def test_decode_quote_text_accepts_hex_0x_upper_and_base64() -> None:
    assert decode_quote_text(V4.hex()) == V4
    assert decode_quote_text("0x" + V4.hex().upper()) == V4
    assert decode_quote_text(" " + base64.b64encode(V4).decode() + "\n") == V4


@pytest.mark.parametrize("text", ["", "0x", "xyz", "0x123", "abc", "ab$=", "QUJD=A==", "é"])
def test_decode_quote_text_rejects_garbage(text: str) -> None:
    with pytest.raises(EvidenceError):
        decode_quote_text(text)


@pytest.mark.parametrize("raw", [V4, V5, CHUTES], ids=["v4", "v5", "chutes"])
def test_truncated_quote_at_many_lengths_raises_evidence_error(raw: bytes) -> None:
    end = len(parse_quote(raw).signed_bytes) + 4 + struct.unpack_from("<I", raw, len(parse_quote(raw).signed_bytes))[0]
    for n in [*range(0, 60), *range(60, end, 37), end - 1]:
        with pytest.raises(EvidenceError):
            parse_quote(raw[:n])
    parse_quote(raw[:end])  # exactly the signature data, no trailing bytes: fine


def _patch(raw: bytes, off: int, fmt: str, value: int) -> bytes:
    b = bytearray(raw)
    struct.pack_into(fmt, b, off, value)
    return bytes(b)


def test_wrong_tee_type_raises() -> None:
    with pytest.raises(EvidenceError, match="tee_type 0x0 is not TDX"):
        parse_quote(_patch(V4, 4, "<I", 0))


@pytest.mark.parametrize("version", [0, 3, 6, 0xFFFF])
def test_unsupported_version_raises(version: int) -> None:
    with pytest.raises(EvidenceError, match=f"unsupported version {version}"):
        parse_quote(_patch(V4, 0, "<H", version))


def test_wrong_attestation_key_type_raises() -> None:
    with pytest.raises(EvidenceError, match="attestation key type 3"):
        parse_quote(_patch(V4, 2, "<H", 3))


@pytest.mark.parametrize(("body_type", "match"), [(1, "SGX"), (7, "unknown"), (2, "body_size 648")])
def test_v5_bad_body_type_or_size_raises(body_type: int, match: str) -> None:
    with pytest.raises(EvidenceError, match=match):
        parse_quote(_patch(V5, 48, "<H", body_type))


def test_v5_td15_ex_body_size_is_bounded() -> None:
    with pytest.raises(EvidenceError, match=r"TD1\.5-ex body_size 600"):
        parse_quote(_patch(_patch(V5, 48, "<H", 4), 50, "<I", 600))
    with pytest.raises(EvidenceError):
        parse_quote(_patch(_patch(V5, 48, "<H", 4), 50, "<I", 0xFFFFFFFF))


def test_wrong_certification_data_type_raises() -> None:
    with pytest.raises(EvidenceError, match="certification data type 5"):
        parse_quote(_patch(V4, 636 + 128, "<H", 5))


def test_oversized_inner_lengths_raise() -> None:
    with pytest.raises(EvidenceError, match="signature data"):
        parse_quote(_patch(V4, 632, "<I", 0xFFFFFFFF))
    with pytest.raises(EvidenceError, match="certification data"):
        parse_quote(_patch(V4, 636 + 130, "<I", 0xFFFFFFFF))
    with pytest.raises(EvidenceError, match="QE auth data"):
        parse_quote(_patch(V4, 636 + 134 + 384 + 64, "<H", 0xFFFF))


def test_debug_bit_flipped_sets_debug_true() -> None:
    b = bytearray(V4)
    b[TD_ATTR_OFF] |= 0x01
    q = parse_quote(bytes(b))
    assert q.report.debug is True and q.to_json()["debug"] is True
    assert q.to_json()["td_attributes"] == "0100001000000000"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_parse_quote_arbitrary_bytes_raise_only_evidence_error(data: bytes) -> None:
    with contextlib.suppress(EvidenceError):
        parse_quote(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=len(V4) - 1))
def test_parse_quote_mutated_real_quote_raises_only_evidence_error(patch: bytes, off: int) -> None:
    data = V4[:off] + patch + V4[off + len(patch) :]
    with contextlib.suppress(EvidenceError):
        parse_quote(data)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.text(alphabet="0123456789abcdefABCDEF+/=x \n", max_size=200)))
def test_decode_quote_text_arbitrary_text_raises_only_evidence_error(text: str) -> None:
    with contextlib.suppress(EvidenceError):
        decode_quote_text(text)
