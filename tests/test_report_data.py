"""report_data bindings read from the quote bytes: signer (three layouts), nonce, Chutes, TLS SPKI fingerprint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.quote import decode_quote_text, parse_quote
from verifier.evidence.report_data import (
    check_binds_nonce,
    check_binds_signer,
    check_chutes_binding,
    tls_spki_fingerprint,
)

FIX = Path(__file__).resolve().parent.parent / "fixtures"
ATT = FIX / "redpill" / "attestation"
SUB = ATT / "phala-flat-ecdsa-substituted-nonce-nanogpt-20260325"
PHALA = json.loads((ATT / "phala-flat-ecdsa-nanogpt-gemma-20260610" / "attestation_report.json").read_text())
PHALA_NONCE = json.loads((ATT / "phala-flat-ecdsa-nanogpt-gemma-20260610" / "expected.json").read_text())[
    "client_nonce"
]
NEAR = json.loads((ATT / "nearcloud-two-layer-ed25519-tls-20260629" / "attestation_report.json").read_text())
NEAR_NONCE = json.loads((ATT / "nearcloud-two-layer-ed25519-tls-20260629" / "expected.json").read_text())[
    "client_nonce"
]
CHUTES = json.loads((FIX / "nvidia" / "redpill-chutes-8gpu-nras-fail-20260610" / "attestation_report.json").read_text())


def _rd(att: dict[str, Any]) -> bytes:
    return parse_quote(decode_quote_text(att["intel_quote"])).report.report_data


def test_phala_flat_binds_padded_ecdsa_address_and_client_nonce() -> None:
    rd = _rd(PHALA)
    assert check_binds_signer(rd, signing_algo="ecdsa", signing_address=PHALA["signing_address"]) == "padded_address"
    assert (
        check_binds_signer(rd, signing_algo="ECDSA", signing_address=PHALA["signing_address"].lower()[2:])
        == "padded_address"
    )
    check_binds_nonce(rd, bytes.fromhex(PHALA_NONCE))


@pytest.mark.parametrize("which", ["gateway", "model"])
def test_nearcloud_binds_tls_fingerprint_layout_with_ed25519(which: str) -> None:
    att = NEAR["gateway_attestation"] if which == "gateway" else NEAR["model_attestations"][0]
    rd = _rd(att)
    kw = {"signing_algo": att["signing_algo"], "signing_address": att["signing_address"]}
    assert check_binds_signer(rd, **kw, tls_cert_fingerprint=att["tls_cert_fingerprint"]) == "tls_fingerprint"
    check_binds_nonce(rd, bytes.fromhex(NEAR_NONCE))
    with pytest.raises(CheckFailed) as ei:  # without the fingerprint, the bare key layout does not match
        check_binds_signer(rd, **kw)
    assert ei.value.reason == "report_data_signer_mismatch"


def test_tls_fingerprint_layout_with_ecdsa_address() -> None:
    addr = bytes.fromhex(PHALA["signing_address"][2:])
    fp = hashlib.sha256(b"leaf spki").hexdigest()
    rd = hashlib.sha256(addr + bytes.fromhex(fp)).digest() + bytes(32)
    kw = {"signing_algo": "ecdsa", "signing_address": PHALA["signing_address"]}
    assert check_binds_signer(rd, **kw, tls_cert_fingerprint="0x" + fp.upper()) == "tls_fingerprint"
    with pytest.raises(CheckFailed):
        check_binds_signer(rd, **kw, tls_cert_fingerprint=hashlib.sha256(b"other").hexdigest())


def test_gateway_tls_fingerprint_is_sha256_of_leaf_spki() -> None:
    fp = tls_spki_fingerprint(NEAR["tls_certificate"].encode())
    assert fp == NEAR["gateway_attestation"]["tls_cert_fingerprint"]


def test_tls_spki_fingerprint_rejects_non_pem() -> None:
    with pytest.raises(EvidenceError):
        tls_spki_fingerprint(b"not a certificate")


@pytest.mark.parametrize("i", range(5))
def test_chutes_instances_bind_nonce_and_e2e_pubkey(i: int) -> None:
    inst = CHUTES["all_attestations"][i]
    rd = _rd(inst)
    check_chutes_binding(rd, nonce_hex=inst["nonce"], e2e_pubkey_b64=inst["e2e_pubkey"])
    other = CHUTES["all_attestations"][(i + 1) % 5]
    with pytest.raises(CheckFailed) as ei:
        check_chutes_binding(rd, nonce_hex=inst["nonce"], e2e_pubkey_b64=other["e2e_pubkey"])
    assert ei.value.reason == "report_data_signer_mismatch"


def test_swapped_signer_fails_with_report_data_signer_mismatch() -> None:
    rd = _rd(PHALA)
    other = "0xE321139b91167876A6Fa8c9DC04fF4D5694A0F72"  # the gpt-oss signer from another report
    with pytest.raises(CheckFailed) as ei:
        check_binds_signer(rd, signing_algo="ecdsa", signing_address=other)
    assert ei.value.reason == "report_data_signer_mismatch"
    assert ei.value.details["got"] == rd[:32].hex()
    assert ei.value.details["expected"] == other[2:].lower() + "00" * 12
    near = NEAR["model_attestations"][0]
    with pytest.raises(CheckFailed):  # gateway key against the model quote
        check_binds_signer(
            _rd(near),
            signing_algo="ed25519",
            signing_address=NEAR["gateway_attestation"]["signing_address"],
            tls_cert_fingerprint=near["tls_cert_fingerprint"],
        )


def test_wrong_nonce_fails_with_nonce_mismatch() -> None:
    n = bytearray.fromhex(PHALA_NONCE)
    n[-1] ^= 1
    with pytest.raises(CheckFailed) as ei:
        check_binds_nonce(_rd(PHALA), bytes(n))
    assert ei.value.reason == "nonce_mismatch"
    assert ei.value.details == {"expected": bytes(n).hex(), "got": PHALA_NONCE}


@pytest.mark.parametrize("model", ["gpt-oss-120b", "qwen3.5-27b"])
def test_substituted_nonce_reports_fail_against_client_nonce(model: str) -> None:
    att = json.loads((SUB / f"{model}_attestation_report.json").read_text())
    client = bytes.fromhex((SUB / f"{model}_client_nonce.txt").read_text().strip())
    rd = _rd(att)
    assert check_binds_signer(rd, signing_algo="ecdsa", signing_address=att["signing_address"]) == "padded_address"
    check_binds_nonce(rd, bytes.fromhex(att["request_nonce"]))  # the gateway's substitute is what is bound
    with pytest.raises(CheckFailed) as ei:
        check_binds_nonce(rd, client)
    assert ei.value.reason == "nonce_mismatch"


@pytest.mark.parametrize(
    ("rd", "kw"),
    [
        (bytes(63), {"signing_algo": "ecdsa", "signing_address": "0x" + "00" * 20}),
        (bytes(64), {"signing_algo": "ecdsa", "signing_address": "0x" + "00" * 32}),
        (bytes(64), {"signing_algo": "ed25519", "signing_address": "00" * 20}),
        (bytes(64), {"signing_algo": "ecdsa", "signing_address": "0x" + "zz" * 20}),
        (bytes(64), {"signing_algo": "ecdsa", "signing_address": "00" * 20, "tls_cert_fingerprint": "00" * 31}),
    ],
)
def test_bad_lengths_and_hex_are_evidence_errors(rd: bytes, kw: dict[str, Any]) -> None:
    with pytest.raises(EvidenceError):
        check_binds_signer(rd, **kw)


def test_unsupported_algo_and_bad_nonce_length() -> None:
    with pytest.raises(CheckFailed) as ei:
        check_binds_signer(bytes(64), signing_algo="rsa", signing_address="00")
    assert ei.value.reason == "unsupported_signing_algo"
    with pytest.raises(EvidenceError):
        check_binds_nonce(bytes(64), bytes(31))
    with pytest.raises(EvidenceError):
        check_chutes_binding(bytes(64), nonce_hex="é", e2e_pubkey_b64="x")


@pytest.mark.parametrize(
    ("nonce_hex", "e2e_pubkey"), [("ab\ud800", "key"), ("ab", "k\udfffey"), (None, "key"), ("ab", 5)]
)
def test_chutes_binding_with_a_lone_surrogate_or_a_non_string_is_malformed_evidence(
    nonce_hex: Any, e2e_pubkey: Any
) -> None:
    with pytest.raises(EvidenceError, match="expected an ASCII string"):
        check_chutes_binding(bytes(64), nonce_hex=nonce_hex, e2e_pubkey_b64=e2e_pubkey)
