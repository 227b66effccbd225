"""Each check's rule called directly on typed facts: a positive and a named negative per rule.

The facts are gathered once (stages 1-4 of the engine, dcap-qvl in its worker) from a bundle the simulator
service recorded; each test changes only what its rule reads (the policy, the refs, the bundle's meta) and calls
the appraisal function itself.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sim_bundle import NOW, Offline, pins_policy, record

from verifier.appraise.checks import gpu, identity, report, signature, tdx
from verifier.appraise.policy import parse_policy
from verifier.appraise.refs import parse_refs
from verifier.appraise.registry import Appraisal, Passed
from verifier.appraise.tcb import appraise_tcb
from verifier.appraise.trust_vector import trust_vector
from verifier.core.errors import CheckFailed, Indeterminate, VerifierError
from verifier.core.model import CheckResult, NonceOrigin, Severity, Status
from verifier.core.ports import DcapResult
from verifier.engine.context import Context
from verifier.engine.evaluate import gather
from verifier.simulator import simulator_anchors
from verifier.verify.results import Facts


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, offline: Offline) -> tuple[dict[str, Any], Facts]:
    verdict, bundle = record(tmp_path_factory.mktemp("rules"))
    ctx = Context(policy=parse_policy(b"", source="d"), now=NOW, anchors=simulator_anchors(), quotes=offline.pool)
    facts, _ = offline.loop.run_until_complete(gather(bundle, ctx))
    return verdict, facts


def judge(fn: Any, facts: Facts, policy: bytes = b"", refs: Any = None) -> Passed:
    return fn(facts, Appraisal(policy=parse_policy(policy, source="t.toml"), refs=refs))


def reason(fn: Any, facts: Facts, policy: bytes = b"", refs: Any = None) -> str:
    with pytest.raises(VerifierError) as exc:
        judge(fn, facts, policy, refs)
    return exc.value.reason


def with_meta(facts: Facts, **meta: Any) -> Facts:
    return replace(facts, bundle=replace(facts.bundle, meta=replace(facts.bundle.meta, **meta)))


def test_signature_and_exact_byte_hashes(recorded: Any) -> None:
    _, f = recorded
    assert judge(signature.signature_valid, f).details["signing_algo"] == "ecdsa"
    assert "exact bytes" in judge(signature.response_hash, f).message
    tampered = replace(f, signature=replace(f.signature, response=f.signature.response + b" "))
    assert reason(signature.response_hash, tampered) == "hash_mismatch"
    kept = replace(f, signature=replace(f.signature, request=None, retained_hashes={"request": "00" * 32}))
    assert reason(signature.request_hash, kept) == "hash_mismatch"  # a stored hash is judged like the bytes


def test_model_binding_accepts_aliases_and_refuses_substitutes(recorded: Any) -> None:
    _, f = recorded
    assert judge(report.model_binding, f).details == {"stated": []}  # a flat report and a 2-part text name none
    sel = f.selection
    att = sel.candidates[0]
    attested = replace(f, selection=replace(sel, candidates=(replace(att, model_name="cheap/llama-8b"),)))
    assert reason(report.model_binding, attested) == "model_mismatch"
    aliased = replace(attested, selection=replace(attested.selection, names=sel.names | {"cheap/llama-8b"}))
    assert judge(report.model_binding, aliased).details["stated"][0]["model"] == "cheap/llama-8b"


def test_nonce_fresh_needs_our_nonce_and_a_reuse_inside_the_window(recorded: Any) -> None:
    _, f = recorded
    assert "minted by this verifier" in judge(report.nonce_fresh, f).message
    assert reason(report.nonce_fresh, with_meta(f, nonce_origin=NonceOrigin.SUPPLIED)) == "nonce_not_minted"
    reused = with_meta(f, reused_from="v_x", report_fetched_at=NOW - 100, captured_at=NOW)
    assert reason(report.nonce_fresh, reused) == "reused_attestation"  # the default window is 0
    assert judge(report.nonce_fresh, reused, b"[attestation]\nmax_attestation_age = 100\n")


def test_tdx_bindings_and_debug(recorded: Any) -> None:
    _, f = recorded
    assert "padded_address" in judge(tdx.tdx_binds_signer, f).message
    assert judge(tdx.tdx_binds_nonce, f)
    assert reason(tdx.tdx_binds_nonce, with_meta(f, nonce=b"\x01" * 32)) == "nonce_mismatch"
    other = replace(f, selection=replace(f.selection, signer="0x" + "11" * 20))
    assert reason(tdx.tdx_binds_signer, other) == "report_data_signer_mismatch"
    assert "not a debug TD" in judge(tdx.tdx_debug, f).message


def test_the_tcb_rule_reports_every_failing_field() -> None:
    result = DcapResult(status="OutOfDate", advisory_ids=("INTEL-SA-00001",), tcb_eval_data_number=3, tcb_date=None)
    with pytest.raises(CheckFailed) as exc:
        appraise_tcb(
            result,
            None,
            now=NOW,
            allowed_statuses={"UpToDate"},
            advisory_allowlist=None,
            rejected_advisories={"INTEL-SA-00001"},
            min_tcb_eval_data_number=19,
            max_collateral_age=None,
        )
    assert exc.value.reason == "tcb_status_not_allowed"
    assert [x["reason"] for x in exc.value.details["failures"]] == [
        "tcb_status_not_allowed",
        "advisory_not_allowed",
        "tcb_eval_too_old",
    ]


def test_app_identity_pinned_for_the_model_unpinned_or_another_app(recorded: Any) -> None:
    verdict, f = recorded
    pinned = judge(identity.tdx_app, f, pins_policy(verdict))
    assert pinned.details == {"pinned": True, "model_pinned": True}
    assert reason(identity.tdx_app, f) == "identity_not_pinned"
    other = f'[tdx.app_ids]\n"sim/echo-1" = ["{"ab" * 20}"]\n'.encode()
    assert reason(identity.tdx_app, f, other) == "app_id_not_allowed"
    compose_only = f'[tdx]\nallowed_compose_hashes = ["{"cd" * 32}"]\n'.encode()
    assert reason(identity.tdx_app, f, compose_only) == "compose_hash_not_allowed"


def test_boot_chain_pinned_by_refs_or_not(recorded: Any) -> None:
    verdict, f = recorded
    q = next(iter(verdict["claims"]["tdx"].values()))

    def refs(mrtd: str) -> Any:
        return parse_refs(
            (
                f'[refs]\nid = "r"\n[[models."*".boot_chain]]\nmrtd = "{mrtd}"\nrtmr0 = "{q["rtmr0"]}"\n'
                f'rtmr1 = "{q["rtmr1"]}"\nrtmr2 = "{q["rtmr2"]}"\nsource = "manual"\nadded_at = 1\n'
            ).encode(),
            source="r.toml",
        )

    assert judge(identity.tdx_measurements, f, refs=refs(q["mr_td"])).details == {"pinned": True}
    assert reason(identity.tdx_measurements, f, refs=refs("ab" * 48)) == "boot_chain_not_allowed"
    assert reason(identity.tdx_measurements, f) == "identity_not_pinned"


def test_the_os_image_is_production_only_by_a_reviewed_reference(recorded: Any) -> None:
    _, f = recorded
    assert reason(identity.tdx_os_image, f) == "not_applicable"  # the report's own vm_config says nothing
    app = next(iter(f.tdx)).attestation
    dev = json.dumps({**json.loads(app.vm_config), "image": "dstack-nvidia-dev-0.5.8"})
    dev_facts = replace(f, tdx=tuple(replace(t, attestation=replace(t.attestation, vm_config=dev)) for t in f.tdx))
    assert reason(identity.tdx_os_image, dev_facts) == "dev_os_image"  # a claim may only make it worse


def test_gpu_count_is_per_attestation(recorded: Any) -> None:
    _, f = recorded
    assert "1 GPU(s)" in judge(gpu.gpu_evidence, f).message
    assert reason(gpu.gpu_evidence, f, b"[gpu]\nexpected_count = 2\n") == "gpu_count_mismatch"
    assert judge(gpu.gpu_nonce, f) and judge(gpu.gpu_nras, f)
    assert reason(gpu.gpu_nonce, with_meta(f, nonce=None)) == "no_nonce"


def test_a_check_without_a_selected_attestation_is_blocked_not_passed(recorded: Any) -> None:
    _, f = recorded
    none = replace(f, tdx=())
    for fn in (tdx.tdx_quote, tdx.tdx_binds_nonce, identity.tdx_app):
        assert reason(fn, none) == "blocked"


def _row(cid: str, status: Status, reason_: str | None = None, **details: Any) -> CheckResult:
    return CheckResult(cid, status, Severity.REQUIRED, reason_ if status is not Status.PASS else None, "", details)


def test_trust_vector_tiers_follow_the_checks() -> None:
    passing = [
        _row(c, Status.PASS)
        for c in (
            "tdx.quote",
            "tdx.tcb",
            "gpu.evidence",
            "gpu.nras",
            "signature.valid",
            "report.signer",
            "tdx.binds_signer",
            "tdx.debug",
            "tdx.event_log",
            "request.hash",
            "response.hash",
            "model.binding",
            "nonce.fresh",
            "tdx.binds_nonce",
            "gpu.nonce",
        )
    ]
    rows = [*passing, _row("tdx.app", Status.PASS, pinned=True), _row("tdx.measurements", Status.PASS, pinned=True)]
    assert {v["tier"] for v in trust_vector(rows).values()} == {"affirming"}
    unpinned = [
        r if r.id != "tdx.measurements" else _row("tdx.measurements", Status.INDETERMINATE, "identity_not_pinned")
        for r in rows
    ]
    assert trust_vector(unpinned)["executables"]["tier"] == "none"
    off = [r if r.id != "tdx.binds_signer" else _row("tdx.binds_signer", Status.SKIPPED, "policy_off") for r in rows]
    assert trust_vector(off)["instance-identity"]["tier"] == "none"
    failed = [r if r.id != "tdx.debug" else _row("tdx.debug", Status.FAIL, "debug_td") for r in rows]
    assert trust_vector(failed)["runtime-opaque"]["tier"] == "contraindicated"


def test_an_indeterminate_rule_is_never_mistaken_for_a_pass(recorded: Any, tmp_path: Path) -> None:
    _, f = recorded
    quoted = replace(
        f,
        tdx=tuple(
            replace(
                t, dcap=replace(t.dcap, value=None, error=Indeterminate("worker died", reason="dcap_worker_failed"))
            )
            for t in f.tdx
        ),
    )
    assert reason(tdx.tdx_quote, quoted) == "dcap_worker_failed"
