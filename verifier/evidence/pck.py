"""FMSPC and PCK CA of a quote's PCK leaf certificate: they pick the collateral (dcap-qvl.md §1.5, §4.3).

The leaf carries Intel's SGX extension (OID 1.2.840.113741.1.13.1), a SEQUENCE of
SEQUENCE { OID, value }; sub-OID .4 is the FMSPC (OCTET STRING, 6 bytes). The CA is named by the
leaf's issuer CN ("Intel SGX PCK Platform CA" / "Intel SGX PCK Processor CA"). Nothing here is
trusted: dcap-qvl checks the chain, and that the TCB info's FMSPC matches this extension.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from verifier.core.errors import EvidenceError

SGX_EXTENSION_OID = x509.ObjectIdentifier("1.2.840.113741.1.13.1")
_FMSPC_OID = bytes.fromhex("2a864886f84d010d0104")  # DER content of 1.2.840.113741.1.13.1.4
_CA_BY_ISSUER = {"Intel SGX PCK Platform CA": "platform", "Intel SGX PCK Processor CA": "processor"}
_SEQUENCE, _OID, _OCTETS = 0x30, 0x06, 0x04


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
    raise EvidenceError(f"none of the {len(certs)} certificate(s) in the PCK chain has the Intel SGX extension {SGX_EXTENSION_OID.dotted_string}")


def fmspc_from_extension(der: bytes) -> str:
    """The FMSPC (upper hex) from the DER value of the SGX extension; EvidenceError if absent or malformed."""
    tag, start, end = _tlv(der, 0, len(der))
    if tag != _SEQUENCE or end != len(der):
        raise EvidenceError(f"SGX extension: expected one SEQUENCE spanning {len(der)} bytes, got tag 0x{tag:02x} ending at {end}")
    pos = start
    while pos < end:
        tag, item, item_end = _tlv(der, pos, end)
        if tag != _SEQUENCE:
            raise EvidenceError(f"SGX extension: entry at offset {pos} has tag 0x{tag:02x}, expected SEQUENCE")
        oid_tag, oid_start, oid_end = _tlv(der, item, item_end)
        if oid_tag != _OID:
            raise EvidenceError(f"SGX extension: entry at offset {pos} starts with tag 0x{oid_tag:02x}, expected OID")
        if der[oid_start:oid_end] == _FMSPC_OID:
            vtag, vstart, vend = _tlv(der, oid_end, item_end)
            if vtag != _OCTETS or vend - vstart != 6:
                raise EvidenceError(f"SGX extension: FMSPC is tag 0x{vtag:02x} of {vend - vstart} bytes, expected a 6-byte OCTET STRING")
            return der[vstart:vend].hex().upper()
        pos = item_end
    raise EvidenceError("SGX extension has no FMSPC entry (OID 1.2.840.113741.1.13.1.4)")


def _tlv(buf: bytes, pos: int, limit: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``, which must end by ``limit``."""
    if pos + 2 > limit:
        raise EvidenceError(f"SGX extension: truncated DER element at offset {pos} (limit {limit})")
    tag, first = buf[pos], buf[pos + 1]
    if tag & 0x1F == 0x1F:
        raise EvidenceError(f"SGX extension: multi-byte DER tag at offset {pos} is not supported")
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > limit:
            raise EvidenceError(f"SGX extension: bad DER length form 0x{first:02x} at offset {pos - 1}")
        length = int.from_bytes(buf[pos:pos + n], "big")
        pos += n
    if pos + length > limit:
        raise EvidenceError(f"SGX extension: DER element at offset {pos} claims {length} bytes, only {limit - pos} remain")
    return tag, pos, pos + length
