"""Loopback TLS for the simulated gateway: a test CA and one server certificate per replica, from the world seed.

``SimulatorTls.server_context()`` serves one listener whose TLS handshakes go to the replicas in turn (round robin,
through the SNI callback, which OpenSSL calls for every ClientHello, with or without a server name): a load balancer
passing TLS through to replicas that each hold their own key, as behind a real gateway. ``replica_of(ssl_object)``
names the replica that terminated a connection, so its report attests that replica's key.

A client trusts the simulator explicitly: ``client_context()`` (or ``write_ca(path)`` for ``--ca-file``) verifies
against this CA only, with hostname checking; verification is never disabled. Test keys (P-256, deterministic
from the seed, published by the simulator): they protect nothing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from verifier.simulator import _cert, keys

_NOT_BEFORE, _NOT_AFTER = _cert.utc(2020, 1, 1), _cert.utc(2099, 12, 31)


@dataclass(frozen=True, slots=True)
class Replica:
    cert_pem: bytes
    key_pem: bytes
    spki_sha256: str  # what the replica's report attests (tls_cert_fingerprint)


def _spki_sha256(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


class SimulatorTls:
    def __init__(self, seed: bytes, *, replicas: int = 1) -> None:
        if replicas < 1:
            raise ValueError("at least one TLS replica")
        ca_key = keys.p256(seed, "tls/ca")
        ca_name = _cert.name(("CN", "verifier simulator TLS test CA"), ("O", "simulator"))
        ca = _cert.issue(
            subject=ca_name,
            issuer=ca_name,
            public_key=ca_key.public_key(),
            issuer_key=ca_key,
            serial=keys.serial(seed, "tls/ca"),
            not_before=_NOT_BEFORE,
            not_after=_NOT_AFTER,
            extensions=[
                (x509.BasicConstraints(ca=True, path_length=0), True),
                (_cert.key_usage(key_cert_sign=True, crl_sign=True), True),
                (_cert.ski(ca_key.public_key()), False),
            ],
            hash_alg=hashes.SHA256(),
        )
        self.ca_pem = _cert.pem(ca)
        self.replicas = tuple(self._replica(seed, i, ca_name, ca_key) for i in range(replicas))
        self.rogue_spki_sha256 = _spki_sha256(keys.p256(seed, "tls/rogue"))  # a key no replica presents
        self.model_node_spki_sha256 = _spki_sha256(keys.p256(seed, "tls/model-node"))  # NEAR model entries' own
        self._contexts: tuple[ssl.SSLContext, ...] = ()
        self._listeners: list[ssl.SSLContext] = []

    @staticmethod
    def _replica(seed: bytes, i: int, ca_name: x509.Name, ca_key: ec.EllipticCurvePrivateKey) -> Replica:
        key = keys.p256(seed, f"tls/replica-{i}")
        cert = _cert.issue(
            subject=_cert.name(("CN", f"sim-gateway-replica-{i}"), ("O", "simulator")),
            issuer=ca_name,
            public_key=key.public_key(),
            issuer_key=ca_key,
            serial=keys.serial(seed, f"tls/replica-{i}"),
            not_before=_NOT_BEFORE,
            not_after=_NOT_AFTER,
            extensions=[
                (x509.BasicConstraints(ca=False, path_length=None), True),
                (_cert.key_usage(digital_signature=True), True),
                (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
                (
                    x509.SubjectAlternativeName(
                        [
                            x509.DNSName("localhost"),
                            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                            x509.IPAddress(ipaddress.ip_address("::1")),
                        ]
                    ),
                    False,
                ),
                (_cert.ski(key.public_key()), False),
                (_cert.aki(ca_key.public_key()), False),
            ],
            hash_alg=hashes.SHA256(),
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return Replica(cert_pem=_cert.pem(cert), key_pem=key_pem, spki_sha256=_spki_sha256(key))

    # ------------------------------------------------------------------ server side

    def server_context(self) -> ssl.SSLContext:
        """The listener's context: each handshake is terminated by the next replica in turn."""
        contexts = self._load()
        turn = itertools.count()

        def pick(ssl_object: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext) -> None:
            ssl_object.context = contexts[next(turn) % len(contexts)]

        first = self._load(fresh=True)[0]  # presents replica 0 until the callback hands the handshake on
        first.sni_callback = pick
        self._listeners.append(first)
        return first

    def replica_of(self, ssl_object: object) -> int | None:
        """The index of the replica whose context terminated this connection, or None (plain http, unknown)."""
        context = getattr(ssl_object, "context", None)
        if any(context is c for c in self._listeners):
            return 0
        return next((i for i, c in enumerate(self._contexts) if c is context), None)

    def _load(self, *, fresh: bool = False) -> tuple[ssl.SSLContext, ...]:
        if self._contexts and not fresh:
            return self._contexts
        loaded = []
        with tempfile.TemporaryDirectory(prefix="verifier-sim-tls-") as tmp:  # load_cert_chain reads files only
            for i, r in enumerate(self.replicas):
                cert, key = Path(tmp, f"replica-{i}.pem"), Path(tmp, f"replica-{i}.key")
                cert.write_bytes(r.cert_pem + self.ca_pem)
                key.write_bytes(r.key_pem)
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                ctx.load_cert_chain(cert, key)
                loaded.append(ctx)
        if not fresh:
            self._contexts = tuple(loaded)
        return tuple(loaded)

    # ------------------------------------------------------------------ client side

    def client_context(self) -> ssl.SSLContext:
        """Verification against this CA only (hostname checked): how a loopback client trusts the simulator."""
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def write_ca(self, path: str | Path) -> Path:
        """The CA certificate as a PEM file, for ``--ca-file``."""
        p = Path(path)
        p.write_bytes(self.ca_pem)
        return p
