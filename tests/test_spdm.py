"""SPDM GET_MEASUREMENTS transcript parsing (docs/gpu.md §2.1) and the GPU nonce check."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.gpu_payload import parse_nvidia_payload
from verifier.evidence.spdm import SpdmReport, check_gpu_nonces, parse_spdm

FIX = Path(__file__).resolve().parent.parent / "fixtures"
SDK = FIX / "nvidia/attestation-sdk/evidence"
PHALA_0325 = FIX / "nvidia/phala-format-1gpu-20260325"
NEAR = FIX / "redpill/attestation/nearcloud-two-layer-ed25519-tls-20260629/attestation_report.json"
NEAR_NONCE = bytes.fromhex("e79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609")


def hex_file(path: Path) -> bytes:
    return bytes.fromhex(path.read_text().strip())


PHALA_EV = (PHALA_0325 / "gpu0_evidence.bin").read_bytes()


def test_phala_transcript_layout_and_opaque_fields() -> None:
    r = parse_spdm(PHALA_EV)
    assert r.request_nonce.hex() == "362ce79951d276775deaa81a3098c62269a794bad7158ab61a7f9c79fd0145a4"
    assert [i for i, _ in r.measurement_blocks] == list(range(1, 65))
    assert all(len(v) == 48 for _, v in r.measurement_blocks)
    assert len(r.signature) == 96 and r.signed_bytes + r.signature == PHALA_EV
    assert len(r.responder_nonce) == 32
    assert (r.driver_version, r.vbios_version) == ("570.172.08", "96.00.D0.00.03")
    assert (r.project, r.project_sku, r.chip_sku) == ("G520", "0280", "895")
    assert r.fwid is not None and len(r.fwid) == 48
    assert r.opaque[11] == b"\x55"  # NVDEC0 disabled (PROVENANCE §2)


@pytest.mark.parametrize(
    ("report", "driver", "vbios", "feature_flag"),
    [
        ("sample_hopperAttestationReport.txt", "535.86.09", "96.00.5E.00.01", None),
        ("sample_blackwellAttestationReport.txt", "575.32", "97.00.88.00.0F", None),
        ("sdk_580.159.03_hopperAttestationReport.txt", "580.159.03", "96.00.74.00.20", 0),
        ("sample_hopperAttestationReportExpired.txt", "570.124.03", "96.00.5E.00.04", None),
    ],
)
def test_nvidia_samples_parse(report: str, driver: str, vbios: str, feature_flag: int | None) -> None:
    r = parse_spdm(hex_file(SDK / report))
    assert (r.driver_version, r.vbios_version, r.feature_flag) == (driver, vbios, feature_flag)


def test_chutes_feature_flag_is_ppcie() -> None:
    import base64

    inst = json.loads((FIX / "nvidia/redpill-chutes-8gpu-nras-fail-20260610/attestation_report.json").read_text())[
        "all_attestations"
    ][0]
    assert parse_spdm(base64.b64decode(inst["gpu_evidence"][0]["evidence"])).feature_flag == 2


def test_vbios_formatting_rule() -> None:
    r = SpdmReport(b"", (), b"", {6: bytes.fromhex("00cf009602000000")}, b"", b"")
    assert r.vbios_version == "96.00.CF.00.02"
    assert replace(r, opaque={}).vbios_version is None


@pytest.mark.parametrize(
    "cut", [0, 3, 4, 35, 36, 41, 44, 45, 100, 3565, 3597, 3600, len(PHALA_EV) - 97, len(PHALA_EV) - 1]
)
def test_truncated_transcript_is_evidence_error(cut: int) -> None:
    with pytest.raises(EvidenceError):
        parse_spdm(PHALA_EV[:cut])


def _patched(offset: int, value: bytes) -> bytes:
    return PHALA_EV[:offset] + value + PHALA_EV[offset + len(value) :]


@pytest.mark.parametrize(
    "evidence",
    [
        PHALA_EV + b"\0",  # signature not at the end
        _patched(0, b"\x10"),  # SPDM version
        _patched(1, b"\xe1"),  # request code
        _patched(38, b"\x61"),  # response code
        _patched(41, b"\x3f"),  # block count 63 vs 64 blocks
        _patched(42, (3521).to_bytes(3, "little")),  # record length off by one
        _patched(45 + 2, (60).to_bytes(2, "little")),  # first block overruns its DMTF size
        _patched(45 + 5, (47).to_bytes(2, "little")),  # DMTF value size disagrees
    ],
)
def test_inconsistent_lengths_and_codes_are_evidence_errors(evidence: bytes) -> None:
    with pytest.raises(EvidenceError):
        parse_spdm(evidence)


def test_duplicate_opaque_type_is_rejected() -> None:
    r = parse_spdm(PHALA_EV)
    opaque_at = 45 + 3520 + 32 + 2
    first_type = next(iter(r.opaque))
    second_at = opaque_at + 4 + len(r.opaque[first_type])
    with pytest.raises(EvidenceError, match="twice"):
        parse_spdm(_patched(second_at, first_type.to_bytes(2, "little")))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600))
def test_random_bytes_raise_only_evidence_error(data: bytes) -> None:
    for blob in (data, PHALA_EV[:45] + data, PHALA_EV[:3600] + data):
        with contextlib.suppress(EvidenceError):
            parse_spdm(blob)


@settings(max_examples=300, deadline=None)
@given(pos=st.integers(0, len(PHALA_EV) - 1), byte=st.integers(0, 255))
def test_single_byte_mutations_parse_or_raise_evidence_error(pos: int, byte: int) -> None:
    with contextlib.suppress(EvidenceError):
        parse_spdm(_patched(pos, bytes([byte])))


# ---------------------------------------------------------------- check_gpu_nonces


def test_near_eight_gpus_answer_the_client_nonce() -> None:
    payload = parse_nvidia_payload(json.loads(NEAR.read_text())["model_attestations"][0]["nvidia_payload"])
    check_gpu_nonces(payload, NEAR_NONCE)


def test_phala_0325_fails_against_the_client_nonce_and_passes_against_its_request_nonce() -> None:
    payload = parse_nvidia_payload((PHALA_0325 / "nvidia_payload.json").read_text())
    client = bytes.fromhex((PHALA_0325 / "client_nonce.txt").read_text().strip())
    with pytest.raises(CheckFailed) as exc:
        check_gpu_nonces(payload, client)
    assert exc.value.reason == "gpu_nonce_mismatch"
    mism = exc.value.details["mismatches"]
    assert set(mism) == {"payload", "GPU-0"}
    assert mism["GPU-0"] == {
        "expected": client.hex(),
        "got": "362ce79951d276775deaa81a3098c62269a794bad7158ab61a7f9c79fd0145a4",
    }
    check_gpu_nonces(payload, bytes.fromhex(payload.nonce or ""))


def test_a_claimed_payload_nonce_that_differs_from_the_spdm_nonce_fails() -> None:
    raw = json.loads(json.loads(NEAR.read_text())["model_attestations"][0]["nvidia_payload"])
    raw["evidence_list"][3]["nonce"] = "00" * 32
    with pytest.raises(CheckFailed) as exc:
        check_gpu_nonces(parse_nvidia_payload(raw), NEAR_NONCE)
    assert set(exc.value.details["mismatches"]) == {"GPU-3 payload"}
    raw["evidence_list"][3].pop("nonce")
    raw["nonce"] = "11" * 32
    with pytest.raises(CheckFailed) as exc:
        check_gpu_nonces(parse_nvidia_payload(raw), NEAR_NONCE)
    assert set(exc.value.details["mismatches"]) == {"payload"}


def test_spdm_nonce_mismatch_with_no_claimed_nonce_fails() -> None:
    raw = json.loads((PHALA_0325 / "nvidia_payload.json").read_text())
    raw.pop("nonce")
    with pytest.raises(CheckFailed) as exc:
        check_gpu_nonces(parse_nvidia_payload(raw), b"\x01" * 32)
    assert set(exc.value.details["mismatches"]) == {"GPU-0"}
