"""DER pieces for the NVIDIA TCG DICE TcbInfo extension (2.23.133.5.4.1) and SAN othername in ``simulator.gpu``.

Thin encoders over asn1crypto's universal types; each returns one complete TLV. ``seq`` wraps
items that are already DER (such as a SubjectPublicKeyInfo from ``cryptography``).
"""

from __future__ import annotations

from asn1crypto import core


def seq(*items: bytes) -> bytes:
    return core.Sequence(contents=b"".join(items)).dump()


def octets(value: bytes) -> bytes:
    return core.OctetString(value).dump()


def integer(value: int) -> bytes:
    return core.Integer(value).dump()


def oid(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).dump()


def utf8(value: str) -> bytes:
    return core.UTF8String(value).dump()
