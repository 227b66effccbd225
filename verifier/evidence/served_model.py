"""What a completion says about the model that served it: the recorded upstream headers and the response body.

Gateways may answer a request with another model than the one asked for and say so in response headers
(RedPill's gateway: ``x-model-used``, ``x-fallback-from``, ``x-fallback-depth``); every OpenAI-style body names
its model (``model`` of the JSON document, or of every ``data:`` chunk of a stream). ``headers.json`` is the
proxy's record of the allow-listed response headers: a JSON object of lower-case name -> string value.
"""

from __future__ import annotations

from dataclasses import dataclass

from verifier.core.errors import EvidenceError
from verifier.evidence.exchange import _json, is_sse, sse_data
from verifier.evidence.json_object import load_object

MAX_HEADERS_BYTES = 64 * 1024
MAX_NAME = 256
# the response headers the proxy records (lower case); nothing that can carry a credential or a cookie
RECORDED_HEADERS = ("content-type", "x-model-used", "x-fallback-from", "x-fallback-depth", "x-request-id", "date")


@dataclass(frozen=True, slots=True)
class ServedModel:
    model_used: str | None  # x-model-used
    fallback_from: str | None  # x-fallback-from
    fallback_depth: int | None  # x-fallback-depth
    body_models: tuple[str, ...]  # every distinct ``model`` the response body names, in order


def parse_headers(raw: bytes) -> dict[str, str]:
    """headers.json: an object of lower-case header names to strings, or EvidenceError."""
    if len(raw) > MAX_HEADERS_BYTES:
        raise EvidenceError(f"headers.json: {len(raw)} bytes, at most {MAX_HEADERS_BYTES}")
    doc = load_object(raw, "headers.json")
    for name, value in doc.items():
        if name != name.lower() or not name or len(name) > MAX_NAME:
            raise EvidenceError(f"headers.json: header name {name!r:.80} is not a lower-case name")
        if not isinstance(value, str):
            raise EvidenceError(f"headers.json: {name}: got a {type(value).__name__}, expected a string")
    return doc


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME or not value.isprintable():
        raise EvidenceError(f"{what}: got {value!r:.80}, expected a model name")
    return value.strip()


def body_models(body: bytes) -> tuple[str, ...]:
    """The distinct ``model`` names of a JSON body or of every JSON ``data:`` chunk of a stream (none: empty)."""
    docs = [_json(d) for d in sse_data(body)] if is_sse(body) else [_json(body)]
    names: dict[str, None] = {}
    for doc in docs:
        if isinstance(doc, dict) and doc.get("model") is not None:
            names[_name(doc["model"], "response model")] = None
    return tuple(names)


def served_model(headers: bytes | None, response: bytes | None) -> ServedModel:
    """The served-model claims of one completion; EvidenceError when a recorded one is malformed."""
    h = parse_headers(headers) if headers is not None else {}
    used = _name(h["x-model-used"], "x-model-used") if "x-model-used" in h else None
    origin = _name(h["x-fallback-from"], "x-fallback-from") if "x-fallback-from" in h else None
    depth = None
    if "x-fallback-depth" in h:
        text = h["x-fallback-depth"].strip()
        if not text.isascii() or not text.isdigit() or len(text) > 6:
            raise EvidenceError(f"x-fallback-depth: got {text!r:.40}, expected a small non-negative integer")
        depth = int(text)
    return ServedModel(used, origin, depth, body_models(response) if response is not None else ())
