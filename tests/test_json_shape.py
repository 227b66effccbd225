"""The shape guard's quick pass never changes an answer: ``shape_problem`` equals the path-naming walk on any value,
JSON-decoded or built in code (surrogates in strings and keys, nesting around the limit, odd types and keys)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifier.core.errors import EvidenceError
from verifier.evidence.json_object import MAX_DEPTH, _walk, load_json, shape_problem

_STRINGS = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["\ud800", "a\udfff", "é\udbff", "\U0001f600", "ü", "\\ud800"]),
)
_KEYS = st.one_of(_STRINGS, st.integers(0, 3))  # a non-str key: only code builds one
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _STRINGS)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_KEYS, inner, max_size=4),
        st.tuples(inner),  # not JSON: the walk treats it as a scalar, and so must the quick pass's answer
    ),
    max_leaves=30,
)


def _answer(check: Any) -> tuple[str, str | None]:
    try:
        return "ok", check()
    except Exception as exc:  # the same exception type either way (a non-str key the walk reaches)
        return type(exc).__name__, None


@given(value=_VALUES, depth=st.integers(0, 5))
def test_shape_problem_is_the_walk_on_any_value(value: Any, depth: int) -> None:
    quick = _answer(lambda: shape_problem(value, max_depth=depth))
    walk = _answer(lambda: _walk(value, depth))
    if walk[0] == "ok":
        assert quick == walk
    else:  # the walk raises only on a non-str key it reaches; the guard then raises too
        assert quick[0] == walk[0]


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1])
def test_nesting_at_the_limit_is_judged_as_before(depth: int) -> None:
    doc = json.loads("[" * depth + "]" * depth)
    problem = shape_problem(doc)
    assert problem == _walk(doc, MAX_DEPTH)
    assert (problem is None) == (depth <= MAX_DEPTH)
    if problem is not None:
        assert problem.endswith(f"nested deeper than {MAX_DEPTH} levels")


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ('{"a": ["\\ud800"]}', "$.a[0]: a string holds a lone UTF-16 surrogate"),
        ('{"\\udc00": 1}', "$: a key holds a lone UTF-16 surrogate"),
        (b'{"a": "\xed\xa0\x80"}', "$.a: a string holds a lone UTF-16 surrogate"),  # UTF-8-encoded surrogate
    ],
)
def test_surrogates_are_refused_with_their_place(raw: str | bytes, where: str) -> None:
    with pytest.raises(EvidenceError, match=rf"^doc: {re.escape(where)}"):
        load_json(raw, "doc")


def test_a_surrogate_pair_is_one_character_and_fine() -> None:
    assert load_json('{"a": "\\ud83d\\ude00"}', "doc") == {"a": "\U0001f600"}
