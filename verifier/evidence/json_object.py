"""Untrusted JSON documents that must be one object (signature, report and meta bodies), and the shape limits
every decoded untrusted JSON value must respect before anything reads it.

Two things ``json.loads`` accepts that nothing downstream can handle are refused here, once:

- a string holding a lone UTF-16 surrogate (``"\\ud800"`` decodes to one; RFC 8259 §8.2 leaves such strings'
  behaviour unpredictable, I-JSON RFC 7493 §2.1 forbids them). It cannot be encoded to UTF-8, so hashing,
  comparing as bytes, a URL, SQLite or a terminal would raise ``UnicodeEncodeError`` far from the input;
- nesting deeper than ``MAX_DEPTH`` (real evidence nests at most 8 deep): any later recursive walk
  (``json.dumps``, ``repr``, ``==``) of a value nested near the interpreter's recursion limit raises
  ``RecursionError``.

``NaN`` / ``Infinity`` (not JSON, RFC 8259 §6) are refused by ``load_object`` as invalid JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

from verifier.core.errors import EvidenceError

MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def shape_problem(value: Any, *, max_depth: int = MAX_DEPTH) -> str | None:
    """Why a decoded JSON value may not be used, naming where (``$.a[0].b: ...``), or None. Iterative (no recursion).

    A quick pass (``_plainly_fine``) clears the common case; anything it does not clear gets the walk that names
    the place, so the answer is the walk's in every case."""
    if _plainly_fine(value, max_depth):
        return None
    return _walk(value, max_depth)


_SCALARS = (int, float, bool, type(None))


def _plainly_fine(value: Any, max_depth: int) -> bool:
    """True only if ``_walk`` finds nothing: every container nests less than ``max_depth`` deep, no string or key holds
    a surrogate, and every value is exactly a dict, list, str, int, float, bool or None (anything else, or a
    non-str key: False, and the walk decides). One pass per nesting level, no paths built."""
    level = [value]
    depth = 0
    while level:
        containers = []
        for item in level:
            kind = type(item)
            if kind is str:
                if not item.isascii() and _SURROGATE.search(item):
                    return False
            elif kind is dict or kind is list:
                if depth >= max_depth:
                    return False
                if kind is dict:
                    for k in item:
                        if type(k) is not str or (not k.isascii() and _SURROGATE.search(k)):
                            return False
                    containers.extend(item.values())
                else:
                    containers.extend(item)
            elif kind not in _SCALARS:
                return False
        level = containers
        depth += 1
    return True


def _walk(value: Any, max_depth: int) -> str | None:
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return f"{_path(path)}: a string holds a lone UTF-16 surrogate ({item[:40]!r})"
        elif isinstance(item, dict | list):
            if len(path) >= max_depth:
                return f"{_path(path)}: nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for k, v in item.items():
                    if not k.isascii() and _SURROGATE.search(k):
                        return f"{_path(path)}: a key holds a lone UTF-16 surrogate ({k[:40]!r})"
                    stack.append((v, (*path, k)))
            else:
                stack.extend((v, (*path, i)) for i, v in enumerate(item))
    return None


def _path(path: tuple[str | int, ...]) -> str:
    return "$" + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path)[:200]


def check_shape(value: Any, what: str) -> None:
    """EvidenceError naming ``what`` when ``shape_problem`` finds one."""
    problem = shape_problem(value)
    if problem is not None:
        raise EvidenceError(f"{what}: {problem}")


def load_json(raw: bytes | str, what: str) -> Any:
    """Any strict JSON value within the shape limits, or EvidenceError naming ``what``."""
    try:
        doc = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise EvidenceError(f"{what}: not valid JSON") from None
    check_shape(doc, what)
    return doc


def load_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """The decoded object, or EvidenceError naming ``what`` (deep nesting included: RecursionError)."""
    doc = load_json(raw, what)
    if not isinstance(doc, dict):
        raise EvidenceError(f"{what}: got a JSON {type(doc).__name__}, expected an object")
    return doc
