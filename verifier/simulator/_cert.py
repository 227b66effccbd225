"""Small X.509 helpers shared by the simulated vendor PKIs (Intel, NVIDIA device, NRAS)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_ATTR = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "C": NameOID.COUNTRY_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
}


def name(*pairs: tuple[str, str]) -> x509.Name:
    """An X.509 name with attributes in the given order (vendors differ: Intel CN..C, NVIDIA serialNumber,C,O,CN)."""
    return x509.Name([x509.NameAttribute(_ATTR[k], v) for k, v in pairs])


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def ski(key: PublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key)


def aki(issuer_key: PublicKey) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key)


def key_usage(**flags: bool) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{n: flags.get(n, False) for n in names})


def crl_dp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)])


def issue(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: PublicKey,
    issuer_key: PrivateKey,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    extensions: Iterable[tuple[x509.ExtensionType, bool]],
    hash_alg: hashes.SHA256 | hashes.SHA384,
) -> x509.Certificate:
    """Sign a v3 certificate; ECDSA signatures are RFC 6979 deterministic so the bytes are reproducible."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    deterministic = True if isinstance(issuer_key, ec.EllipticCurvePrivateKey) else None
    return builder.sign(issuer_key, hash_alg, ecdsa_deterministic=deterministic)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def der_crl(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)
