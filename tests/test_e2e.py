"""End to end through HTTP: simulated gateway + the real service (dcap-qvl workers, PCCS, NRAS, SQLite).

The positive path passes every required check with a fresh nonce, for each report format and both
signing algorithms; each fault knob gives its failing check or its `indeterminate` reason; nothing
in the fault table ever becomes `pass`; concurrent verifications never share a nonce.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from verifier.demo import DemoResult, run_demo
from verifier.simulator.gateway import FAULTS, SimulatorConfig

NOW = 1_790_000_000  # 2026-09-21: pinned verification time for the simulator and the service


def clock() -> float:
    return float(NOW)


def checks(result: DemoResult) -> dict[str, tuple[str, str | None]]:
    return {c["id"]: (c["status"], c["reason"]) for c in result.verdict["checks"]}


async def verify(
    tmp_path: Path,
    *,
    faults: tuple[str, ...] = (),
    report_format: str = "phala_flat",
    algo: str = "ecdsa",
    stream: bool = True,
    rounds: int = 1,
    **settings: object,
) -> list[DemoResult]:
    config = SimulatorConfig(
        report_format=report_format,
        faults=frozenset(faults),
        clock=clock,
        hang_seconds=3.0,
        three_part_text=report_format == "near_two_layer",
    )
    return await run_demo(config=config, signing_algo=algo, stream=stream, db_dir=tmp_path, rounds=rounds, **settings)


@pytest.mark.parametrize("report_format", ["phala_flat", "near_two_layer", "aci_legacy"])
@pytest.mark.parametrize("algo", ["ecdsa", "ed25519"])
async def test_fresh_nonce_verification_passes_every_required_check(
    tmp_path: Path, report_format: str, algo: str
) -> None:
    (result,) = await verify(tmp_path, report_format=report_format, algo=algo)
    assert result.http_status == 201
    verdict = result.verdict
    not_passed = {cid: sr for cid, sr in checks(result).items() if sr[0] != "pass"}
    # every required check passes against the shipped simulator refs; the advisory GPU-boot check has nothing to judge,
    # and over plain http the advisory TLS channel binding has no peer to bind (tests/test_tls_binding.py: over TLS)
    assert not_passed == {
        "tdx.gpu_boot": ("indeterminate", "not_applicable"),
        "tls.binds_peer": ("skipped", "no_tls"),
    }
    assert verdict["subject"]["tls_binding"] == {
        "bound": False,
        "connection": None,
        "observed": None,
        "reason": "no_tls",
    }
    assert verdict["status"] == "pass"
    assert verdict["refs"]["id"] == "simulator" and "app_id_pin" in verdict["subject"]["model_binding"]["by"]
    assert verdict["trust_profile"] == "simulator" and verdict["simulator"] is True
    assert verdict["nonce"]["origin"] == "minted"
    assert result.gateway.requests_seen[0]["nonce"] == verdict["nonce"]["value"]
    assert {n["code"] for n in verdict["notes"]} >= {"gpu_cpu_binding_not_proven"}
    if report_format == "aci_legacy":
        assert "gpu_evidence_remote" in {n["code"] for n in verdict["notes"]}


async def test_non_streamed_completion_passes(tmp_path: Path) -> None:
    (result,) = await verify(tmp_path, stream=False)
    assert result.verdict["status"] == "pass"


FAULT_TABLE = [
    # fault, verdict status, check id, reason
    ("substituted_nonce", "fail", "tdx.binds_nonce", "nonce_mismatch"),
    ("signature_other_text", "fail", "signature.valid", "signer_mismatch"),
    ("wrong_signer", "fail", "report.signer", "signer_not_attested"),
    ("debug_td", "fail", "tdx.quote", "debug_td"),  # dcap-qvl itself refuses a debug TD's quote
    ("expired_collateral", "fail", "tdx.quote", "collateral_expired"),
    ("gpu_nonce_mismatch", "fail", "gpu.nonce", "gpu_nonce_mismatch"),
    ("nras_failure", "fail", "gpu.nras", "nras_result_false"),
    ("report_5xx", "indeterminate", "report.signer", "upstream_unavailable"),
    ("report_429", "indeterminate", "report.signer", "upstream_rate_limited"),
    ("report_timeout", "indeterminate", "report.signer", "upstream_timeout"),
    ("report_slow_body", "indeterminate", "report.signer", "upstream_timeout"),
    ("report_garbled", "indeterminate", "report.signer", "upstream_garbled"),
    ("signature_expired", "indeterminate", "signature.valid", "signature_unavailable"),
    ("fallback_model", "fail", "model.served", "model_fallback"),
]


@pytest.mark.parametrize(("fault", "status", "check_id", "reason"), FAULT_TABLE, ids=[row[0] for row in FAULT_TABLE])
async def test_fault_knob_gives_its_check_and_reason(
    tmp_path: Path, fault: str, status: str, check_id: str, reason: str
) -> None:
    (result,) = await verify(tmp_path, faults=(fault,), upstream_timeout=1.0, signature_deadline=0.3)
    assert result.http_status == 201
    assert result.verdict["status"] == status
    assert checks(result)[check_id] == ("fail" if status == "fail" else "indeterminate", reason)


def test_every_fault_knob_is_in_the_table() -> None:
    # the model-substitution faults need 3-part texts / NEAR reports: tests/test_integrity.py; the TLS faults need the
    # simulator served over TLS: tests/test_tls_binding.py
    tested = {row[0] for row in FAULT_TABLE} | {
        "reserialized_response",
        "replayed_report",
        "signed_other_model",
        "attested_other_model",
        "tls_other_replica",
        "tls_wrong_fingerprint",
    }
    assert tested == set(FAULTS)


async def test_reserialized_response_is_never_a_byte_exact_match(tmp_path: Path) -> None:
    (result,) = await verify(tmp_path, faults=("reserialized_response",), stream=False)
    assert result.verdict["status"] == "indeterminate"
    assert checks(result)["response.hash"] == ("indeterminate", "hash_match_reserialized")
    assert checks(result)["request.hash"] == ("pass", None)


async def test_a_replaying_gateway_fails_binds_nonce_on_the_second_verification(tmp_path: Path) -> None:
    first, second = await verify(tmp_path, faults=("replayed_report",), rounds=2)
    statuses = sorted(r.verdict["status"] for r in (first, second))
    assert statuses == ["fail", "pass"]
    replayed = first if first.verdict["status"] == "fail" else second
    assert checks(replayed)["tdx.binds_nonce"] == ("fail", "nonce_mismatch")


async def test_concurrent_verifications_never_share_a_nonce(tmp_path: Path) -> None:
    results = await verify(tmp_path, rounds=6)
    nonces = [r.verdict["nonce"]["value"] for r in results]
    assert len(set(nonces)) == 6
    assert {r.gateway.requests_seen[i]["nonce"] for i, r in enumerate(results)} == set(nonces)
    assert all(r.verdict["status"] == "pass" for r in results)
    assert len({r.verdict["id"] for r in results}) == 6
