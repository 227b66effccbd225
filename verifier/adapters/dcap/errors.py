"""Map dcap-qvl's error text to the stable reason codes of ``verifier.appraise.catalog.REASONS``.

dcap-qvl 0.7.0 raises ``ValueError("Verification failed: <what>[\\n\\nCaused by:\\n    <cause>]")``;
the measured strings are listed in docs/dcap.md §1.4 (policy errors §1.2; the
remaining ones are literal strings of the 0.7.0 extension module). The full text is always kept
in the CheckFailed details; the code is only the stable summary.
"""

from __future__ import annotations

# (substring, reason), first match wins. Order matters: a certificate-chain error names its cause
# after "Failed to verify certificate chain" (§1.4), so the causes come before the generic line;
# "CertRevoked" comes before the TCB "Revoked" status.
_TABLE: tuple[tuple[str, str], ...] = (
    # the quote itself (§1.3 decode step)
    ("Failed to decode quote", "quote_malformed"),
    ("Failed to parse quote", "quote_malformed"),
    ("Unsupported DCAP quote version", "quote_malformed"),
    ("TEE quote must have version", "quote_malformed"),
    ("Invalid TEE type", "quote_malformed"),
    ("Unsupported DCAP attestation key type", "quote_malformed"),
    ("Unknown QE vendor ID", "unknown_qe_vendor"),
    ("ISV enclave report signature is invalid", "quote_signature_invalid"),
    ("QE report hash mismatch", "qe_report_invalid"),
    ("Signature is invalid for qe_report", "qe_report_invalid"),
    # collateral signatures and parsing
    ("Signature is invalid for tcb_info", "collateral_invalid"),
    ("Signature is invalid for qe_identity", "collateral_invalid"),
    ("Failed to parse JSON", "collateral_invalid"),  # QuoteCollateralV3.from_json (§1.1)
    # certificate chains and CRLs (webpki causes, §1.4)
    ("CertRevoked", "cert_revoked"),
    ("CrlExpired", "crl_expired"),
    ("Failed to parse root CA CRL", "crl_invalid"),
    ("InvalidCrlSignatureForPublicKey", "crl_invalid"),
    ("invalid certificate revocation list", "crl_invalid"),
    ("UnknownIssuer", "cert_chain_invalid"),
    ("BadDer", "cert_chain_invalid"),
    ("Failed to load root ca", "cert_chain_invalid"),
    ("Failed to parse root CA certificate", "cert_chain_invalid"),
    ("Failed to verify certificate chain", "cert_chain_invalid"),
    # collateral validity window (§1.3: max(issueDate) <= now <= min(nextUpdate))
    ("TCBInfo issue date is in the future", "collateral_not_yet_valid"),
    ("QE Identity issue date is in the future", "collateral_not_yet_valid"),
    ("TCBInfo expired", "collateral_expired"),
    ("QE Identity expired", "collateral_expired"),
    ("Collateral expired", "collateral_expired"),  # policy API wording (§1.1)
    # matching the platform and the QE against the collateral
    ("Fmspc mismatch", "fmspc_mismatch"),
    ("Unsupported QE Identity id/version", "qe_identity_mismatch"),
    ("QE MRSIGNER mismatch", "qe_identity_mismatch"),
    ("QE ISVPRODID mismatch", "qe_identity_mismatch"),
    ("QE ATTRIBUTES mismatch", "qe_identity_mismatch"),
    ("QE MISCSELECT mismatch", "qe_identity_mismatch"),
    ("QE report validation failed", "qe_identity_mismatch"),
    ("No matching TCB level found", "no_matching_tcb_level"),
    ("Debug mode is enabled", "debug_td"),
    ("TCB status is invalid: Revoked", "tcb_revoked"),
    ("Revoked", "tcb_revoked"),
)


def reason_for(error_text: str) -> str:
    """The reason code for a dcap-qvl error text; ``dcap_error`` when the text is not recognised."""
    for needle, reason in _TABLE:
        if needle in error_text:
            return reason
    return "dcap_error"
