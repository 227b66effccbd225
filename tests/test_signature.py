"""Response signatures on the real recorded fixtures: EIP-191 ecdsa and ed25519, 2- and 3-part texts, negatives."""

from __future__ import annotations

import contextlib
import json

import pytest
from fixture_bundles import SIG, signature_case, signature_cases
from hypothesis import given
from hypothesis import strategies as st

from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate
from verifier.evidence.exchange import chat_id_from_response, reserialized_sha256, sha256_hex
from verifier.evidence.signature import normalize_signer, parse_signature, parse_signed_text
from verifier.verify.signature import verify_signature

ED25519 = "near-gateway-ed25519-signature-only-20260906"


def _sig_body(name: str) -> dict[str, str]:
    return json.loads((SIG / name / "signature_response.json").read_bytes())


@pytest.mark.parametrize("name", signature_cases())
def test_every_recorded_signature_verifies_for_its_expected_signer(name: str) -> None:
    expected = json.loads((SIG / name / "expected.json").read_text())
    sig = parse_signature(signature_case(name).signature or b"")
    signer = verify_signature(sig)
    want = expected.get("eip191_recovered_address") or _sig_body(name)["signing_address"]
    assert signer == normalize_signer(sig.signing_algo, want)
    assert expected.get("text_parts", 2) == (3 if sig.signed.model else 2)


@pytest.mark.parametrize("name", [n for n in signature_cases() if (SIG / n / "request_body.json").exists()])
def test_exact_byte_hashes_match_the_signed_hashes_exactly_when_the_fixture_says_so(name: str) -> None:
    expected = json.loads((SIG / name / "expected.json").read_text())
    bundle = signature_case(name)
    sig = parse_signature(bundle.signature or b"")
    assert (sha256_hex(bundle.request or b"") == sig.signed.request_hash) is expected["request_hash_matches"]
    assert (sha256_hex(bundle.response or b"") == sig.signed.response_hash) is expected["response_hash_matches"]


def test_three_part_text_keeps_the_model_prefix_as_information() -> None:
    signed = parse_signed_text("Qwen/Qwen3.5-122B-A10B:" + "a" * 64 + ":" + "b" * 64)
    assert (signed.model, signed.request_hash, signed.response_hash) == ("Qwen/Qwen3.5-122B-A10B", "a" * 64, "b" * 64)


@pytest.mark.parametrize(
    "text", ["", "abc", "a" * 64, "a" * 64 + ":" + "B" * 64, "a" * 63 + ":" + "b" * 64, ":" + "a" * 64 + ":" + "b" * 64]
)
def test_malformed_signed_text_is_named(text: str) -> None:
    with pytest.raises(EvidenceError) as exc:
        parse_signed_text(text)
    assert exc.value.reason == "signed_text_malformed"


def test_ecdsa_signature_over_other_text_recovers_to_another_signer() -> None:
    body = _sig_body("near-gateway-deepseek-2part-stream-20251203")
    body["text"] = body["text"][:-1] + ("0" if body["text"][-1] != "0" else "1")
    with pytest.raises(CheckFailed) as exc:
        verify_signature(parse_signature(body))
    assert exc.value.reason == "signer_mismatch"
    assert exc.value.details["expected"] == body["signing_address"].lower()


def test_ecdsa_signature_claimed_for_another_address_is_signer_mismatch() -> None:
    body = _sig_body("near-direct-qwen35-3part-stream-20260602")
    body["signing_address"] = "0x" + "11" * 20
    with pytest.raises(CheckFailed) as exc:
        verify_signature(parse_signature(body))
    assert exc.value.reason == "signer_mismatch"


def test_ecdsa_signature_of_wrong_length_is_invalid() -> None:
    body = _sig_body("near-direct-qwen35-3part-stream-20260602")
    body["signature"] = body["signature"][:-2]
    with pytest.raises(CheckFailed) as exc:
        verify_signature(parse_signature(body))
    assert exc.value.reason == "signature_invalid"


@pytest.mark.parametrize("mutate", ["flip_last_hex", "all_0x11"])
def test_ed25519_negative_variants_fail(mutate: str) -> None:
    body = _sig_body(ED25519)
    sig = body["signature"]
    body["signature"] = sig[:-1] + ("0" if sig[-1] != "0" else "1") if mutate == "flip_last_hex" else "11" * 64
    with pytest.raises(CheckFailed) as exc:
        verify_signature(parse_signature(body))
    assert exc.value.reason == "signature_invalid"


def test_ed25519_signature_is_not_pushed_through_eip191_recovery() -> None:
    # a failure seen in other verifiers (#2): both anchors crash on ed25519 ("v 12 is invalid")
    sig = parse_signature(_sig_body(ED25519))
    assert sig.signing_algo == "ed25519" and sig.kind == "gateway"
    assert verify_signature(sig) == "cb6fc58f6bd685919fa42fb54d3fcfe03222e324bdda91f0bac6d5c73dc4f1c6"


def test_unknown_signing_algo_is_indeterminate_never_pass() -> None:
    body = {**_sig_body(ED25519), "signing_algo": "ecdsa-p256"}
    with pytest.raises(Indeterminate) as exc:
        verify_signature(parse_signature(body))
    assert exc.value.reason == "unsupported_signing_algo"


