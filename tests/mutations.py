"""Hypothesis strategies that mutate real inputs, for the property tests of every parser of untrusted input.

- ``mutated_bytes(seed)``: 1-4 edits of the seed's bytes: flip (xor a non-zero byte), insert, delete, overwrite a run.
- ``mutated_json(doc)``: 1-3 edits of a decoded JSON document, returned as JSON bytes: swap a node's type, delete it,
  put a lone UTF-16 surrogate or another character into a string, nest a node deeply (deeper than the interpreter's
  recursion limit when ``deep`` is large), and the same one level down inside strings that hold JSON (``event_log``,
  ``nvidia_payload``, ``tcb_info``, ...).
- ``odd_json``: JSON values of every type, including surrogate strings, NaN, huge numbers and nesting.

Representative, not exhaustive: paths into long lists are sampled (first three items and the last).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

SURROGATES = st.sampled_from(
    ["\ud800", "\udfff", "\udc00x", "a\ud83d"]
)  # lone halves only (a pair decodes to one char)
_ODD_TEXT = st.one_of(
    SURROGATES, st.text(max_size=12), st.sampled_from(["", "0x", "00" * 32, "zz", "é", "\x00", "[]", "{"])
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    _ODD_TEXT,
)
odd_json = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_ODD_TEXT, inner, max_size=3)),
    max_leaves=8,
)

_DEEP = "\x00deep-nesting-placeholder\x00"


class Seed:
    """A seed input named in hypothesis's output (it prints a strategy's arguments: a whole report is too long)."""

    def __init__(self, name: str, value: Any) -> None:
        self.name, self.value = name, value

    def __repr__(self) -> str:
        return f"Seed({self.name!r})"


def _unwrap(seed: Any) -> Any:
    return (
        seed.value if isinstance(seed, Seed) else seed
    )  # replaced in the JSON text: such nesting cannot be built as a Python value


def paths(doc: Any, *, limit: int = 4000) -> list[tuple[str | int, ...]]:
    """Paths to the nodes of ``doc`` (lists sampled: first three items and the last), at most ``limit``."""
    out: list[tuple[str | int, ...]] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(doc, ())]
    while stack and len(out) < limit:
        node, path = stack.pop()
        out.append(path)
        if isinstance(node, dict):
            stack.extend((v, (*path, k)) for k, v in node.items())
        elif isinstance(node, list):
            picked = sorted({*range(min(3, len(node))), len(node) - 1} - {-1})
            stack.extend((node[i], (*path, i)) for i in picked)
    return sorted(out, key=lambda p: (len(p), [str(k) for k in p]))


def _set(doc: Any, path: tuple[str | int, ...], value: Any, *, delete: bool = False) -> Any:
    """A copy of ``doc`` with the node at ``path`` replaced (or deleted); only the containers on the path are copied."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy: Any = dict(doc) if isinstance(doc, dict) else list(doc)
    if rest:
        copy[head] = _set(doc[head], rest, value, delete=delete)
    elif delete:
        del copy[head]
    else:
        copy[head] = value
    return copy


def _get(doc: Any, path: tuple[str | int, ...]) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def _json_in(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            inner = json.loads(value)
        except (ValueError, RecursionError):  # an earlier edit may have nested it deeply
            return None
        return inner if isinstance(inner, dict | list) else None
    return None


@st.composite
def _edit(draw: st.DrawFn, doc: Any, choices: list[tuple[str | int, ...]], deep: int) -> tuple[Any, int]:
    path = draw(st.sampled_from(choices))
    node = _get(doc, path)
    ops = ["type", "delete", "char", "surrogate", "nest"]
    if _json_in(node) is not None:
        ops += ["inner", "inner"]
    op = draw(st.sampled_from(ops))
    if op == "delete" and path:
        return _set(doc, path, None, delete=True), 0
    if op == "inner":
        inner = _json_in(node)
        inner_doc, inner_deep = draw(_edit(inner, paths(inner), deep))
        text = json.dumps(inner_doc)
        if inner_deep:
            text = text.replace(json.dumps(_DEEP), "[" * inner_deep + "]" * inner_deep)
        return _set(doc, path, text), 0
    if op in ("char", "surrogate") and isinstance(node, str):
        at = draw(st.integers(min_value=0, max_value=len(node)))
        new = draw(SURROGATES) if op == "surrogate" else draw(st.characters(codec="utf-8"))
        return _set(doc, path, node[:at] + new + node[at + 1 :]), 0
    if op == "nest":
        return _set(doc, path, _DEEP), draw(st.sampled_from([40, deep]))
    return _set(doc, path, draw(odd_json)), 0


@st.composite
def mutated_json(draw: st.DrawFn, doc: Any, *, deep: int = 3000, max_edits: int = 3) -> bytes:
    """``doc`` (or a ``Seed`` of it) after 1..max_edits edits, as JSON bytes (``deep``: the depth of a "nest" edit)."""
    doc = _unwrap(doc)
    choices = paths(doc)
    depth = 0
    for _ in range(draw(st.integers(min_value=1, max_value=max_edits))):
        doc, nested = draw(_edit(doc, choices, deep))
        depth = depth or nested
        choices = paths(doc)
    text = json.dumps(doc)
    if depth:
        text = text.replace(json.dumps(_DEEP), "[" * depth + "]" * depth, 1).replace(json.dumps(_DEEP), "null")
    return text.encode()  # json.dumps escapes non-ASCII (ensure_ascii): a lone surrogate arrives as \udXXX


@st.composite
def mutated_bytes(
    draw: st.DrawFn, seed: bytes | Seed, *, max_edits: int = 4, region: tuple[int, int] | None = None
) -> bytes:
    """``seed`` (bytes or a ``Seed``) after 1..max_edits byte edits, each at an offset in ``region`` (default:
    anywhere)."""
    seed = _unwrap(seed)
    data = bytearray(seed)
    lo, hi = region or (0, len(seed))
    for _ in range(draw(st.integers(min_value=1, max_value=max_edits))):
        hi = min(hi, len(data))
        at = draw(st.integers(min_value=lo, max_value=max(lo, hi - 1)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "overwrite"]))
        if op == "flip" and at < len(data):
            data[at] ^= draw(st.integers(min_value=1, max_value=255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at : at + draw(st.integers(min_value=1, max_value=64))]
        else:
            patch = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(patch)] = patch
    return bytes(data)
