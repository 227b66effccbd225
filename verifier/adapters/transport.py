"""Reading an upstream answer's body with a size cap (gateway, Intel PCS/PCCS, NRAS share it).

``StreamReader.read(n)`` returns whatever is buffered, not ``n`` bytes: a body must be read to EOF.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable
from urllib.parse import quote

import aiohttp

# (endpoint, seconds, outcome: "ok" or the reason code) -> None: how adapters report each upstream call
Observer = Callable[[str, float, str], None]
REDACTED = "[redacted]"


def secret_forms(secrets: Iterable[str]) -> set[str]:
    """Every form a secret can appear in: as given, its bare token after an auth scheme, JSON-escaped (minimally and
    every character as \\uXXXX), percent-encoded, and base64 (the part of its encoding that does not depend on
    what surrounds it, at each of the three byte alignments)."""
    forms: set[str] = set()
    for secret in secrets:
        for candidate in (secret.strip(), *secret.split()[-1:]):  # "Bearer sk-..." -> also "sk-..."
            if candidate:
                forms |= {candidate, json.dumps(candidate)[1:-1], json.dumps(candidate, ensure_ascii=False)[1:-1]}
                forms |= {"".join(f"\\u{ord(c):04{x}}" for c in candidate) for x in "xX"}
                for safe in ("", "/"):
                    encoded = quote(candidate, safe=safe)
                    forms |= {encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)}
                forms |= _base64_cores(candidate.encode("utf-8", "surrogatepass"))
    return forms


def _base64_cores(data: bytes) -> set[str]:
    cores: set[str] = set()
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(bytes(offset) + data).decode()
            start = -(-offset * 4 // 3)  # characters that mix in the preceding bytes
            end = len(text) - (4 if (offset + len(data)) % 3 else 0)  # the last quantum mixes in the following ones
            core = text[start:end]
            if len(core) >= 8:  # a shorter core would match by chance
                cores.add(core)
    return cores


def redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function replacing every form of the secrets in a text (longest first), whatever their length."""
    forms = sorted(secret_forms(secrets), key=len, reverse=True)

    def redact(text: str) -> str:
        for _ in range(8):  # until stable: a replacement can re-form a secret with what follows it
            before = text
            for form in forms:
                text = text.replace(form, REDACTED)
            if text == before:
                return text
        return "".join(c if c.isalnum() else " " for c in REDACTED)  # pathological echo: keep nothing of it

    return redact


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or ``BodyTooLarge`` as soon as it exceeds ``limit`` bytes (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