def test_signed_text_with_a_lone_surrogate_is_malformed_not_a_crash() -> None:
    body = {**_sig_body("near-direct-qwen35-3part-stream-20260602")}
    body["text"] = "\ud800" + body["text"]
    with pytest.raises(EvidenceError) as exc:  # the JSON shape check of signature.json refuses it first, naming it
        parse_signature(json.dumps(body).encode())
    assert exc.value.reason == "malformed_evidence" and "$.text" in exc.value.message
    assert "surrogate" in exc.value.message
    with pytest.raises(EvidenceError) as direct:  # an already-decoded body is refused by the signature parser itself
        parse_signature(body)
    assert direct.value.reason == "signed_text_malformed"


def test_missing_signing_algo_means_ecdsa() -> None:
    body = _sig_body("near-direct-qwen35-3part-stream-20260602")
    del body["signing_algo"]
    assert parse_signature(body).signing_algo == "ecdsa"


@pytest.mark.parametrize(
    ("algo", "address", "want"),
    [
        ("ecdsa", "0x6525E128afcffebf7eed05d485d7be983cdae934", "0x6525e128afcffebf7eed05d485d7be983cdae934"),
        ("ecdsa", "6525e128afcffebf7eed05d485d7be983cdae934", "0x6525e128afcffebf7eed05d485d7be983cdae934"),
        (
            "ed25519",
            "CB6FC58F6BD685919FA42FB54D3FCFE03222E324BDDA91F0BAC6D5C73DC4F1C6",
            "cb6fc58f6bd685919fa42fb54d3fcfe03222e324bdda91f0bac6d5c73dc4f1c6",
        ),
    ],
)
def test_signers_compare_in_one_canonical_form(algo: str, address: str, want: str) -> None:
    assert normalize_signer(algo, address) == want


@pytest.mark.parametrize(
    ("algo", "address"), [("ecdsa", "0x1234"), ("ed25519", "0x" + "11" * 20), ("rsa", "0x" + "11" * 20)]
)
def test_malformed_signer_is_an_evidence_error(algo: str, address: str) -> None:
    with pytest.raises(EvidenceError):
        normalize_signer(algo, address)


@pytest.mark.parametrize("raw", [b"", b"[]", b"not json", b'{"text": 1}', b'{"text": "a:b", "signature": "x"}'])
def test_garbled_signature_bodies_are_evidence_errors(raw: bytes) -> None:
    with pytest.raises(EvidenceError):
        parse_signature(raw)


@given(st.binary(max_size=512))
def test_parse_signature_on_arbitrary_bytes_raises_only_evidence_error(raw: bytes) -> None:
    with contextlib.suppress(EvidenceError):
        parse_signature(raw)


@given(
    st.dictionaries(
        st.sampled_from(["text", "signature", "signing_address", "signing_algo", "signature_kind"]),
        st.one_of(st.text(max_size=200), st.integers(), st.none(), st.lists(st.integers(), max_size=3)),
    )
)
def test_parse_and_verify_on_arbitrary_objects_never_crash(body: dict[str, object]) -> None:
    with contextlib.suppress(EvidenceError, CheckFailed, Indeterminate):
        verify_signature(parse_signature(body))  # type: ignore[arg-type]


# ---------------------------------------------------------------- exact bytes


def test_chat_id_comes_from_the_first_sse_chunk_or_the_json_body() -> None:
    stream = b'data: {"id":"chatcmpl-1","choices":[]}\n\ndata: {"id":"chatcmpl-2"}\n\ndata: [DONE]\n\n'
    assert chat_id_from_response(stream) == "chatcmpl-1"
    assert chat_id_from_response(b'{"id": "chatcmpl-9", "object": "chat.completion"}') == "chatcmpl-9"
    assert chat_id_from_response(b"<html>") is None
    assert chat_id_from_response(b"data: [DONE]\n\n") is None


def test_crlf_streams_are_read_for_the_chat_id_but_hashed_as_received() -> None:
    stream = b'data: {"id":"x1"}\r\n\r\ndata: [DONE]\r\n\r\n'
    assert chat_id_from_response(stream) == "x1"
    assert sha256_hex(stream) != sha256_hex(stream.replace(b"\r\n", b"\n"))


def test_reserialized_hash_is_python_default_json_dumps_of_a_json_body_only() -> None:
    body = b'{"id":"a","choices":[{"text":"\xc3\xa9"}]}'
    assert reserialized_sha256(body) == sha256_hex(b'{"id": "a", "choices": [{"text": "\\u00e9"}]}')
    assert reserialized_sha256(b'data: {"id":"a"}\n\n') is None
    assert reserialized_sha256(b"[1, 2]") is None


@given(st.binary(max_size=300))
def test_exchange_helpers_never_raise_on_arbitrary_bytes(raw: bytes) -> None:
    chat_id_from_response(raw)
    reserialized_sha256(raw)


def test_the_service_process_keeps_a_recursion_limit_that_makes_deep_json_an_error_not_a_segfault() -> None:
    import subprocess
    import sys

    code = (
        "import verifier.web, verifier.simulator.gateway, json\n"
        "from verifier.evidence.report import parse_report\n"
        "from verifier.core.errors import EvidenceError\n"
        "try:\n    parse_report(b'[' * 200000)\nexcept EvidenceError as e:\n    print('evidence error:', e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-500:]
    assert "evidence error: report: not valid JSON" in done.stdout
