"""FMSPC and PCK CA of a quote's PCK leaf certificate: they pick the collateral (docs/dcap.md §1.5, §4.3).

The leaf carries Intel's SGX extension (OID 1.2.840.113741.1.13.1), a SEQUENCE of
SEQUENCE { OID, value }; sub-OID .4 is the FMSPC (OCTET STRING, 6 bytes). The CA is named by the
leaf's issuer CN ("Intel SGX PCK Platform CA" / "Intel SGX PCK Processor CA"). Nothing here is
trusted: dcap-qvl checks the chain, and that the TCB info's FMSPC matches this extension.
"""

from __future__ import annotations

from asn1crypto import core
from cryptography import x509
from cryptography.x509.oid import NameOID

from verifier.core.errors import EvidenceError

SGX_EXTENSION_OID = x509.ObjectIdentifier("1.2.840.113741.1.13.1")
_FMSPC_OID = "1.2.840.113741.1.13.1.4"
_CA_BY_ISSUER = {"Intel SGX PCK Platform CA": "platform", "Intel SGX PCK Processor CA": "processor"}


class _SgxEntry(core.Sequence):
    _fields = [("id", core.ObjectIdentifier), ("value", core.Any)]  # noqa: RUF012 (asn1crypto's class-level spec)


class _SgxExtension(core.SequenceOf):
    _child_spec = _SgxEntry


def pck_identity(pck_chain_pem: bytes) -> tuple[str, str]:
    """(FMSPC as 12 upper-case hex chars, "platform" | "processor") of the PCK leaf in the chain."""
    if not pck_chain_pem.strip():
        raise EvidenceError("PCK certificate chain is empty (the quote carries no certification data type 5)")
    try:
        certs = x509.load_pem_x509_certificates(pck_chain_pem)
    except (ValueError, x509.InvalidVersion) as exc:
        raise EvidenceError(f"PCK certificate chain is not PEM X.509 certificates: {exc!r}") from exc
    for cert in certs:
        try:
            ext = cert.extensions.get_extension_for_oid(SGX_EXTENSION_OID)
            issuer_cn = [a.value for a in cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)]
        except x509.ExtensionNotFound:
            continue
        except (ValueError, x509.DuplicateExtension, x509.InvalidVersion) as exc:
            raise EvidenceError(f"PCK certificate chain: malformed certificate: {exc}") from exc
        raw = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
        fmspc = fmspc_from_extension(raw)
        cn = str(issuer_cn[0]) if issuer_cn else None
        if cn not in _CA_BY_ISSUER:
            raise EvidenceError(f"PCK leaf issuer CN is {cn!r}, expected one of {sorted(_CA_BY_ISSUER)}")
        return fmspc, _CA_BY_ISSUER[cn]
    raise EvidenceError(
        f"none of the {len(certs)} certificate(s) in the PCK chain has the Intel SGX extension "
        f"{SGX_EXTENSION_OID.dotted_string}"
    )


def fmspc_from_extension(der: bytes) -> str:
    """The FMSPC (upper hex) from the DER value of the SGX extension; EvidenceError if absent or malformed.

    Only the shape the FMSPC lookup needs is enforced: a SEQUENCE OF SEQUENCE { OID, value } spanning
    ``der`` exactly, and exactly one FMSPC entry, a 6-byte OCTET STRING; the other entries' values are not
    read. asn1crypto also reads BER length forms; harmless here, as dcap-qvl re-reads the extension itself.
    """
    try:
        entries = _SgxExtension.load(der, strict=True)
        found = [entry["value"] for entry in entries if entry["id"].dotted == _FMSPC_OID]
        if len(found) != 1:
            raise EvidenceError(f"SGX extension has {len(found)} FMSPC entries (OID {_FMSPC_OID}), expected one")
        fmspc = found[0].parse(core.OctetString).native
    except (ValueError, TypeError) as exc:  # asn1crypto's errors for bad tags, lengths and trailing data
        raise EvidenceError(f"SGX extension: not a SEQUENCE OF (OID, value): {exc}") from None
    if len(fmspc) != 6:
        raise EvidenceError(f"SGX extension: FMSPC is {len(fmspc)} bytes, expected a 6-byte OCTET STRING")
    return bytes(fmspc).hex().upper()
