"""RFC 5280 certification path validation by OpenSSL (pyOpenSSL ``X509Store`` / ``X509StoreContext``).

One anchor is trusted: a self-signed root (the NVIDIA device chain) or, with ``partial=True``, a
pinned intermediate (the NRAS JWKS chain, OpenSSL's ``PARTIAL_CHAIN``). OpenSSL checks every
signature, basicConstraints (CA:TRUE on every issuer), pathLenConstraint, keyUsage keyCertSign on
issuers, the validity of every certificate at ``now`` (the verification time is set on the store,
never the wall clock) and, with ``X509_STRICT``, the RFC 5280 profile details (critical CA
basicConstraints, key identifiers, no negative serials, ...). The leaf's own keyUsage is checked
here too: a certificate that signs evidence must allow ``digitalSignature`` (RFC 5280 §4.2.1.3).

Failures are ``CheckFailed``: ``expired_reason`` for a certificate outside its validity at ``now``,
``reason`` for anything else. The path OpenSSL built must be exactly ``leaf, *untrusted, anchor``,
so what a caller reads from a position of the supplied chain is what was validated there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import crypto

from verifier.core.errors import CheckFailed, ConfigError
from verifier.evidence.certificate import DECODE_ERRORS, why

# OpenSSL X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED (openssl/x509_vfy.h)
_TIME_ERRORS = frozenset({9, 10})


def validate_path(
    leaf: x509.Certificate,
    untrusted: Sequence[x509.Certificate],
    anchor: x509.Certificate,
    *,
    now: int,
    partial: bool,
    reason: str,
    expired_reason: str,
    what: str,
) -> None:
    """Validate ``leaf`` → ``untrusted``… → ``anchor`` at ``now``; ``what`` names the chain in messages."""
    try:
        at = datetime.fromtimestamp(now, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ConfigError(f"verification time {now} is out of range") from None
    try:
        store = crypto.X509Store()
        store.add_cert(_openssl(anchor))
        store.set_time(at)  # before set_flags: set_time replaces the store's verify parameters
        flags = crypto.X509StoreFlags.X509_STRICT | (crypto.X509StoreFlags.PARTIAL_CHAIN if partial else 0)
        store.set_flags(flags)
        ctx = crypto.X509StoreContext(store, _openssl(leaf), [_openssl(c) for c in untrusted])
        built = [c.to_cryptography() for c in ctx.get_verified_chain()]
    except crypto.X509StoreContextError as exc:
        code, depth, text = _first_error(exc)
        raise CheckFailed(
            f"{what}: certificate at depth {depth} fails RFC 5280 path validation at {now}: {text} "
            f"(OpenSSL error {code})",
            reason=expired_reason if code in _TIME_ERRORS else reason,
            details={"openssl_error": code, "depth": depth},
        ) from None
    except (crypto.Error, ValueError, TypeError) as exc:  # a certificate OpenSSL itself cannot load or use
        raise CheckFailed(f"{what}: OpenSSL cannot validate the chain: {why(exc)}", reason=reason) from None
    if _ders(built) != _ders([leaf, *untrusted, anchor]):
        raise CheckFailed(
            f"{what}: the validated path differs from the chain as supplied (order or extra certificates)",
            reason=reason,
        )
    _check_leaf_usage(leaf, reason=reason, what=what)


def _check_leaf_usage(leaf: x509.Certificate, *, reason: str, what: str) -> None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return  # RFC 5280 §4.2.1.3: no keyUsage extension, no restriction
    except DECODE_ERRORS as exc:  # a duplicated or undecodable extension
        raise CheckFailed(f"{what}: the leaf's extensions do not decode: {exc}", reason=reason) from None
    if not usage.digital_signature:
        raise CheckFailed(f"{what}: the leaf's keyUsage does not allow digitalSignature", reason=reason)


def _openssl(cert: x509.Certificate) -> crypto.X509:
    return crypto.load_certificate(crypto.FILETYPE_ASN1, cert.public_bytes(serialization.Encoding.DER))


def _ders(certs: Sequence[x509.Certificate]) -> list[bytes]:
    return [c.public_bytes(serialization.Encoding.DER) for c in certs]


def _first_error(exc: crypto.X509StoreContextError) -> tuple[int, int, str]:
    errors: list[object] = list(exc.errors)
    if len(errors) >= 3 and isinstance(errors[0], int) and isinstance(errors[1], int):
        return errors[0], errors[1], str(errors[2])
    return -1, -1, str(exc)
