"""Untrusted JSON documents that must be one object (signature and report bodies)."""

from __future__ import annotations

import json
from typing import Any

from verifier.core.errors import EvidenceError


def load_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """The decoded object, or EvidenceError naming ``what`` (deep nesting included: RecursionError)."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise EvidenceError(f"{what}: not valid JSON") from None
    if not isinstance(doc, dict):
        raise EvidenceError(f"{what}: got a JSON {type(doc).__name__}, expected an object")
    return doc
