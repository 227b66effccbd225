"""`verifier verify-bundle` on bundles of real recorded evidence, at their capture time and at today's.

Each test runs the real CLI (dcap-qvl in its worker, the production trust anchors) and checks the
verdict's status, the checks that matter, and the exit code (0 pass, 2 fail, 3 indeterminate).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fixture_bundles import ALL, CHUTES_AT, NEAR_AT, PHALA_FLAT_AT, phala_flat

from verifier.cli import main
from verifier.evidence.bundle import Bundle

TODAY = 1_796_083_200  # 2026-12-01T00:00:00Z: every recorded fixture is expired by now
EXIT = {"pass": 0, "fail": 2, "indeterminate": 3}
FIXTURE_REFS = str(Path(__file__).parent / "refs" / "fixtures.toml")  # the recorded fixtures' identities, pinned


def write(tmp_path: Path, bundle: Bundle, name: str = "bundle") -> Path:
    root = tmp_path / name
    for rel, body in bundle.files().items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    return root


def run(path: Path, *args: str) -> tuple[dict[str, Any], dict[str, tuple[str, str | None]], int]:
    result = CliRunner().invoke(main, ["verify-bundle", str(path), "--json", *args])
    verdict = json.loads(result.output)
    assert result.exit_code == EXIT[verdict["status"]], result.output[-2000:]
    return verdict, {c["id"]: (c["status"], c["reason"]) for c in verdict["checks"]}, result.exit_code


def verify(tmp_path: Path, name: str, at: int, *args: str) -> tuple[dict[str, Any], dict[str, tuple[str, str | None]]]:
    verdict, checks, _ = run(write(tmp_path, ALL[name](), name), "--at", str(at), *args)
    return verdict, checks


HARDWARE_PASS = (
    "tdx.quote",
    "tdx.tcb",
    "tdx.binds_signer",
    "tdx.binds_nonce",
    "tdx.event_log",
    "tdx.app",
    "tdx.debug",
    "tdx.measurements",
    "gpu.nonce",
    "gpu.evidence",
)


def test_phala_flat_report_at_capture_time_passes_every_hardware_check(tmp_path: Path) -> None:
    verdict, checks = verify(tmp_path, "phala-flat", PHALA_FLAT_AT, "--refs", FIXTURE_REFS)
    assert {cid: checks[cid] for cid in HARDWARE_PASS} == {cid: ("pass", None) for cid in HARDWARE_PASS}
    assert checks["report.signer"] == ("pass", None)
    assert checks["gpu.nras"] == ("pass", None)
    # the client's nonce was supplied, not minted by us: freshness is not proven, so never a pass
    assert checks["nonce.fresh"] == ("indeterminate", "nonce_not_minted")
    assert verdict["status"] == "indeterminate"
    assert checks["signature.valid"] == ("skipped", "not_in_bundle")
    assert verdict["collateral"] and verdict["collateral"][0]["fmspc"].upper() == "90C06F000000"
    assert verdict["claims"]["tdx"]["$"]["dcap"]["status"] == "UpToDate"
    assert {n["code"] for n in verdict["notes"]} == {"gpu_cpu_binding_not_proven"}
    assert verdict["trust_profile"] == "production" and verdict["simulator"] is False


def test_phala_flat_report_today_fails_tdx_quote_on_expired_collateral(tmp_path: Path) -> None:
    verdict, checks = verify(tmp_path, "phala-flat", TODAY)
    assert verdict["status"] == "fail"
    status, reason = checks["tdx.quote"]
    assert status == "fail" and reason in ("collateral_expired", "crl_expired")
    assert checks["tdx.tcb"] == ("skipped", "blocked")
    assert checks["gpu.nras"][1] == "nras_token_expired"


def test_near_two_layer_model_attestation_passes_eight_gpus_with_recorded_nras(tmp_path: Path) -> None:
    verdict, checks = verify(tmp_path, "near-two-layer-model", NEAR_AT, "--refs", FIXTURE_REFS)
    assert {cid: checks[cid] for cid in HARDWARE_PASS} == {cid: ("pass", None) for cid in HARDWARE_PASS}
    assert checks["gpu.nras"] == ("pass", None)
    assert len(verdict["claims"]["gpus"]) == 8
    assert verdict["attestation"] == {
        "format": "near_two_layer",
        "paths": ["$.model_attestations[0]"],
        "hops": [],
        "origin": "recorded",
        "fetched_at": None,
        "reused_from": None,
        "age_s": None,
    }


def test_near_gateway_ed25519_signature_is_verified_with_its_model_hop(tmp_path: Path) -> None:
    verdict, checks = verify(tmp_path, "near-two-layer-gateway", NEAR_AT, "--refs", FIXTURE_REFS)
    assert checks["signature.valid"] == ("pass", None)
    assert verdict["attestation"]["paths"] == ["$.gateway_attestation"]
    # the gateway CVM is CPU-only: the model attestation for the requested model in the same report carries the GPUs
    assert verdict["attestation"]["hops"] == ["$.model_attestations[0]"]
    passed = (
        "tdx.quote",
        "tdx.binds_signer",
        "tdx.binds_nonce",
        "tdx.event_log",
        "tdx.debug",
        "tdx.app",
        "tdx.measurements",
        "gpu.evidence",
        "gpu.nonce",
        "gpu.nras",
        "model.binding",
        "report.signer",
    )
    assert {cid: checks[cid] for cid in passed} == dict.fromkeys(passed, ("pass", None))
    assert len(verdict["claims"]["gpus"]) == 8
    assert set(verdict["claims"]["tdx"]) == {"$.gateway_attestation", "$.model_attestations[0]"}
    note = next(n["message"] for n in verdict["notes"] if n["code"] == "served_behind_gateway")
    assert "vouches for the gateway→model hop" in note


def test_a_policy_can_forbid_the_gateway_hop(tmp_path: Path) -> None:
    policy = tmp_path / "no-hop.toml"
    policy.write_text('[policy]\nid = "no-hop"\n[attestation]\nallow_gateway_hop = false\n')
    verdict, checks = verify(tmp_path, "near-two-layer-gateway", NEAR_AT, "--policy", str(policy))
    assert verdict["attestation"]["hops"] == []
    assert checks["gpu.evidence"] == ("indeterminate", "no_gpu_evidence")
    assert verdict["status"] != "pass"


def test_redpill_chutes_report_fails_gpu_nras_with_nonce_not_matching(tmp_path: Path) -> None:
    verdict, checks = verify(tmp_path, "chutes", CHUTES_AT)
    assert verdict["status"] == "fail"
    assert checks["gpu.nras"][0:2] == ("fail", "nras_result_false")
    message = next(c["message"] for c in verdict["checks"] if c["id"] == "gpu.nras")
    assert "NONCE_NOT_MATCHING" in message
    # the gateway substituted its own nonce for the client's (docs/protocol.md §3.4)
    assert checks["tdx.binds_nonce"] == ("fail", "nonce_mismatch")
    assert checks["report.signer"] == ("indeterminate", "not_applicable")
    assert checks["tdx.quote"] == ("pass", None)


def test_phala_2026_03_payload_fails_gpu_nonce_against_the_clients_nonce(tmp_path: Path) -> None:
    verdict, checks = verify(tmp_path, "phala-1gpu-20260325", PHALA_FLAT_AT)
    assert verdict["status"] == "fail"
    assert checks["gpu.nonce"] == ("fail", "gpu_nonce_mismatch")
    assert checks["tdx.binds_nonce"] == ("fail", "nonce_mismatch")
    assert checks["gpu.evidence"] == ("pass", None)


@pytest.mark.parametrize("name", ["substituted-nonce-gpt-oss-120b", "substituted-nonce-qwen3.5-27b"])
def test_reports_binding_a_substituted_nonce_fail_binds_nonce(tmp_path: Path, name: str) -> None:
    verdict, checks = verify(tmp_path, name, PHALA_FLAT_AT)
    assert verdict["status"] == "fail"
    assert checks["tdx.binds_nonce"] == ("fail", "nonce_mismatch")
    assert checks["tdx.binds_signer"] == ("pass", None)


def test_a_reserialized_response_fails_its_hashes_while_the_signature_stays_valid(tmp_path: Path) -> None:
    verdict, checks = verify(tmp_path, "signature-negative-reserialized-phala-llama-2part-20250819", PHALA_FLAT_AT)
    assert verdict["status"] == "fail"
    assert checks["request.hash"] == ("fail", "hash_mismatch")
    assert checks["response.hash"] == ("fail", "hash_mismatch")
    assert checks["signature.valid"] == ("pass", None)
    assert checks["report.signer"] == ("skipped", "not_in_bundle")


@pytest.mark.parametrize(
    "name",
    ["signature-near-direct-qwen35-3part-stream-20260602", "signature-near-gateway-deepseek-2part-stream-20251203"],
)
def test_recorded_exact_bytes_and_signature_pass_the_signature_checks(tmp_path: Path, name: str) -> None:
    verdict, checks = verify(tmp_path, name, PHALA_FLAT_AT)
    assert [checks[c] for c in ("request.hash", "response.hash", "signature.valid")] == [("pass", None)] * 3
    assert verdict["status"] == "indeterminate"  # no report in the bundle: hardware not shown, never a pass


def test_a_valid_signature_of_key_a_with_a_genuine_report_of_key_b_fails_report_signer(tmp_path: Path) -> None:
    # a failure seen in other verifiers (#5)
    sig = ALL["signature-near-gateway-deepseek-2part-stream-20251203"]()
    mixed = Bundle(
        meta=phala_flat().meta,
        request=sig.request,
        response=sig.response,
        signature=sig.signature,
        report=phala_flat().report,
        collateral=phala_flat().collateral,
        nras=phala_flat().nras,
    )
    verdict, checks, code = run(write(tmp_path, mixed), "--at", str(PHALA_FLAT_AT))
    assert (verdict["status"], code) == ("fail", 2)
    assert checks["signature.valid"] == ("pass", None)
    assert checks["report.signer"] == ("fail", "signer_not_attested")
    assert checks["tdx.quote"] == ("skipped", "blocked")


def test_an_nras_token_resigned_with_another_key_fails_gpu_nras(tmp_path: Path) -> None:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    bundle = phala_flat()
    body = json.loads(bundle.nras["response.json"])
    header = jwt.get_unverified_header(body[0][1])
    claims = jwt.decode(body[0][1], options={"verify_signature": False})
    body[0][1] = jwt.encode(
        claims, ec.generate_private_key(ec.SECP384R1()), algorithm="ES384", headers={"kid": header["kid"]}
    )
    forged = Bundle(
        meta=bundle.meta,
        report=bundle.report,
        collateral=bundle.collateral,
        nras={**bundle.nras, "response.json": json.dumps(body).encode()},
    )
    verdict, checks, _ = run(write(tmp_path, forged), "--at", str(PHALA_FLAT_AT))
    assert checks["gpu.nras"] == ("fail", "nras_token_invalid")
    assert verdict["status"] == "fail"


def test_a_quote_with_a_flipped_report_byte_fails_tdx_quote(tmp_path: Path) -> None:
    bundle = phala_flat()
    doc = json.loads(bundle.report or b"")
    q = doc["intel_quote"]
    i = 2 * (48 + 136)  # MRTD's first byte (docs/dcap.md §4.1)
    doc["intel_quote"] = q[:i] + ("0" if q[i] != "0" else "1") + q[i + 1 :]
    doc.pop("all_attestations")
    doc.pop("quote")
    tampered = Bundle(meta=bundle.meta, report=json.dumps(doc).encode(), collateral=bundle.collateral, nras=bundle.nras)
    verdict, checks, _ = run(write(tmp_path, tampered), "--at", str(PHALA_FLAT_AT))
    assert checks["tdx.quote"] == ("fail", "quote_signature_invalid")
    # MRTD is not in the event log: only the quote signature catches it, and nothing is judged on an unverified quote
    blocked = {
        cid: checks[cid]
        for cid in (
            "tdx.tcb",
            "tdx.binds_signer",
            "tdx.binds_nonce",
            "tdx.event_log",
            "tdx.app",
            "tdx.measurements",
            "tdx.debug",
        )
    }
    assert blocked == dict.fromkeys(blocked, ("skipped", "blocked"))
    assert verdict["status"] == "fail"


def test_a_zip_bundle_gives_the_same_verdict_as_its_directory(tmp_path: Path) -> None:
    zipped = tmp_path / "phala.zip"
    zipped.write_bytes(phala_flat().to_zip())
    from_zip = run(zipped, "--at", str(PHALA_FLAT_AT))[1]
    from_dir = run(write(tmp_path, phala_flat()), "--at", str(PHALA_FLAT_AT))[1]
    assert from_zip == from_dir


def test_an_unreadable_bundle_is_a_usage_error_naming_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "meta.json").write_text('{"nonce": "xyz"}')
    result = CliRunner().invoke(main, ["verify-bundle", str(bad)])
    assert result.exit_code != 0
    assert "nonce" in result.output and "64 hex" in result.output


PHALA_APP_ID = "c078255bb2090494df2566fe376139b618059b80"  # RTMR3 app-id of the Phala flat fixture (expected.json)


def _with_model(bundle: Bundle, model: str | None) -> Bundle:
    meta = json.loads(bundle.files()["meta.json"])
    meta["model"] = model
    return Bundle(
        meta=type(bundle.meta).from_json(meta), report=bundle.report, collateral=bundle.collateral, nras=bundle.nras
    )


@pytest.mark.parametrize(
    ("model", "want"),
    [
        ("TEE/gemma-3-27b-it", ("pass", None)),
        ("tee/GEMMA-3-27B-IT", ("pass", None)),  # models compare case-insensitively everywhere
        ("TEE/other-model", ("fail", "app_id_not_allowed")),  # a model the policy does not name is not allowed
        (None, ("fail", "app_id_not_allowed")),  # nor is an unknown model
    ],
)
def test_app_id_allow_lists_fail_closed_for_models_they_do_not_name(
    tmp_path: Path, model: str | None, want: tuple[str, str | None]
) -> None:
    policy = tmp_path / "apps.toml"
    policy.write_text(f'[policy]\nid = "apps"\n[tdx.app_ids]\n"TEE/gemma-3-27b-it" = ["{PHALA_APP_ID}"]\n')
    _, checks, _ = run(
        write(tmp_path, _with_model(phala_flat(), model)), "--at", str(PHALA_FLAT_AT), "--policy", str(policy)
    )
    assert checks["tdx.app"] == want


def test_every_attestation_of_the_signer_must_carry_its_gpu_evidence(tmp_path: Path) -> None:
    bundle = phala_flat()
    doc = json.loads(bundle.report or b"")
    copy = dict(doc["all_attestations"][0])
    del copy["nvidia_payload"]
    doc["all_attestations"].append(copy)  # same quote, no GPUs: not vouched for by the other copy's GPUs
    partial = Bundle(meta=bundle.meta, report=json.dumps(doc).encode(), collateral=bundle.collateral, nras=bundle.nras)
    verdict, checks, _ = run(write(tmp_path, partial), "--at", str(PHALA_FLAT_AT))
    assert verdict["attestation"]["paths"] == ["$", "$.all_attestations[1]"]
    assert checks["gpu.evidence"] == ("indeterminate", "no_gpu_evidence")
    assert "$.all_attestations[1]" in next(c["message"] for c in verdict["checks"] if c["id"] == "gpu.evidence")


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ('{"captured_at": Infinity}', "captured_at"),
        ('{"captured_at": NaN}', "captured_at"),
        ('{"captured_at": 1e300}', "captured_at"),
    ],
)
def test_out_of_range_times_in_meta_json_are_usage_errors(tmp_path: Path, meta: str, needle: str) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "meta.json").write_text(meta)
    result = CliRunner().invoke(main, ["verify-bundle", str(tmp_path / "b")])
    assert result.exit_code == 1 and needle in result.output, result.output


def test_an_encrypted_or_unsupported_zip_is_a_usage_error(tmp_path: Path) -> None:
    good = phala_flat().to_zip()
    # set the "encrypted" flag bit in every local and central directory header
    raw = bytearray(good)
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = raw.find(sig)
        while i != -1:
            raw[i + off] |= 1
            i = raw.find(sig, i + 4)
    bad = tmp_path / "enc.zip"
    bad.write_bytes(bytes(raw))
    result = CliRunner().invoke(main, ["verify-bundle", str(bad)])
    assert result.exit_code == 1 and "not a readable zip bundle" in result.output, result.output


def test_verification_times_beyond_the_range_are_usage_errors_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from verifier.cli import run as console_entry

    monkeypatch.setattr(
        "sys.argv", ["verifier", "verify-bundle", str(write(tmp_path, phala_flat())), "--at", str(2**63)]
    )
    with pytest.raises(SystemExit) as exc:
        console_entry()
    assert exc.value.code == 1  # never 2: that would read as a `fail` verdict
    assert "--at" in capsys.readouterr().err


def test_a_gpu_policy_violation_fails_gpu_evidence_and_blocks_what_rests_on_it(tmp_path: Path) -> None:
    policy = tmp_path / "drivers.toml"
    policy.write_text('[policy]\nid = "drivers"\n[gpu]\nmin_driver = "999.0"\n')
    verdict, checks, _ = run(write(tmp_path, phala_flat()), "--at", str(PHALA_FLAT_AT), "--policy", str(policy))
    assert checks["gpu.evidence"] == ("fail", "gpu_driver_not_allowed")
    assert checks["gpu.nras"] == checks["gpu.nonce"] == ("skipped", "blocked")
    assert verdict["status"] == "fail"


def test_the_real_near_gateway_signed_response_fails_nothing_with_its_hop_and_pinned_identities(tmp_path: Path) -> None:
    verdict, checks = verify(tmp_path, "near-two-layer-gateway", NEAR_AT, "--refs", FIXTURE_REFS)
    # all that keeps it from a pass is what the recording lacks: the exchanged bytes, and a nonce minted by us
    assert {k: v for k, v in checks.items() if v[0] != "pass"} == {
        "request.hash": ("skipped", "not_in_bundle"),
        "response.hash": ("skipped", "not_in_bundle"),
        "nonce.fresh": ("indeterminate", "nonce_not_minted"),
        "tdx.gpu_boot": ("indeterminate", "not_applicable"),
        # advisory: no reviewed reference value says whether the fixture's OS image is a production image
        "tdx.os_image": ("indeterminate", "not_applicable"),
        # advisory: the recording holds no live peer observation (tls.json), so the TLS channel is never bound
        "tls.binds_peer": ("skipped", "not_in_bundle"),
    }
    assert "app_id_pin" in verdict["subject"]["model_binding"]["by"]


def test_the_real_fixtures_without_refs_name_what_is_not_pinned(tmp_path: Path) -> None:
    verdict, checks = verify(tmp_path, "near-two-layer-model", NEAR_AT)
    assert checks["tdx.app"] == ("indeterminate", "identity_not_pinned")
    assert checks["tdx.measurements"] == ("indeterminate", "identity_not_pinned")
    assert verdict["status"] == "indeterminate" and verdict["trust_vector"]["executables"]["tier"] == "none"


def test_every_real_fixture_keeps_its_hardware_verdict_under_the_strict_event_log_rules(tmp_path: Path) -> None:
    for name, at in (
        ("phala-flat", PHALA_FLAT_AT),
        ("near-two-layer-model", NEAR_AT),
        ("near-two-layer-gateway", NEAR_AT),
    ):
        _, checks = verify(tmp_path / name, name, at, "--refs", FIXTURE_REFS)
        assert checks["tdx.event_log"] == checks["tdx.app"] == ("pass", None), name
