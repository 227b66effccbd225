"""model.served: a completion served by another model than the one requested is `model_fallback` unless the policy
aliases it; headers.json and response bodies are untrusted input (malformed: EvidenceError, nothing else)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from fixture_bundles import NEAR_MODEL, SIG
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from verifier.appraise.checks.fallback import model_served
from verifier.appraise.policy import default_policy, parse_policy
from verifier.appraise.registry import Appraisal
from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate
from verifier.evidence.bundle import Bundle, BundleMeta
from verifier.evidence.served_model import parse_headers, served_model
from verifier.web.proxy import recorded_headers

MODEL = "sim/echo-1"
OTHER = "sim/fallback-1"


def body(model: str | None = MODEL) -> bytes:
    doc: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion", "choices": []}
    if model is not None:
        doc["model"] = model
    return json.dumps(doc).encode()


def stream(*models: str) -> bytes:
    return (
        b"".join(b"data: " + json.dumps({"id": "c", "model": m, "choices": []}).encode() + b"\n\n" for m in models)
        + b"data: [DONE]\n\n"
    )


def judge(
    response: bytes | None,
    headers: dict[str, str] | None = None,
    *,
    model: str | None = MODEL,
    policy_text: str | None = None,
) -> str:
    bundle = Bundle(
        meta=BundleMeta(model=model),
        response=response,
        headers=json.dumps(headers).encode() if headers is not None else None,
    )
    policy = parse_policy(policy_text.encode(), source="test") if policy_text else default_policy()
    facts: Any = SimpleNamespace(bundle=bundle)
    return model_served(facts, Appraisal(policy=policy)).message


def fallback_of(exc: pytest.ExceptionInfo[CheckFailed]) -> list[str]:
    assert exc.value.reason == "model_fallback"
    return list(exc.value.details["got"])


def test_the_requested_model_in_headers_and_body_passes() -> None:
    assert "x-model-used" in judge(body(), {"x-model-used": MODEL})


def test_model_names_compare_case_insensitively() -> None:
    judge(body(MODEL.upper()), {"x-model-used": MODEL.upper()})


def test_x_model_used_naming_another_model_is_model_fallback() -> None:
    with pytest.raises(CheckFailed) as exc:
        judge(body(), {"x-model-used": OTHER})
    assert fallback_of(exc) == [OTHER]


def test_a_body_naming_another_model_is_model_fallback() -> None:
    with pytest.raises(CheckFailed) as exc:
        judge(body(OTHER))
    assert fallback_of(exc) == [OTHER]


def test_one_stream_chunk_naming_another_model_is_model_fallback() -> None:
    with pytest.raises(CheckFailed) as exc:
        judge(stream(MODEL, OTHER, MODEL))
    assert fallback_of(exc) == [OTHER]


def test_fallback_headers_without_x_model_used_are_model_fallback() -> None:
    with pytest.raises(CheckFailed) as exc:
        judge(body(), {"x-fallback-from": MODEL, "x-fallback-depth": "1"})
    assert exc.value.reason == "model_fallback" and exc.value.details["fallback_depth"] == 1


def test_a_policy_alias_allows_the_served_model() -> None:
    alias = f'[policy]\nid = "a"\n[models]\n"{MODEL}" = ["{OTHER}"]\n'
    judge(body(OTHER), {"x-model-used": OTHER, "x-fallback-from": MODEL, "x-fallback-depth": "1"}, policy_text=alias)


def test_an_alias_of_another_model_does_not_allow_the_fallback() -> None:
    alias = f'[policy]\nid = "a"\n[models]\n"other/model" = ["{OTHER}"]\n'
    with pytest.raises(CheckFailed):
        judge(body(OTHER), policy_text=alias)


def test_no_requested_model_is_indeterminate() -> None:
    with pytest.raises(Indeterminate) as exc:
        judge(body(), model=None)
    assert exc.value.reason == "model_not_requested"


def test_nothing_naming_a_served_model_passes_and_says_so() -> None:
    assert "nothing in the bundle" in judge(body(None))
    assert "nothing in the bundle" in judge(None)


def test_the_real_near_stream_fixture_names_its_requested_model() -> None:
    response = (SIG / "near-direct-qwen35-3part-stream-20260602" / "response_body.sse").read_bytes()
    assert served_model(None, response).body_models == (NEAR_MODEL,)
    judge(response, model=NEAR_MODEL)


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b"{",
        b'{"X-Model-Used": "a"}',
        b'{"x-model-used": 1}',
        b'{"": "a"}',
        b'{"x-fallback-depth": "-1"}',
        b'{"x-fallback-depth": "\\u0661"}',
        b'{"x-model-used": "a\\u0000b"}',
        b'{"x-model-used": " "}',
        b" " * 70_000,
    ],
)
def test_malformed_headers_json_is_evidence_error(raw: bytes) -> None:
    with pytest.raises(EvidenceError):
        served_model(raw, None)


def test_a_non_string_response_model_is_evidence_error() -> None:
    with pytest.raises(EvidenceError):
        served_model(None, b'{"model": ["a"]}')


def test_recorded_headers_keep_only_the_allow_list_never_a_key() -> None:
    upstream = CIMultiDict(
        {
            "Content-Type": "application/json",
            "X-Model-Used": MODEL,
            "Authorization": "Bearer sk-x",
            "Set-Cookie": "s=1",
            "X-Api-Key": "sk-y",
            "X-Fallback-From": "a",
        }
    )
    assert parse_headers(recorded_headers(upstream)) == {
        "content-type": "application/json",
        "x-model-used": MODEL,
        "x-fallback-from": "a",
    }


@settings(max_examples=300, deadline=None)
@given(
    headers=st.one_of(
        st.none(),
        st.binary(max_size=300),
        st.dictionaries(st.text(max_size=20), st.one_of(st.text(max_size=20), st.integers())).map(
            lambda d: json.dumps(d).encode()
        ),
    ),
    response=st.one_of(st.none(), st.binary(max_size=300), st.text(max_size=200).map(lambda t: t.encode())),
)
def test_served_model_raises_only_evidence_error(headers: bytes | None, response: bytes | None) -> None:
    try:
        got = served_model(headers, response)
    except EvidenceError:
        return
    assert all(isinstance(m, str) and m.strip() == m and m for m in got.body_models)
    assert got.fallback_depth is None or got.fallback_depth >= 0
