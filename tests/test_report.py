"""Attestation reports in every producer format, and picking the attestation that belongs to the signer."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from fixture_bundles import (
    NEAR_GATEWAY_KEY,
    NEAR_MODEL,
    NEAR_MODEL_KEY,
    chutes,
    near_two_layer,
    phala_1gpu_20260325,
    phala_flat,
)
from hypothesis import given
from hypothesis import strategies as st

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.report import ReportFormat, parse_report, select_attestations

PHALA_SIGNER = "0xa6df16ebBc510D97A32b99B4DFD33793acC90e2b"


def _doc(bundle_report: bytes | None) -> dict[str, Any]:
    assert bundle_report is not None
    return json.loads(bundle_report)


def test_phala_flat_report_and_its_all_attestations_copy_are_one_attestation() -> None:
    report = parse_report(phala_flat().report or b"")
    assert report.format is ReportFormat.PHALA_FLAT
    assert [a.path for a in report.attestations] == ["$"]
    att = report.attestations[0]
    assert att.signer() == PHALA_SIGNER.lower() and att.signing_algo == "ecdsa"
    assert att.app_compose is not None and att.compose_hash and att.nvidia_payload and att.event_log
    assert report.signing_address == PHALA_SIGNER and not report.gpu_evidence_remote


def test_near_two_layer_report_has_a_gateway_and_a_model_attestation() -> None:
    report = parse_report(near_two_layer().report or b"")
    assert report.format is ReportFormat.NEAR_TWO_LAYER
    roles = {a.path: (a.role, a.signer(), a.model_name) for a in report.attestations}
    assert roles == {
        "$.gateway_attestation": ("gateway", NEAR_GATEWAY_KEY, None),
        "$.model_attestations[0]": ("model", NEAR_MODEL_KEY, NEAR_MODEL),
    }
    assert all(a.tls_cert_fingerprint for a in report.attestations)


def test_chutes_report_is_five_instances_without_signers() -> None:
    report = parse_report(chutes().report or b"")
    assert report.format is ReportFormat.CHUTES
    assert len(report.attestations) == 5
    assert all(
        a.role == "instance" and a.signer() is None and a.e2e_pubkey and a.instance_nonce for a in report.attestations
    )
    assert all(isinstance(a.gpu_evidence, list) and len(a.gpu_evidence) == 8 for a in report.attestations)


def test_a_nearai_gateway_key_signature_selects_the_gateway_attestation() -> None:
    # a failure seen in other verifiers (#3): searching only model_attestations crashes or verifies the wrong key
    report = parse_report(near_two_layer().report or b"")
    (att,) = select_attestations(
        report, signing_address=NEAR_GATEWAY_KEY, signing_algo="ed25519", models={NEAR_MODEL.lower()}
    )
    assert att.path == "$.gateway_attestation"


def test_a_model_key_selects_its_model_attestation() -> None:
    report = parse_report(near_two_layer().report or b"")
    (att,) = select_attestations(
        report, signing_address=NEAR_MODEL_KEY.upper(), signing_algo="ed25519", models={NEAR_MODEL.lower()}
    )
    assert att.path == "$.model_attestations[0]"


def test_a_genuine_report_of_another_signer_is_signer_not_attested() -> None:
    # a failure seen in other verifiers (#5): a valid signature by key A paired with a genuine report of key B must not
    # pass
    report = parse_report(phala_flat().report or b"")
    with pytest.raises(CheckFailed) as exc:
        select_attestations(report, signing_address="0x" + "ab" * 20, signing_algo="ecdsa", models=None)
    assert exc.value.reason == "signer_not_attested"
    assert "0xa6df16ebbc510d97a32b99b4dfd33793acc90e2b" in exc.value.message


def test_the_right_key_with_the_wrong_algo_is_not_attested() -> None:
    report = parse_report(near_two_layer().report or b"")
    with pytest.raises(EvidenceError):  # an ed25519 key is not an ecdsa address at all
        select_attestations(report, signing_address=NEAR_MODEL_KEY, signing_algo="ecdsa", models=None)
    with pytest.raises(CheckFailed) as exc:
        select_attestations(
            parse_report(phala_flat().report or b""), signing_address="ab" * 32, signing_algo="ed25519", models=None
        )
    assert exc.value.reason == "signer_not_attested"


def test_a_substitute_model_attestation_is_model_mismatch() -> None:
    # private-ai-gateway PR #50: NEAR answered an unknown model with another model's attestation
    report = parse_report(near_two_layer().report or b"")
    with pytest.raises(CheckFailed) as exc:
        select_attestations(
            report, signing_address=NEAR_MODEL_KEY, signing_algo="ed25519", models={"zai-org/GLM-4.7".lower()}
        )
    assert exc.value.reason == "model_mismatch"
    assert exc.value.details == {"expected": ["zai-org/glm-4.7"], "got": [NEAR_MODEL]}


def test_two_distinct_quotes_claiming_the_signer_are_both_selected() -> None:
    doc = _doc(phala_flat().report)
    other = dict(doc["all_attestations"][0])
    q = other["intel_quote"]
    other["intel_quote"] = q[:200] + ("0" if q[200] != "0" else "1") + q[201:]
    doc["all_attestations"].append(other)
    report = parse_report(doc)
    chosen = select_attestations(report, signing_address=PHALA_SIGNER, signing_algo="ecdsa", models=None)
    assert [a.path for a in chosen] == ["$", "$.all_attestations[1]"]


def test_an_aci_legacy_report_says_its_gpu_evidence_is_remote() -> None:
    doc = _doc(phala_1gpu_20260325().report)
    doc["api_version"] = "aci/1"
    doc["attestation"] = {"tee_type": "tdx", "workload_keyset": {"keys": []}, "evidence": {"quote": doc["intel_quote"]}}
    report = parse_report(doc)
    assert report.format is ReportFormat.ACI_LEGACY and report.gpu_evidence_remote


def test_near_direct_flat_report_is_recognised_by_its_model_name() -> None:
    doc = {**_doc(phala_flat().report), "model_name": "Qwen/Qwen3.5-27B"}
    report = parse_report(doc)
    assert report.format is ReportFormat.NEAR_DIRECT
    assert report.attestations[0].model_name == "Qwen/Qwen3.5-27B"


def test_older_reports_with_tcb_info_as_a_json_string_still_yield_app_compose() -> None:
    doc = _doc(phala_flat().report)
    doc.pop("all_attestations")
    doc["info"]["tcb_info"] = json.dumps(doc["info"]["tcb_info"])
    att = parse_report(doc).attestations[0]
    assert att.app_compose is not None and att.app_compose.startswith("{")


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"not json", "not valid JSON"),
        (b"[1]", "expected an object"),
        (b'{"attestation_type": "tinfoil", "intel_quote": "00"}', "not supported"),
        (b'{"foo": 1}', "unknown format"),
        (b'{"intel_quote": 5}', "intel_quote"),
        (b'{"model_attestations": {"a": 1}}', "expected a list"),
        (b'{"model_attestations": [1]}', "expected an object"),
        (b'{"attestation_type": "chutes", "all_attestations": []}', "without instances"),
        (b'{"intel_quote": "00", "signing_address": 7}', "signing_address"),
    ],
)
def test_malformed_reports_name_what_is_wrong(raw: bytes, needle: str) -> None:
    with pytest.raises(EvidenceError) as exc:
        parse_report(raw)
    assert needle in exc.value.message


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20,
)
_keys = st.sampled_from(
    [
        "intel_quote",
        "quote",
        "signing_address",
        "signing_algo",
        "all_attestations",
        "gateway_attestation",
        "model_attestations",
        "attestation_type",
        "api_version",
        "info",
        "event_log",
        "nvidia_payload",
        "model_name",
    ]
)


@given(st.dictionaries(_keys, _json, max_size=6))
def test_parse_report_on_arbitrary_json_raises_only_evidence_error(doc: dict[str, Any]) -> None:
    try:
        report = parse_report(json.dumps(doc).encode())
    except EvidenceError:
        return
    for att in report.attestations:
        att.signer()


@given(st.binary(max_size=256))
def test_parse_report_on_arbitrary_bytes_raises_only_evidence_error(raw: bytes) -> None:
    with contextlib.suppress(EvidenceError):
        parse_report(raw)


def test_an_attestation_without_signing_algo_takes_the_algo_its_address_implies() -> None:
    doc = _doc(near_two_layer().report)
    for entry in [doc["gateway_attestation"], *doc["model_attestations"]]:
        del entry["signing_algo"]
    report = parse_report(doc)
    (att,) = select_attestations(
        report, signing_address=NEAR_MODEL_KEY, signing_algo="ed25519", models={NEAR_MODEL.lower()}
    )
    assert att.algo == "ed25519" and att.path == "$.model_attestations[0]"
    flat = _doc(phala_flat().report)
    del flat["signing_algo"]
    assert parse_report(flat).attestations[0].algo == "ecdsa"


def test_a_copy_with_the_same_quote_but_other_gpu_evidence_is_kept_and_checked() -> None:
    doc = _doc(phala_flat().report)
    doc["all_attestations"][0]["nvidia_payload"] = '{"nonce": "00", "evidence_list": []}'
    report = parse_report(doc)
    assert [a.path for a in report.attestations] == ["$", "$.all_attestations[0]"]


def test_a_signature_kind_must_match_the_role_of_the_attestation() -> None:
    # docs/protocol.md §3.6 step 4: the NEAR gateway key signs gateway-kind signatures only
    report = parse_report(near_two_layer().report or b"")
    (att,) = select_attestations(
        report, signing_address=NEAR_GATEWAY_KEY, signing_algo="ed25519", models=None, signature_kind="gateway"
    )
    assert att.role == "gateway"
    with pytest.raises(CheckFailed) as exc:
        select_attestations(
            report, signing_address=NEAR_GATEWAY_KEY, signing_algo="ed25519", models=None, signature_kind="provider_tee"
        )
    assert exc.value.reason == "signer_not_attested"
    with pytest.raises(CheckFailed):
        select_attestations(
            report, signing_address=NEAR_MODEL_KEY, signing_algo="ed25519", models=None, signature_kind="gateway"
        )


# ---------------------------------------------------------------- fuzzing regressions: surrogates, nesting, constants


@pytest.mark.parametrize("field", ["nonce", "e2e_pubkey"])
def test_chutes_instance_field_with_a_lone_surrogate_is_malformed_evidence_naming_it(field: str) -> None:
    # fuzzing found: a "\ud800" in the instance nonce reached an .encode() in the nonce check (internal_error)
    doc = _doc(chutes().report)
    doc["all_attestations"][3][field] = doc["all_attestations"][3][field][:8] + "\ud800"
    for raw in (json.dumps(doc).encode(), doc):
        with pytest.raises(EvidenceError) as exc:
            parse_report(raw)
        assert f"$.all_attestations[3].{field}" in exc.value.message and "surrogate" in exc.value.message


@pytest.mark.parametrize("value", ["é" * 8, "ab\x00cd", "ab\ncd"])
def test_chutes_instance_nonce_that_is_not_printable_ascii_is_malformed_evidence(value: str) -> None:
    doc = _doc(chutes().report)
    doc["all_attestations"][0]["nonce"] = value
    with pytest.raises(EvidenceError, match=r"\$\.all_attestations\[0\]\.nonce: .* is not printable ASCII"):
        parse_report(doc)


def test_a_lone_surrogate_anywhere_in_a_report_is_malformed_evidence() -> None:
    doc = _doc(phala_flat().report)
    doc["info"]["app_name"] = "\udc00"
    with pytest.raises(EvidenceError, match=r"\$\.info\.app_name: a string holds a lone UTF-16 surrogate"):
        parse_report(json.dumps(doc).encode())


@pytest.mark.parametrize("depth", [40, 3000])
def test_a_report_nested_deeper_than_the_limit_is_malformed_evidence(depth: int) -> None:
    doc = _doc(phala_flat().report)
    doc["info"]["tcb_info"] = "__deep__"
    raw = json.dumps(doc).replace('"__deep__"', "[" * depth + "]" * depth).encode()
    with pytest.raises(EvidenceError, match=r"nested deeper than|not valid JSON"):
        parse_report(raw)


def test_deep_nesting_inside_a_tcb_info_string_is_malformed_evidence() -> None:
    doc = _doc(phala_flat().report)
    doc["info"]["tcb_info"] = "[" * 3000 + "]" * 3000
    with pytest.raises(EvidenceError, match=r"\$\.info\.tcb_info \(a JSON string\): not valid JSON"):
        parse_report(doc)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_in_a_report(constant: str) -> None:
    raw = json.dumps({**_doc(phala_flat().report), "extra": "__c__"}).replace('"__c__"', constant).encode()
    with pytest.raises(EvidenceError, match="not valid JSON"):
        parse_report(raw)
