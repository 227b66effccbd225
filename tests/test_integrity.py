"""Verdict integrity: the ways a wrong `pass` was reachable are closed (issue: verdict integrity).

The evidence is real simulator evidence recorded through the service; each attack changes it the way a
prover could, and the offline evaluation (dcap-qvl in its worker, simulator trust anchors, a policy that
pins the recorded identity) must not pass.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_bundle import Offline, pins_policy, record

from verifier.appraise.policy import Policy, parse_policy
from verifier.core.verdict import Verdict
from verifier.engine import gpus as gpu_stage
from verifier.evidence.bundle import Bundle


@pytest.fixture(scope="module")
def phala(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Bundle, Policy]:
    verdict, bundle = record(tmp_path_factory.mktemp("phala"))
    return verdict, bundle, parse_policy(pins_policy(verdict), source="pinned.toml")


@pytest.fixture(scope="module")
def near(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Bundle, Policy]:
    verdict, bundle = record(
        tmp_path_factory.mktemp("near"), report_format="near_two_layer", algo="ed25519", gpu_count=2
    )
    return verdict, bundle, parse_policy(pins_policy(verdict), source="pinned.toml")


def statuses(v: Verdict) -> dict[str, tuple[str, str | None]]:
    return {c.id: (str(c.status), c.reason) for c in v.checks}


def test_a_recorded_simulator_bundle_with_its_identity_pinned_passes_offline(offline: Offline, phala: Any) -> None:
    _, bundle, policy = phala
    v = offline.verdict(bundle, policy)
    assert str(v.status) == "pass", statuses(v)
    assert v.subject.model_binding["by"] == ["app_id_pin"]
    assert {k: t["tier"] for k, t in v.trust_vector.items()} == dict.fromkeys(
        ("hardware", "instance-identity", "configuration", "executables", "runtime-opaque", "sourced-data"), "affirming"
    )


def test_the_same_bundle_under_the_default_policy_names_what_is_not_pinned(offline: Offline, phala: Any) -> None:
    _, bundle, _ = phala
    v = offline.verdict(bundle, parse_policy(b"", source="default-like.toml"))
    assert str(v.status) == "indeterminate"
    checks = statuses(v)
    assert checks["tdx.app"] == ("indeterminate", "identity_not_pinned")
    assert checks["tdx.measurements"] == ("indeterminate", "identity_not_pinned")
    assert v.trust_vector["executables"]["tier"] == "none" and v.trust_vector["hardware"]["tier"] == "affirming"


# ------------------------------------------------------------------ mutation of any verified byte


def _flip_hex(text: str, i: int) -> str:
    i %= len(text)
    return text[:i] + ("0" if text[i] != "0" else "1") + text[i + 1 :]


def _mutate(bundle: Bundle, target: str, i: int) -> Bundle:
    if target in ("request", "response"):
        body = bytearray(getattr(bundle, target) or b"")
        body[i % len(body)] ^= 0x01 << (i % 7)
        return replace(bundle, **{target: bytes(body)})
    if target == "signature":
        doc = json.loads(bundle.signature or b"")
        doc["signature"] = "0x" + _flip_hex(doc["signature"].removeprefix("0x"), i)
        return replace(bundle, signature=json.dumps(doc).encode())
    report = json.loads(bundle.report or b"")
    entries = [report, *report.get("all_attestations", [])]
    if target == "quote":
        for e in entries:  # the same change in every copy, so that no untouched copy remains
            e["intel_quote"] = _flip_hex(e["intel_quote"], i)
            e.pop("quote", None)
    elif target == "event_log":
        log = json.loads(report["event_log"])
        entry = log[i % len(log)]
        field = "event_payload" if entry["imr"] == 3 and entry.get("event_payload") else "digest"
        entry[field] = _flip_hex(entry[field], i // len(log))
        for e in entries:
            e["event_log"] = json.dumps(log)
    elif target == "gpu_evidence":
        payload = json.loads(report["nvidia_payload"])
        item = payload["evidence_list"][0]
        raw = bytearray(base64.b64decode(item["evidence"]))
        raw[i % len(raw)] ^= 0x80
        item["evidence"] = base64.b64encode(bytes(raw)).decode()
        for e in entries:
            e["nvidia_payload"] = json.dumps(payload)
    elif target == "nras":
        body = bytearray(bundle.nras["response.json"])
        j = body.index(b"eyJ") + 20 + i % 200  # inside the first JWT
        body[j] = ord("A") if body[j] != ord("A") else ord("B")
        return replace(bundle, nras={**bundle.nras, "response.json": bytes(body)})
    return replace(bundle, report=json.dumps(report).encode())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.sampled_from(["request", "response", "signature", "quote", "event_log", "gpu_evidence", "nras"]),
    i=st.integers(min_value=0, max_value=10**6),
)
def test_any_change_to_a_verified_byte_of_a_passing_bundle_is_never_a_pass(
    offline: Offline, phala: Any, target: str, i: int
) -> None:
    _, bundle, policy = phala
    v = offline.verdict(_mutate(bundle, target, i), policy)
    assert str(v.status) != "pass", (target, i, [c for c in statuses(v).items() if c[1][0] != "pass"])


# ------------------------------------------------------------------ the model is bound


def test_a_three_part_text_signed_for_another_model_fails_model_mismatch(tmp_path: Path) -> None:
    verdict, _ = record(tmp_path, report_format="near_two_layer", algo="ed25519", faults=("signed_other_model",))
    checks = {c["id"]: (c["status"], c["reason"]) for c in verdict["checks"]}
    assert checks["model.binding"] == ("fail", "model_mismatch")
    message = next(c["message"] for c in verdict["checks"] if c["id"] == "model.binding")
    assert "'cheap/llama-8b'" in message and verdict["status"] == "fail"


def test_a_model_attestation_for_another_model_fails_model_mismatch(tmp_path: Path) -> None:
    verdict, _ = record(tmp_path, report_format="near_two_layer", algo="ed25519", faults=("attested_other_model",))
    checks = {c["id"]: (c["status"], c["reason"]) for c in verdict["checks"]}
    assert checks["report.signer"] == ("fail", "model_mismatch")
    assert verdict["status"] == "fail"


def test_a_configured_alias_is_accepted_and_what_bound_the_model_is_stated(offline: Offline, near: Any) -> None:
    verdict, bundle, _ = near
    aliased = replace(bundle, meta=replace(bundle.meta, model="sim/echo-1-alias"))
    policy = parse_policy(
        pins_policy(
            {**verdict, "subject": {**verdict["subject"], "model": "sim/echo-1-alias"}},
            extra='[models]\n"sim/echo-1-alias" = ["sim/echo-1"]\n',
        ),
        source="alias.toml",
    )
    v = offline.verdict(aliased, policy)
    assert statuses(v)["model.binding"] == ("pass", None), statuses(v)
    assert set(v.subject.model_binding["by"]) == {"app_id_pin", "signed_text", "attestation"}
    without_alias = offline.verdict(
        aliased,
        parse_policy(
            pins_policy({**verdict, "subject": {**verdict["subject"], "model": "sim/echo-1-alias"}}),
            source="no-alias.toml",
        ),
    )
    assert statuses(without_alias)["report.signer"] == ("fail", "model_mismatch")


# ------------------------------------------------------------------ foundations block what rests on them


def test_a_missing_or_garbled_report_blocks_nonce_fresh_instead_of_passing_it(offline: Offline, phala: Any) -> None:
    _, bundle, policy = phala
    for report in (None, b"<html>502</html>", b'{"intel_quote": 5}'):
        v = offline.verdict(replace(bundle, report=report), policy)
        checks = statuses(v)
        assert checks["nonce.fresh"] == ("skipped", "blocked"), (report, checks)
        assert all(checks[c][0] != "pass" for c in checks if c.startswith(("tdx.", "gpu."))), (report, checks)


def test_a_failed_quote_blocks_every_check_over_its_bytes(offline: Offline, phala: Any) -> None:
    _, bundle, policy = phala
    v = offline.verdict(_mutate(bundle, "quote", 2 * 48 + 5), policy)  # inside the TD report body
    checks = statuses(v)
    assert checks["tdx.quote"][0] == "fail"
    for cid in (
        "tdx.tcb",
        "tdx.binds_signer",
        "tdx.binds_nonce",
        "tdx.event_log",
        "tdx.app",
        "tdx.measurements",
        "tdx.debug",
        "tdx.os_image",
    ):
        assert checks[cid] == ("skipped", "blocked"), cid


# ------------------------------------------------------------------ caps and the event loop


def test_a_report_over_the_attestation_cap_is_malformed_evidence(offline: Offline, phala: Any) -> None:
    _, bundle, policy = phala
    report = json.loads(bundle.report or b"")
    report["all_attestations"] = [dict(report, signing_address="0x" + f"{n:040x}") for n in range(17)]
    checks = statuses(offline.verdict(replace(bundle, report=json.dumps(report).encode()), policy))
    assert checks["report.signer"] == ("fail", "malformed_evidence")


def test_an_attestation_over_the_gpu_cap_is_malformed_evidence(offline: Offline, phala: Any) -> None:
    verdict, bundle, _ = phala
    policy = parse_policy(pins_policy(verdict, extra="[gpu]\nmax_per_attestation = 1\n"), source="cap.toml")
    report = json.loads(bundle.report or b"")
    payload = json.loads(report["nvidia_payload"])
    payload["evidence_list"] = payload["evidence_list"] * 2
    for e in (report, *report["all_attestations"]):
        e["nvidia_payload"] = json.dumps(payload)
    v = offline.verdict(replace(bundle, report=json.dumps(report).encode()), policy)
    checks = statuses(v)
    assert checks["gpu.evidence"] == ("fail", "malformed_evidence") and "gpu.max_per_attestation = 1" in next(
        c.message for c in v.checks if c.id == "gpu.evidence"
    )


def test_gpu_and_nras_crypto_run_off_the_event_loop_thread(
    offline: Offline, phala: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, bundle, policy = phala
    threads: list[str] = []
    real_gpu, real_nras = gpu_stage.verify_gpu, gpu_stage.verify_nras_response

    def spy_gpu(*a: Any, **k: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real_gpu(*a, **k)

    def spy_nras(*a: Any, **k: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real_nras(*a, **k)

    monkeypatch.setattr(gpu_stage, "verify_gpu", spy_gpu)
    monkeypatch.setattr(gpu_stage, "verify_nras_response", spy_nras)
    assert str(offline.verdict(bundle, policy).status) == "pass"
    assert len(threads) == 2 and threading.main_thread().name not in threads


# ------------------------------------------------------------------ dstack's GPU boot events


GPU_BOOT_REQUIRED = '[checks]\n"tdx.gpu_boot" = "required"\n'


def test_gpu_boot_events_pass_and_change_the_gpu_cpu_note_honestly(offline: Offline, tmp_path: Path) -> None:
    verdict, bundle = record(tmp_path, gpu_count=2, simulator={"dstack_gpu_events": True})
    v = offline.verdict(bundle, parse_policy(pins_policy(verdict, extra=GPU_BOOT_REQUIRED), source="boot.toml"))
    assert str(v.status) == "pass", statuses(v)
    assert statuses(v)["tdx.gpu_boot"] == ("pass", None)
    note = next(n for n in v.notes if n["code"] == "gpu_attached_at_boot")["message"]
    assert note.startswith("attached at boot") and "not bound to the TD" in note
    assert "gpu_cpu_binding_not_proven" not in {n["code"] for n in v.notes}


def test_a_policy_requiring_gpu_boot_events_is_not_satisfied_by_an_older_dstack_log(
    offline: Offline, phala: Any
) -> None:
    verdict, bundle, _ = phala
    v = offline.verdict(bundle, parse_policy(pins_policy(verdict, extra=GPU_BOOT_REQUIRED), source="boot.toml"))
    assert statuses(v)["tdx.gpu_boot"] == ("indeterminate", "not_applicable") and str(v.status) == "indeterminate"
    assert "gpu_cpu_binding_not_proven" in {n["code"] for n in v.notes}


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("gpu_cc_mode_off", "gpu_boot_cc_mode_off"),
        ("gpu_devtools_on", "gpu_boot_devtools_on"),
        ("gpu_devices_wrong", "gpu_boot_devices_mismatch"),
    ],
)
def test_each_gpu_boot_rule_has_its_failure(offline: Offline, tmp_path: Path, attack: str, reason: str) -> None:
    verdict, bundle = record(
        tmp_path, gpu_count=2, simulator={"dstack_gpu_events": True, "event_log_attacks": frozenset({attack})}
    )
    v = offline.verdict(bundle, parse_policy(pins_policy(verdict, extra=GPU_BOOT_REQUIRED), source="boot.toml"))
    assert statuses(v)["tdx.gpu_boot"] == ("fail", reason) and str(v.status) == "fail"
