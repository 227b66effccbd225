"""The checklist: the one place raised errors become results; blocking derived from the registry; default-deny."""

from __future__ import annotations

from typing import Any, cast

import pytest

from verifier.appraise.catalog import CHECKS
from verifier.appraise.policy import default_policy, parse_policy
from verifier.appraise.registry import Appraisal, CheckSpec, Passed
from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate, Skip
from verifier.core.model import CheckResult, Severity, Status, aggregate
from verifier.engine.checklist import appraise
from verifier.verify.results import Facts

FACTS = cast(Facts, object())  # the fake appraisal functions below never read the facts


def spec(check_id: str, fn: Any, needs: tuple[str, ...] = ()) -> CheckSpec:
    return CheckSpec(check_id, check_id, Severity.REQUIRED, needs, (), False, fn)


def raising(exc: Exception) -> Any:
    def fn(f: Facts, a: Appraisal) -> Passed:
        raise exc

    return fn


def passing(f: Facts, a: Appraisal) -> Passed:
    return Passed("ok")


def run(specs: list[CheckSpec], policy_text: bytes = b"") -> dict[str, CheckResult]:
    policy = parse_policy(policy_text, source="t") if policy_text else default_policy()
    return {r.id: r for r in appraise(FACTS, Appraisal(policy=policy), specs)}


def test_raised_errors_map_to_fail_indeterminate_and_skipped() -> None:
    got = run(
        [
            spec(
                "request.hash",
                raising(CheckFailed("bad", reason="hash_mismatch", details={"expected": "a", "got": "b"})),
            ),
            spec("response.hash", raising(EvidenceError("garbled"))),
            spec("signature.valid", raising(Indeterminate("timeout", reason="upstream_timeout"))),
            spec("report.signer", raising(Skip("absent", reason="not_in_bundle"))),
        ]
    )
    assert {k: (r.status, r.reason) for k, r in got.items()} == {
        "request.hash": (Status.FAIL, "hash_mismatch"),
        "response.hash": (Status.FAIL, "malformed_evidence"),
        "signature.valid": (Status.INDETERMINATE, "upstream_timeout"),
        "report.signer": (Status.SKIPPED, "not_in_bundle"),
    }
    assert got["request.hash"].details == {"expected": "a", "got": "b"}


def test_a_bug_in_a_check_is_indeterminate_never_pass() -> None:
    got = run([spec("tdx.debug", raising(ZeroDivisionError()))])
    assert (got["tdx.debug"].status, got["tdx.debug"].reason) == (Status.INDETERMINATE, "internal_error")


@pytest.mark.parametrize(
    "foundation",
    [
        raising(CheckFailed("x", reason="quote_signature_invalid")),
        raising(Indeterminate("x", reason="collateral_unavailable")),
        raising(Skip("x", reason="not_in_bundle")),
    ],
)
def test_a_check_whose_foundation_did_not_pass_is_blocked_and_never_runs(foundation: Any) -> None:
    ran: list[str] = []

    def dependent(f: Facts, a: Appraisal) -> Passed:
        ran.append("ran")
        return Passed("would pass")

    got = run(
        [
            spec("tdx.quote", foundation),
            spec("tdx.binds_nonce", dependent, needs=("tdx.quote",)),
            spec("tdx.app", dependent, needs=("tdx.binds_nonce",)),
        ]
    )
    assert not ran
    assert (got["tdx.binds_nonce"].status, got["tdx.binds_nonce"].reason) == (Status.SKIPPED, "blocked")
    assert got["tdx.binds_nonce"].details == {"needs": ["tdx.quote"]}
    assert got["tdx.app"].reason == "blocked"  # transitively


def test_policy_off_checks_are_not_run_and_block_their_dependents() -> None:
    ran: list[str] = []

    def fn(f: Facts, a: Appraisal) -> Passed:
        ran.append("ran")
        return Passed()

    got = run(
        [spec("tdx.debug", fn), spec("tdx.tcb", fn, needs=("tdx.debug",))],
        b'[checks]\n"tdx.debug" = "off"\n"tdx.tcb" = "advisory"\n',
    )
    assert not ran
    assert got["tdx.debug"].reason == "policy_off" and got["tdx.tcb"].reason == "blocked"


def test_the_registry_declares_every_check_after_what_it_needs_and_the_real_walk_covers_all() -> None:
    seen: set[str] = set()
    for s in CHECKS:
        assert set(s.needs) <= seen, s.id
        seen.add(s.id)
    got = run([spec(s.id, passing, s.needs) for s in CHECKS])
    assert list(got) == [s.id for s in CHECKS] and all(r.status is Status.PASS for r in got.values())


def _r(cid: str, status: Status, sev: Severity = Severity.REQUIRED) -> CheckResult:
    return CheckResult(id=cid, status=status, severity=sev, reason=None if status is Status.PASS else "x")


def test_aggregate_fail_dominates_then_indeterminate_then_pass() -> None:
    assert aggregate([_r("a", Status.PASS), _r("b", Status.FAIL), _r("c", Status.INDETERMINATE)]) is Status.FAIL
    assert aggregate([_r("a", Status.PASS), _r("b", Status.SKIPPED)]) is Status.INDETERMINATE
    assert aggregate([_r("a", Status.PASS), _r("b", Status.FAIL, Severity.ADVISORY)]) is Status.PASS
    assert aggregate([]) is Status.INDETERMINATE


def test_a_non_pass_result_without_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        CheckResult(id="a", status=Status.FAIL, severity=Severity.REQUIRED)
