"""The exchange: the chat id of a JSON body or an SSE stream, and the labelled re-serialization fallback."""

from __future__ import annotations

import json

import pytest
from fixture_bundles import SIG

from verifier.evidence.exchange import MAX_CHAT_ID, chat_id_from_response, reserialized_sha256, sha256_hex

STREAM = (SIG / "near-direct-qwen35-3part-stream-20260602" / "response_body.sse").read_bytes()


def test_the_chat_id_of_a_recorded_stream_is_its_first_chunk_id() -> None:
    assert chat_id_from_response(STREAM) == "afa7975eaf844b1888776cf41548e230"


def test_the_chat_id_of_a_json_body_is_its_id() -> None:
    assert chat_id_from_response(b'{"id": "chatcmpl-1", "choices": []}') == "chatcmpl-1"


@pytest.mark.parametrize(
    "chat_id", ["\ud800", "chat\udfff", "a\x00b", "a\nb", "", "x" * (MAX_CHAT_ID + 1), 5, None, ["a"]]
)
def test_a_chat_id_that_cannot_go_into_a_url_or_the_ledger_is_not_used(chat_id: object) -> None:
    # fuzzing found: a lone surrogate id reached urllib.parse.quote (UnicodeEncodeError) in the pipeline
    body = json.dumps({"id": chat_id, "choices": []}).encode()
    assert chat_id_from_response(body) is None
    assert chat_id_from_response(b"data: " + body + b"\n\ndata: [DONE]\n\n") is None


def test_the_reserialized_fallback_of_a_deeply_nested_body_is_a_hash_or_none_never_an_error() -> None:
    body = b'{"a": ' + b"[" * 900 + b"]" * 900 + b"}"  # json.loads manages it: json.dumps re-encodes it
    assert reserialized_sha256(body) == sha256_hex(json.dumps(json.loads(body)).encode())
    assert reserialized_sha256(b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}") is None
