"""Reading and validating what callers send. Every rejection is a 400 naming the field (``HTTPProblem``).

Text fields must be valid Unicode (a lone surrogate cannot be encoded as UTF-8: send the ``_b64`` form for
exact bytes); names (model, chat id, list filters) must be printable, bounded, and free of control characters
(they reach logs, SQL parameters, URLs and upstream queries); unknown fields are rejected on every POST.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from aiohttp import web

from verifier.app.records import UnknownVerdict
from verifier.core.errors import ConfigError
from verifier.evidence.bundle import MAX_UNIX_SECONDS
from verifier.web.errors import bad_request

MAX_NAME = 256
MAX_UPSTREAM_KEY = 1024
UPSTREAM_KEY_HEADER = "X-Upstream-Authorization"
VERDICT_ID = re.compile(r"v_[0-9A-HJKMNP-TV-Z]{26}")
JOB_ID = re.compile(r"j_[0-9A-HJKMNP-TV-Z]{26}")


async def json_object(request: web.Request, *, allowed: frozenset[str], optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object with only ``allowed`` keys (an absent body is {} when ``optional``)."""
    raw = await request.read()
    if not raw and optional:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise bad_request(None, "body: not valid JSON (UTF-8)") from None
    if not isinstance(body, dict):
        raise bad_request(None, f"body: expected a JSON object, got {type(body).__name__}")
    for key in body:
        if key not in allowed:
            raise bad_request(
                printable(key)[:64], f"{printable(key)[:64]}: unknown field; allowed: {', '.join(sorted(allowed))}"
            )
    return body


def printable(text: str) -> str:
    """A caller's text made safe to quote in a message: escapes for anything not printable."""
    return text if text.isprintable() else text.encode("unicode_escape", "backslashreplace").decode("ascii")


def exact_bytes(body: dict[str, Any], name: str) -> bytes | None:
    """`name` (UTF-8 text) or `name_b64` (exact bytes); at most one of them."""
    text, b64 = body.get(name), body.get(f"{name}_b64")
    if text is not None and b64 is not None:
        raise bad_request(name, f"give either {name} or {name}_b64, not both")
    if text is not None:
        if not isinstance(text, str):
            raise bad_request(name, f"{name}: expected a string (the exact text), got {type(text).__name__}")
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise bad_request(
                name, f"{name}: not valid Unicode text (a lone surrogate); send {name}_b64 for exact bytes"
            ) from None
    if b64 is not None:
        if not isinstance(b64, str):
            raise bad_request(f"{name}_b64", f"{name}_b64: expected a base64 string")
        try:
            return base64.b64decode(b64.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise bad_request(f"{name}_b64", f"{name}_b64: not valid base64") from None
    return None


def name_field(value: object, field: str, *, required: bool) -> str | None:
    """A model name, chat id or filter: 1..256 printable characters, no whitespace at either end."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise bad_request(
            field,
            f"{field}: required, a non-empty string"
            if value is None
            else f"{field}: expected a string, got {type(value).__name__}",
        )
    if not value.strip():
        raise bad_request(
            field, f"{field}: expected a non-empty string, got {'whitespace only' if value else 'an empty one'}"
        )
    if len(value) > MAX_NAME:
        raise bad_request(field, f"{field}: at most {MAX_NAME} characters, got {len(value)}")
    if not value.isprintable() or value != value.strip():
        raise bad_request(
            field, f"{field}: {printable(value)[:80]!r} holds control or invalid characters or surrounding whitespace"
        )
    return value


def chat_id_field(value: object) -> str | None:
    chat_id = name_field(value, "chat_id", required=False)
    if chat_id is not None and any(c.isspace() for c in chat_id):
        raise bad_request("chat_id", f"chat_id: {printable(chat_id)[:80]!r} contains whitespace")
    if chat_id in (".", ".."):  # quoted, it is still a dot segment: the client would resolve it to another path
        raise bad_request("chat_id", "chat_id: '.' and '..' are path segments, not ids")
    return chat_id


def upstream_key(request: web.Request) -> str | None:
    """The gateway API key from ``X-Upstream-Authorization``: printable ASCII (it becomes an upstream header)."""
    value = request.headers.get(UPSTREAM_KEY_HEADER)
    if value is None or not value.strip():
        return None
    if len(value) > MAX_UPSTREAM_KEY or not all(32 <= ord(c) <= 126 for c in value):
        raise bad_request(
            UPSTREAM_KEY_HEADER,
            f"{UPSTREAM_KEY_HEADER}: expected at most {MAX_UPSTREAM_KEY} printable ASCII characters",
        )  # the value itself is never echoed
    return value.strip()


def unix_seconds(value: object, field: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_UNIX_SECONDS:
        raise bad_request(field, f"{field}: got {value!r:.40}, expected unix seconds 0..{MAX_UNIX_SECONDS}")
    return value


def int_param(request: web.Request, name: str, lo: int, hi: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(name, f"{name}: got {printable(raw)[:40]!r}, expected an integer") from None
    if not lo <= value <= hi:
        raise bad_request(name, f"{name}: got {value}, expected {lo}..{hi}")
    return value


def verdict_id(request: web.Request) -> str:
    """The path's verdict id; anything that cannot be one is a 404 before any lookup."""
    value = request.match_info["id"]
    if not VERDICT_ID.fullmatch(value):
        raise UnknownVerdict(printable(value))
    return value


def gateway_error(exc: ConfigError) -> Exception:
    code = "gateway_not_allowed" if "not allowed" in exc.message else "bad_request"
    return bad_request("gateway", exc.message, code)
