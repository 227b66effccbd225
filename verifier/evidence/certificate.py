"""Decoding untrusted X.509 certificates (GPU device chains, NRAS x5c) into ``cryptography`` objects.

``cryptography`` reports undecodable input with several exception types, not all ``ValueError``
(``InvalidVersion`` for a version other than v1/v3, ``DuplicateExtension``, ``UnsupportedAlgorithm``
for a key type it does not know, ...), and decodes names, extensions and keys lazily, on first
access. The loaders here decode every part the verifier reads (names, validity, serial, extensions,
public key) once, up front, and turn all of those errors into ``EvidenceError`` naming what did not
decode; a certificate they return can be read without surprises.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from verifier.core.errors import EvidenceError

DECODE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    UnsupportedAlgorithm,
)


def why(exc: BaseException) -> str:
    """An exception's text, or its type's name when it has none."""
    return str(exc) or type(exc).__name__


def load_pem_chain(pem: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except DECODE_ERRORS as exc:
        raise EvidenceError(f"{what} is not a list of PEM X.509 certificates: {why(exc)}") from None
    for i, cert in enumerate(certs):
        _decode_all(cert, f"{what} certificate {i}")
    return certs


def load_der(der: bytes, what: str) -> x509.Certificate:
    try:
        cert = x509.load_der_x509_certificate(der)
    except DECODE_ERRORS as exc:
        raise EvidenceError(f"{what} is not a DER X.509 certificate: {why(exc)}") from None
    _decode_all(cert, what)
    return cert


def _decode_all(cert: x509.Certificate, what: str) -> None:
    try:
        for name in (cert.subject, cert.issuer):
            name.rfc4514_string()
        serial, _, _ = cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc
        for ext in cert.extensions:
            _ = ext.value
    except DECODE_ERRORS as exc:
        raise EvidenceError(f"{what} does not decode: {why(exc)}") from None
    if serial <= 0:
        raise EvidenceError(f"{what}: the serial number is not a positive integer (RFC 5280 §4.1.2.2)")
    public_key(cert, what)


def extensions(cert: x509.Certificate, what: str) -> x509.Extensions:
    try:
        return cert.extensions
    except DECODE_ERRORS as exc:
        raise EvidenceError(f"{what}: the extensions do not decode: {why(exc)}") from None


def public_key(cert: x509.Certificate, what: str) -> CertificatePublicKeyTypes:
    try:
        return cert.public_key()
    except DECODE_ERRORS as exc:
        raise EvidenceError(f"{what}: the public key is of an unknown type or does not decode: {why(exc)}") from None


def common_name(cert: x509.Certificate, what: str) -> str:
    """The subject CN (the first, if several), else the whole subject as RFC 4514 text."""
    try:
        attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        value = attrs[0].value if attrs else cert.subject.rfc4514_string()
    except DECODE_ERRORS as exc:
        raise EvidenceError(f"{what}: the subject does not decode: {why(exc)}") from None
    return value if isinstance(value, str) else value.decode("utf-8", "replace")
