"""``tls.json``: which TLS peer this verifier saw on each connection to the gateway (docs/protocol.md §12).

The recorder (the gateway adapter, ``verifier.adapters.tls_peer``) writes one entry per upstream call whose answer
was used: the completion (the proxy relays it), the signature and the report. Each names the connection it
travelled on (``c1``, ``c2``, ...: one label per TCP connection within this capture), the URL scheme, the peer's
address, our local port, and the SHA-256 of the peer's leaf SubjectPublicKeyInfo DER (RFC 5280 §4.1.2.7) — null
over plain http, where there is no certificate. No key or secret is ever in it.

This is OBSERVER data: nothing in the bundle authenticates it. A recorded fingerprint is only as trustworthy as
whoever recorded the bundle; ``tls.binds_peer`` says so whenever it reads one, and a re-appraisal never upgrades
what the live appraisal concluded (``verifier.engine.ceiling``). The parser is strict: unknown keys, a role twice,
one connection label with two different peers, or a certificate fingerprint over http are malformed evidence.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from verifier.core.errors import EvidenceError
from verifier.evidence.certificate import DECODE_ERRORS, why
from verifier.evidence.json_object import load_object

ROLES = ("completion", "signature", "report")  # the order a connection serves them in
SCHEMES = ("https", "http")
MAX_TLS_JSON_BYTES = 16 * 1024
_KEYS = {"role", "connection", "scheme", "peer", "local_port", "peer_spki_sha256"}
_LABEL = re.compile(r"c[1-9][0-9]{0,2}", re.ASCII)
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_PEER = re.compile(r"[0-9A-Za-z.:\[\]-]{1,64}", re.ASCII)


@dataclass(frozen=True, slots=True)
class PeerObservation:
    """One upstream call and the TLS peer of the connection that carried its answer."""

    role: str  # "completion" | "signature" | "report"
    connection: str  # "c1", "c2", ...: equal labels = the same TCP connection (same transport, same socket pair)
    scheme: str  # "https" | "http"
    peer_spki_sha256: str | None  # hex sha256 of the peer leaf's SPKI DER; None over http (or no certificate seen)
    peer: str | None = None  # the peer's address, "ip:port"
    local_port: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "connection": self.connection,
            "scheme": self.scheme,
            "peer": self.peer,
            "local_port": self.local_port,
            "peer_spki_sha256": self.peer_spki_sha256,
        }


@dataclass(frozen=True, slots=True)
class TlsObservations:
    calls: tuple[PeerObservation, ...]

    def get(self, role: str) -> PeerObservation | None:
        return next((c for c in self.calls if c.role == role), None)

    def served_by(self) -> PeerObservation | None:
        """The connection that served the completion: the observed completion connection (the proxy), else — the
        completion was captured elsewhere — the connection this verifier fetched the report (or signature) on."""
        for role in ("completion", "report", "signature"):
            found = self.get(role)
            if found is not None:
                return found
        return None

    def to_json_bytes(self) -> bytes:
        doc = {"calls": [c.to_json() for c in self.calls]}
        return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def combine(caller: tuple[PeerObservation, ...], own: tuple[PeerObservation, ...]) -> tuple[PeerObservation, ...]:
    """The caller's observations (the proxy's completion, made in another process) and the gateway client's own,
    whose connection labels are renumbered past the caller's: they were observed on other connections (another
    process cannot reuse a connection), so no label may say they were the same."""
    if not caller:
        return own
    taken = {c.connection for c in caller}
    renamed: dict[str, str] = {}
    n = len(taken)
    for c in own:
        if c.connection not in renamed:
            n += 1
            while f"c{n}" in taken:
                n += 1
            renamed[c.connection] = f"c{n}"
    mine = tuple(replace(c, connection=renamed[c.connection]) for c in own)
    roles = {c.role for c in mine}
    return tuple(c for c in caller if c.role not in roles) + mine


def spki_sha256(cert_der: bytes) -> str:
    """Hex SHA-256 of a DER certificate's SubjectPublicKeyInfo (the TLS-layout fingerprint, protocol.md §4)."""
    try:
        spki = (
            x509.load_der_x509_certificate(bytes(cert_der))
            .public_key()
            .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        )
    except DECODE_ERRORS as exc:
        raise EvidenceError(f"TLS peer certificate: not a DER X.509 certificate ({why(exc)[:80]})") from None
    return hashlib.sha256(spki).hexdigest()


def parse_tls_json(raw: bytes) -> TlsObservations:
    """The observations of ``tls.json``, or EvidenceError naming what is wrong."""
    if len(raw) > MAX_TLS_JSON_BYTES:
        raise EvidenceError(f"tls.json: {len(raw)} bytes, at most {MAX_TLS_JSON_BYTES}")
    doc = load_object(raw, "tls.json")
    if set(doc) != {"calls"} or not isinstance(doc["calls"], list):
        raise EvidenceError('tls.json: expected exactly {"calls": [...]}')
    if len(doc["calls"]) > len(ROLES):
        raise EvidenceError(f"tls.json: {len(doc['calls'])} calls, at most one per role ({', '.join(ROLES)})")
    calls = tuple(_call(c, i) for i, c in enumerate(doc["calls"]))
    roles = [c.role for c in calls]
    if len(set(roles)) != len(roles):
        raise EvidenceError(f"tls.json: a role occurs twice ({', '.join(roles)})")
    seen: dict[str, PeerObservation] = {}
    for c in calls:
        first = seen.setdefault(c.connection, c)
        if (first.scheme, first.peer_spki_sha256, first.peer, first.local_port) != (
            c.scheme,
            c.peer_spki_sha256,
            c.peer,
            c.local_port,
        ):
            raise EvidenceError(f"tls.json: connection {c.connection} is described two different ways")
    return TlsObservations(calls=calls)


def _call(entry: object, i: int) -> PeerObservation:
    where = f"tls.json: calls[{i}]"
    if not isinstance(entry, dict) or set(entry) != _KEYS:
        raise EvidenceError(f"{where}: expected an object with exactly the keys {sorted(_KEYS)}")
    role, label, scheme = entry["role"], entry["connection"], entry["scheme"]
    if role not in ROLES:
        raise EvidenceError(f"{where}: role {str(role)[:40]!r} is not one of {', '.join(ROLES)}")
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise EvidenceError(f"{where}: connection {str(label)[:40]!r} is not a label c1..c999")
    if scheme not in SCHEMES:
        raise EvidenceError(f"{where}: scheme {str(scheme)[:40]!r} is not https or http")
    fp, peer, port = entry["peer_spki_sha256"], entry["peer"], entry["local_port"]
    if fp is not None and (not isinstance(fp, str) or not _SHA256.fullmatch(fp)):
        raise EvidenceError(f"{where}: peer_spki_sha256 is not 64 lower-case hex digits or null")
    if fp is not None and scheme != "https":
        raise EvidenceError(f"{where}: a peer certificate fingerprint over {scheme}")
    if peer is not None and (not isinstance(peer, str) or not _PEER.fullmatch(peer)):
        raise EvidenceError(f"{where}: peer {str(peer)[:40]!r} is not an address ip:port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        raise EvidenceError(f"{where}: local_port {str(port)[:40]!r} is not a port number or null")
    return PeerObservation(role=role, connection=label, scheme=scheme, peer_spki_sha256=fp, peer=peer, local_port=port)
