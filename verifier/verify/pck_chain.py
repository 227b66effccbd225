"""The PCK certificate chain a quote carries must end in the pinned Intel root, byte for byte.

dcap-qvl verifies the chain against the root it is given and ignores the quote's own copy of the root; we
also require that copy to BE the pinned root, so that no byte of the quote's certification data is left
unverified (a quote whose chain names another root is not one Intel's infrastructure produced).
"""

from __future__ import annotations

import hmac

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.core.errors import CheckFailed, EvidenceError


def check_chain_root(pck_chain_pem: bytes, root_der: bytes) -> None:
    try:
        certs = x509.load_pem_x509_certificates(pck_chain_pem)
    except ValueError as exc:
        raise EvidenceError(f"quote PCK chain: not a PEM certificate chain ({str(exc)[:80]})") from None
    last = certs[-1].public_bytes(Encoding.DER)
    if not hmac.compare_digest(last, root_der):
        raise CheckFailed(
            "the quote's PCK chain ends in another certificate than the pinned Intel root",
            reason="cert_chain_invalid",
            details={"expected": "the pinned Intel SGX Root CA", "got": certs[-1].subject.rfc4514_string()},
        )
