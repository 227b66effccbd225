"""Observing the live TLS peer of an upstream answer (aiohttp): what ``tls.json`` records.

aiohttp releases a connection as soon as a response's body is complete — for a small body, before the caller sees
the response — so ``resp.connection`` cannot be relied on. Sessions that record peers use ``ObservedResponse`` as
their ``response_class``: when a response starts (the request is sent, its answer not yet read) it notes the
``Wire`` it arrived on: the transport, its socket pair and the DER certificate the peer presented in this
connection's handshake (``ssl_object.getpeercert(binary_form=True)``, already validated by the session's SSL
context). Over plain http there is no certificate: the observation says so (scheme ``http``, no fingerprint).

``PeerLog.observe(resp, role)`` turns that into a ``PeerObservation`` (``record`` keeps it once the answer is used).
Connections are labelled ``c1``, ``c2``, ... per log, in the order first seen: two calls get the same label only
when they travelled on the same transport object with the same socket pair (local and peer address), i.e. on one
kept-alive TCP connection. No key or secret is read or kept.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.connector import Connection

from verifier.core.errors import EvidenceError
from verifier.evidence.tls_observation import PeerObservation, spki_sha256


@dataclass(frozen=True, slots=True)
class Wire:
    """The connection a response arrived on, as seen when it started."""

    transport: Any  # kept so that its id() stays unique while the log labels it
    local: str | None
    peer: str | None
    local_port: int | None
    cert_der: bytes | None  # the peer's leaf certificate (TLS only)


def wire_of(transport: Any) -> Wire | None:
    if transport is None:
        return None
    sockname = transport.get_extra_info("sockname")
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket) else None
    return Wire(
        transport=transport,
        local=_address(sockname),
        peer=_address(transport.get_extra_info("peername")),
        local_port=_port(sockname),
        cert_der=der or None,
    )


class ObservedResponse(aiohttp.ClientResponse):
    """A response that notes the ``Wire`` it arrives on when it starts (see the module docstring)."""

    wire: Wire | None = None

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        self.wire = wire_of(connection.transport)
        return await super().start(connection)


class PeerLog:
    """The observations of one exchange's upstream calls, each call's connection labelled."""

    def __init__(self) -> None:
        self._labels: dict[tuple[int, str | None, str | None], str] = {}
        self._wires: list[Any] = []  # keeps each labelled transport alive: an id() is unique only while it lives
        self._calls: dict[str, PeerObservation] = {}

    def observe(self, resp: aiohttp.ClientResponse, role: str) -> PeerObservation:
        """The peer of the connection ``resp`` arrived on (labelled; not yet recorded: see ``record``). A session
        without ``ObservedResponse`` gives what the still-held connection shows, if any."""
        wire = getattr(resp, "wire", None)
        if wire is None:
            conn = resp.connection
            wire = wire_of(conn.transport if conn is not None else None)
        https = resp.url.scheme == "https"
        return PeerObservation(
            role=role,
            connection=self._label(wire),
            scheme="https" if https else "http",
            peer_spki_sha256=_fingerprint(wire.cert_der) if https and wire is not None else None,
            peer=wire.peer if wire is not None else None,
            local_port=wire.local_port if wire is not None else None,
        )

    def record(self, observation: PeerObservation) -> None:
        """Keep ``observation`` as its role's, replacing an earlier one (a retried signature keeps the last)."""
        self._calls[observation.role] = observation

    def observations(self) -> tuple[PeerObservation, ...]:
        return tuple(self._calls.values())

    def _label(self, wire: Wire | None) -> str:
        anchor: Any = wire.transport if wire is not None else object()  # no wire seen: a connection of its own
        key = (id(anchor), wire.local if wire else None, wire.peer if wire else None)
        if key not in self._labels:
            self._labels[key] = f"c{len(self._labels) + 1}"
            self._wires.append(anchor)
        return self._labels[key]


def _fingerprint(der: bytes | None) -> str | None:
    if not der:
        return None
    try:
        return spki_sha256(der)
    except EvidenceError:
        return None  # an undecodable peer certificate is observed as "no certificate seen"


def _address(name: Any) -> str | None:
    if not isinstance(name, tuple) or len(name) < 2:
        return None
    host = str(name[0]).split("%", 1)[0]  # no IPv6 zone id
    return f"[{host}]:{name[1]}" if ":" in host else f"{host}:{name[1]}"


def _port(name: Any) -> int | None:
    if isinstance(name, tuple) and len(name) >= 2 and isinstance(name[1], int) and 0 < name[1] < 65536:
        return name[1]
    return None
