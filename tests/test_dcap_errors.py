"""dcap-qvl's error texts (measured, docs/dcap.md §1.4) map to stable reason codes."""

from __future__ import annotations

import pytest

from verifier.adapters.dcap.errors import _TABLE, reason_for
from verifier.appraise.catalog import REASONS

P = "Verification failed: "
CHAIN = P + "Failed to verify certificate chain\n\nCaused by:\n    "

MEASURED = [
    (P + "Failed to decode quote\n\nCaused by:\n    Not enough data to fill buffer", "quote_malformed"),
    (P + "Failed to decode quote\n\nCaused by:\n    Invalid TEE type", "quote_malformed"),
    (P + "Failed to decode quote\n\nCaused by:\n    Unsupported body type", "quote_malformed"),
    (
        P + "Failed to decode quote\n\nCaused by:\n    Could not decode `Header::version`:\n    \tNot enough data",
        "quote_malformed",
    ),
    (P + "Unknown QE vendor ID", "unknown_qe_vendor"),
    (P + "ISV enclave report signature is invalid", "quote_signature_invalid"),
    (P + "QE report hash mismatch", "qe_report_invalid"),
    (P + "Signature is invalid for qe_report in quote", "qe_report_invalid"),
    (P + "Signature is invalid for tcb_info in quote_collateral", "collateral_invalid"),
    (P + "Signature is invalid for qe_identity in quote_collateral", "collateral_invalid"),
    ("Failed to parse JSON: missing field `pck_crl` at line 1 column 20", "collateral_invalid"),
    (CHAIN + "UnknownIssuer", "cert_chain_invalid"),
    (CHAIN + "CertRevoked", "cert_revoked"),
    (CHAIN + "InvalidCrlSignatureForPublicKey", "crl_invalid"),
    (CHAIN + "CrlExpired { time: UnixTime(1752919235), next_update: UnixTime(1752919235) }", "crl_expired"),
    (P + "CrlExpired { time: UnixTime(1796083200), next_update: UnixTime(1775215317) }", "crl_expired"),
    (P + "Failed to parse root CA CRL\n\nCaused by:\n    InvalidCrlSignatureForPublicKey", "crl_invalid"),
    (P + "Failed to load root ca\n\nCaused by:\n    BadDer", "cert_chain_invalid"),
    (P + "Failed to load root ca\n\nCaused by:\n    TrailingData(SignedData)", "cert_chain_invalid"),
    (P + "TCBInfo issue date is in the future", "collateral_not_yet_valid"),
    (P + "QE Identity issue date is in the future", "collateral_not_yet_valid"),
    (P + "TCBInfo expired", "collateral_expired"),
    (P + "QE Identity expired", "collateral_expired"),
    (P + "Collateral expired: earliest_expiration 1752919234 < now 1755511234", "collateral_expired"),
    (P + "Fmspc mismatch", "fmspc_mismatch"),
    (P + "No matching TCB level found", "no_matching_tcb_level"),
    (
        P + "Unsupported QE Identity id/version for the quote TEE type: QE version 2 (expected TD_QE version [2, 3])",
        "qe_identity_mismatch",
    ),
    (P + "QE MRSIGNER mismatch: expected 8c4f…, got 00…", "qe_identity_mismatch"),
    (P + "Debug mode is enabled", "debug_td"),
    (P + "TCB status is invalid: Revoked", "tcb_revoked"),
]


@pytest.mark.parametrize(("text", "reason"), MEASURED, ids=[f"{r}:{t[len(P) :][:40]}" for t, r in MEASURED])
def test_each_measured_dcap_error_maps_to_its_reason(text: str, reason: str) -> None:
    assert reason_for(text) == reason


@pytest.mark.parametrize(
    "text",
    [
        "",
        "something new in dcap-qvl 0.8",
        P + "Reserved bits in TD attributes are set",
        P + "TDX module MRSIGNER mismatch: expected aa, got bb",
    ],
)
def test_unknown_text_falls_back_to_dcap_error(text: str) -> None:
    assert reason_for(text) == "dcap_error"


def test_the_manifest_records_newlines_as_pipes_and_still_maps() -> None:
    flattened = "Verification failed: Failed to verify certificate chain |  | Caused by: |     CertRevoked"
    assert reason_for(flattened) == "cert_revoked"


def test_every_code_in_the_table_is_a_catalogued_reason() -> None:
    assert {reason for _, reason in _TABLE} | {"dcap_error"} <= set(REASONS)
