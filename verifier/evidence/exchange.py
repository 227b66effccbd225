"""The exchange: the exact request bytes sent and response bytes received (docs/protocol.md §1).

Every producer signs SHA-256 (lowercase hex) of raw bytes; the verifier hashes exactly what crossed
the wire, never a canonical form (two real fixtures have pretty-printed request bodies). The one
labelled fallback, ``reserialized_sha256``, reproduces Phala vllm-proxy's post-2025-12 habit of
hashing ``json.dumps(json.loads(body))`` (§1.1, §1.6 step 3): it may explain a mismatch, never prove
the bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

MAX_CHAT_ID = 256


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_sse(body: bytes) -> bool:
    """An SSE stream (``data: ...`` lines), as opposed to one JSON document."""
    return body.lstrip().startswith((b"data:", b"event:", b"id:", b":"))


def _json(text: bytes | str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def sse_data(body: bytes) -> list[bytes]:
    """The payloads of the stream's ``data:`` lines, in order (``\\r\\n`` and ``\\n`` line ends alike)."""
    out = []
    for line in body.splitlines():
        if line.startswith(b"data:"):
            out.append(line[5:].strip())
    return out


def chat_id_from_response(body: bytes) -> str | None:
    """The completion's ``id``: of the JSON body, or of the first ``data:`` chunk of a stream (§1.1).

    None when there is none or it is not usable as a chat id: empty, longer than ``MAX_CHAT_ID``, or holding
    a control character or a lone UTF-16 surrogate (it goes into a URL path, the ledger and the terminal).
    """
    if is_sse(body):
        for data in sse_data(body):
            chunk = _json(data)
            if isinstance(chunk, dict):
                return _usable_id(chunk.get("id"))
        return None
    doc = _json(body)
    return _usable_id(doc.get("id") if isinstance(doc, dict) else None)


def _usable_id(value: object) -> str | None:
    # str.isprintable is False for control characters (Cc), lone surrogates (Cs) and other non-printing classes
    if isinstance(value, str) and 0 < len(value) <= MAX_CHAT_ID and value.isprintable():
        return value
    return None


def reserialized_sha256(body: bytes) -> str | None:
    """sha256 of Python's default ``json.dumps`` of a non-stream JSON body (§1.1), or None when not applicable.

    NOT byte-exact: a match only says which re-serialization the producer signed.
    """
    if is_sse(body):
        return None
    doc = _json(body)
    if not isinstance(doc, dict):
        return None
    return sha256_hex(json.dumps(doc).encode("utf-8"))
