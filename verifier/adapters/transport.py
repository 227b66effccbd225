"""Reading an upstream answer's body with a size cap (gateway, Intel PCS/PCCS, NRAS share it).

``StreamReader.read(n)`` returns whatever is buffered, not ``n`` bytes: a body must be read to EOF.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import aiohttp

# (endpoint, seconds, outcome: "ok" or the reason code) -> None: how adapters report each upstream call
Observer = Callable[[str, float, str], None]
REDACTED = "[redacted]"


def secret_forms(secrets: Iterable[str]) -> set[str]:
    """Every form a secret can appear in: as given, its bare token after an auth scheme, and JSON-escaped."""
    forms: set[str] = set()
    for secret in secrets:
        for candidate in (secret.strip(), *secret.split()[-1:]):  # "Bearer sk-..." -> also "sk-..."
            if candidate:
                forms |= {candidate, json.dumps(candidate)[1:-1], json.dumps(candidate, ensure_ascii=False)[1:-1]}
    return forms


def redactor(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function replacing every form of the secrets in a text (longest first), whatever their length."""
    forms = sorted(secret_forms(secrets), key=len, reverse=True)

    def redact(text: str) -> str:
        for form in forms:
            text = text.replace(form, REDACTED)
        return text

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
