"""Just enough DER to write the vendor extensions the ``cryptography`` builders cannot express.

Used for Intel's SGX PCK extension (OID 1.2.840.113741.1.13.1) and NVIDIA's TCG DICE TcbInfo
extension (2.23.133.5.4.1). Encoders only; every function returns one complete TLV.
"""

from __future__ import annotations


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + value


def seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def octets(value: bytes) -> bytes:
    return _tlv(0x04, value)


def integer(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return _tlv(0x02, raw)


def enumerated(value: int) -> bytes:
    return _tlv(0x0A, integer(value)[2:])


def boolean(value: bool) -> bytes:
    return _tlv(0x01, b"\xff" if value else b"\x00")


def bitstring(value: bytes) -> bytes:
    return _tlv(0x03, b"\x00" + value)


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def utf8(value: str) -> bytes:
    return _tlv(0x0C, value.encode())
