"""A test Intel SGX PKI: Root CA, PCK Platform CA, PCK leaf (with the SGX extension), TCB Signing, CRLs.

Mirrors the chain inside ``fixtures/tdx/dcap-qvl-samples/tdx_quote.bin`` and its collateral
(docs/dcap.md §4.3): P-256 keys, ecdsa-with-SHA256, the same subject attributes (CN, O, L, ST, C),
extension order and criticality, and the PCK leaf's SGX extension (OID 1.2.840.113741.1.13.1)
with the same ASN.1 shape: PPID, TCB {16 component SVNs, PCESVN, CPUSVN}, PCE-ID, FMSPC, SGX
type, PlatformInstanceID, Configuration {dynamicPlatform, cachedKeys, SMTEnabled}.
The organisation reads "Intel Corporation (simulator)" so a stray test certificate is obvious.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

from verifier.simulator import _cert, keys
from verifier.simulator.platform import Platform

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_ORG = "Intel Corporation (simulator)"
_ROOT_CRL_URL = "https://certificates.simulator.invalid/IntelSGXRootCA.der"
_PCK_CRL_URL = "https://api.simulator.invalid/sgx/certification/v4/pckcrl?ca=platform&encoding=der"


def _intel_name(cn: str) -> x509.Name:
    return _cert.name(("CN", cn), ("O", _ORG), ("L", "Santa Clara"), ("ST", "CA"), ("C", "US"))


@dataclass(frozen=True)
class IntelPki:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    platform_ca_key: ec.EllipticCurvePrivateKey
    platform_ca: x509.Certificate
    pck_key: ec.EllipticCurvePrivateKey
    pck: x509.Certificate
    tcb_signing_key: ec.EllipticCurvePrivateKey
    tcb_signing: x509.Certificate

    @property
    def root_der(self) -> bytes:
        return _cert.der(self.root)

    @property
    def pck_chain_pem(self) -> bytes:
        """Quote certification data type 5: PCK leaf, Platform CA, Root (PEM, in that order)."""
        return _cert.pem(self.pck, self.platform_ca, self.root)

    @property
    def pck_crl_issuer_chain_pem(self) -> str:
        return _cert.pem(self.platform_ca, self.root).decode()

    @property
    def tcb_issuer_chain_pem(self) -> str:
        """Issuer chain of both the TCB info and the QE identity: TCB Signing, Root."""
        return _cert.pem(self.tcb_signing, self.root).decode()

    def root_ca_crl(self, this_update: datetime, next_update: datetime) -> bytes:
        return _crl(self.root_key, self.root, this_update, next_update, revoked=())

    def pck_crl(self, this_update: datetime, next_update: datetime, *, revoke_pck: bool = False) -> bytes:
        revoked = (self.pck.serial_number,) if revoke_pck else ()
        return _crl(self.platform_ca_key, self.platform_ca, this_update, next_update, revoked=revoked)


def build_intel_pki(seed: bytes, platform: Platform) -> IntelPki:
    root_key = keys.p256(seed, "intel/root")
    ca_key = keys.p256(seed, "intel/pck-platform-ca")
    pck_key = keys.p256(seed, "intel/pck")
    tcb_key = keys.p256(seed, "intel/tcb-signing")
    root_pub = root_key.public_key()
    root_name = _intel_name("Intel SGX Root CA")
    ca_name = _intel_name("Intel SGX PCK Platform CA")

    def ca_exts(pub: ec.EllipticCurvePublicKey, path_length: int) -> list[tuple[x509.ExtensionType, bool]]:
        return [
            (_cert.aki(root_pub), False),
            (_cert.crl_dp(_ROOT_CRL_URL), False),
            (_cert.ski(pub), False),
            (_cert.key_usage(key_cert_sign=True, crl_sign=True), True),
            (x509.BasicConstraints(ca=True, path_length=path_length), True),
        ]

    def signer_exts(pub: ec.EllipticCurvePublicKey, issuer_pub: ec.EllipticCurvePublicKey, crl_url: str):
        return [
            (_cert.aki(issuer_pub), False),
            (_cert.crl_dp(crl_url), False),
            (_cert.ski(pub), False),
            (_cert.key_usage(digital_signature=True, content_commitment=True), True),
            (x509.BasicConstraints(ca=False, path_length=None), True),
        ]

    sha256 = hashes.SHA256()
    root = _cert.issue(
        subject=root_name,
        issuer=root_name,
        public_key=root_pub,
        issuer_key=root_key,
        serial=keys.serial(seed, "intel/root"),
        not_before=_cert.utc(2018, 5, 21, 10, 45, 10),
        not_after=_cert.utc(2049, 12, 31, 23, 59, 59),
        extensions=ca_exts(root_pub, 1),
        hash_alg=sha256,
    )
    ca_pub = ca_key.public_key()
    platform_ca = _cert.issue(
        subject=ca_name,
        issuer=root_name,
        public_key=ca_pub,
        issuer_key=root_key,
        serial=keys.serial(seed, "intel/pck-platform-ca"),
        not_before=_cert.utc(2018, 5, 21, 10, 50, 10),
        not_after=_cert.utc(2049, 5, 21, 10, 50, 10),
        extensions=ca_exts(ca_pub, 0),
        hash_alg=sha256,
    )
    pck_pub = pck_key.public_key()
    sgx_ext = x509.UnrecognizedExtension(ObjectIdentifier(SGX_EXTENSION_OID), sgx_extension_value(seed, platform))
    pck = _cert.issue(
        subject=_intel_name("Intel SGX PCK Certificate"),
        issuer=ca_name,
        public_key=pck_pub,
        issuer_key=ca_key,
        serial=keys.serial(seed, "intel/pck"),
        not_before=_cert.utc(2025, 2, 6, 23, 25, 51),
        not_after=_cert.utc(2045, 2, 6, 23, 25, 51),
        extensions=[*signer_exts(pck_pub, ca_pub, _PCK_CRL_URL), (sgx_ext, False)],
        hash_alg=sha256,
    )
    tcb_pub = tcb_key.public_key()
    tcb_signing = _cert.issue(
        subject=_intel_name("Intel SGX TCB Signing"),
        issuer=root_name,
        public_key=tcb_pub,
        issuer_key=root_key,
        serial=keys.serial(seed, "intel/tcb-signing"),
        not_before=_cert.utc(2025, 5, 6, 9, 25),
        not_after=_cert.utc(2045, 5, 6, 9, 25),
        extensions=signer_exts(tcb_pub, root_pub, _ROOT_CRL_URL),
        hash_alg=sha256,
    )
    return IntelPki(root_key, root, ca_key, platform_ca, pck_key, pck, tcb_key, tcb_signing)


class _SgxField(core.Sequence):
    """One entry of the SGX extension: SEQUENCE { OID, value }; a value may itself be a SEQUENCE OF entries."""

    _fields = [("id", core.ObjectIdentifier), ("value", core.Any)]  # noqa: RUF012 (asn1crypto's class-level spec)


class _SgxFields(core.SequenceOf):
    _child_spec = _SgxField


class _SgxType(core.Enumerated):
    """Intel SGX PCK Certificate and CRL Profile: SGX Type ENUMERATED."""

    _map = {0: "standard", 1: "scalable", 2: "scalable_with_integrity"}  # noqa: RUF012 (asn1crypto's class-level spec)


def sgx_extension_value(seed: bytes, p: Platform) -> bytes:
    """DER of Intel's SGX extension, field for field as in the real PCK leaf (dcap-qvl ``pck_extension()``)."""

    def field(n: str, value: core.Asn1Value) -> _SgxField:
        return _SgxField({"id": f"{SGX_EXTENSION_OID}.{n}", "value": value})

    tcb = [field(f"2.{i + 1}", core.Integer(svn)) for i, svn in enumerate(p.cpu_svn)]
    tcb += [field("2.17", core.Integer(p.pce_svn)), field("2.18", core.OctetString(p.cpu_svn))]
    config = [
        field("7.1", core.Boolean(p.dynamic_platform)),
        field("7.2", core.Boolean(p.cached_keys)),
        field("7.3", core.Boolean(p.smt_enabled)),
    ]
    return _SgxFields(
        [
            field("1", core.OctetString(keys.derive(seed, "intel/ppid", 16))),
            field("2", _SgxFields(tcb)),
            field("3", core.OctetString(p.pce_id)),
            field("4", core.OctetString(p.fmspc)),
            field("5", _SgxType(p.sgx_type)),
            field("6", core.OctetString(keys.derive(seed, "intel/platform-instance-id", 16))),
            field("7", _SgxFields(config)),
        ]
    ).dump()


def _crl(
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate,
    this_update: datetime,
    next_update: datetime,
    *,
    revoked: tuple[int, ...],
) -> bytes:
    """A v2 CRL shaped like Intel's: CRL Number 1 and the issuer's AKI; revoked entries say keyCompromise."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(_cert.aki(key.public_key()), critical=False)
    )
    for serial in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(this_update)
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return _cert.der_crl(builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True))


def from_unix(t: int) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)
