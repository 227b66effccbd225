"""GPU payload parsing: Phala / NEAR ``nvidia_payload`` and Chutes ``gpu_evidence`` (docs/gpu.md §0)."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier.core.errors import EvidenceError
from verifier.evidence.gpu_payload import chutes_gpu_nonce, parse_chutes_gpu_evidence, parse_nvidia_payload
from verifier.evidence.spdm import check_gpu_nonces, parse_spdm

FIX = Path(__file__).resolve().parent.parent / "fixtures"
NEAR = FIX / "redpill/attestation/nearcloud-two-layer-ed25519-tls-20260629/attestation_report.json"
PHALA_0325 = FIX / "nvidia/phala-format-1gpu-20260325"
SINGLE = FIX / "nvidia/single-gpu-nras-20260629"
CHUTES = FIX / "nvidia/redpill-chutes-8gpu-nras-fail-20260610/attestation_report.json"
NEAR_NONCE = "e79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609"


def near_payload_text() -> str:
    return json.loads(NEAR.read_text())["model_attestations"][0]["nvidia_payload"]


def test_near_payload_string_with_per_item_nonces_parses_eight_gpus() -> None:
    p = parse_nvidia_payload(near_payload_text())
    assert (p.nonce, p.arch, len(p.evidence)) == (NEAR_NONCE, "HOPPER", 8)
    assert [g.index for g in p.evidence] == list(range(8))
    assert all(g.nonce == NEAR_NONCE and g.arch == "HOPPER" for g in p.evidence)
    assert all(g.certificate_pem.startswith(b"-----BEGIN CERTIFICATE-----") for g in p.evidence)
    assert all(parse_spdm(g.evidence).request_nonce.hex() == NEAR_NONCE for g in p.evidence)


def test_nras_request_keeps_base64_fields_as_received_and_drops_item_nonces() -> None:
    raw = json.loads(near_payload_text())
    req = parse_nvidia_payload(raw).nras_request
    assert req["nonce"] == NEAR_NONCE and req["arch"] == "HOPPER"
    for sent, got in zip(raw["evidence_list"], req["evidence_list"], strict=True):
        assert got == {"certificate": sent["certificate"], "evidence": sent["evidence"], "arch": "HOPPER"}


def test_recorded_nras_request_round_trips() -> None:
    raw = (SINGLE / "nras_v3_request.json").read_bytes()
    assert parse_nvidia_payload(raw).nras_request == json.loads(raw)


def test_phala_key_order_string_and_decoded_object_parse_alike() -> None:
    text = (PHALA_0325 / "nvidia_payload.json").read_text()
    a, b = parse_nvidia_payload(text), parse_nvidia_payload(json.loads(text))
    assert a == b
    assert a.nonce == "362ce79951d276775deaa81a3098c62269a794bad7158ab61a7f9c79fd0145a4"
    assert a.evidence[0].nonce is None
    assert a.evidence[0].evidence == (PHALA_0325 / "gpu0_evidence.bin").read_bytes()
    assert a.evidence[0].certificate_pem == (PHALA_0325 / "gpu0_cert_chain.pem").read_bytes()


def _item(**over: object) -> dict[str, object]:
    good = json.loads(near_payload_text())["evidence_list"][0]
    return {**good, **over}


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        "[1, 2]",
        b"\xff\xfe",
        42,
        None,
        {"nonce": NEAR_NONCE},
        {"evidence_list": "x"},
        {"evidence_list": [1]},
        {"evidence_list": [_item(certificate="!!not base64!!")]},
        {"evidence_list": [_item(certificate=base64.b64encode(b"no pem here").decode())]},
        {"evidence_list": [_item(evidence="")]},
        {"evidence_list": [_item(evidence=None)]},
        {"evidence_list": [_item(nonce="zz")]},
        {"evidence_list": [_item()], "nonce": "abc"},
        {"evidence_list": [_item()], "nonce": 5},
        {"evidence_list": [_item()], "arch": ""},
        '{"nonce": "aa", "nonce": "bb", "evidence_list": []}',
    ],
)
def test_malformed_payloads_raise_evidence_error(value: object) -> None:
    with pytest.raises(EvidenceError):
        parse_nvidia_payload(value)


def test_empty_evidence_list_parses_and_fails_the_nonce_check_as_no_gpu_evidence() -> None:
    from verifier.core.errors import CheckFailed

    p = parse_nvidia_payload({"nonce": NEAR_NONCE, "evidence_list": []})
    assert p.evidence == ()
    with pytest.raises(CheckFailed) as exc:
        check_gpu_nonces(p, bytes.fromhex(NEAR_NONCE))
    assert exc.value.reason == "no_gpu_evidence"


def test_chutes_gpu_nonce_is_sha256_of_nonce_hex_and_pubkey_and_matches_every_spdm_nonce() -> None:
    report = json.loads(CHUTES.read_text())
    inst0 = report["all_attestations"][0]
    assert (
        chutes_gpu_nonce(inst0["nonce"], inst0["e2e_pubkey"]).hex()
        == "ef0ed0e8d721eed751bb17a37ffdabfa533973166513f7ad52df7330b9f56c10"
    )
    for inst in report["all_attestations"]:
        derived = chutes_gpu_nonce(inst["nonce"], inst["e2e_pubkey"])
        p = parse_chutes_gpu_evidence(inst["gpu_evidence"], nonce_hex=inst["nonce"], e2e_pubkey_b64=inst["e2e_pubkey"])
        assert p.nonce == derived.hex() == p.nras_request["nonce"]
        assert len(p.evidence) == 8
        assert all(parse_spdm(g.evidence).request_nonce == derived for g in p.evidence)
        check_gpu_nonces(p, derived)


def test_chutes_without_pubkey_takes_nonce_hex_as_the_gpu_nonce() -> None:
    inst = json.loads(CHUTES.read_text())["all_attestations"][0]
    p = parse_chutes_gpu_evidence(inst["gpu_evidence"], nonce_hex=inst["nonce"])
    assert p.nonce == inst["nonce"] and p.arch == "HOPPER"


@pytest.mark.parametrize("items", [None, {}, [1], [{"certificate": "x"}]])
def test_malformed_chutes_evidence_raises_evidence_error(items: object) -> None:
    with pytest.raises(EvidenceError):
        parse_chutes_gpu_evidence(items, nonce_hex="aa")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["nonce", "arch", "evidence_list", "certificate", "evidence", "x"]), inner, max_size=5
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_json)
def test_random_json_raises_only_evidence_error(value: object) -> None:
    for v in (value, json.dumps(value)):
        with contextlib.suppress(EvidenceError):
            parse_nvidia_payload(v)
