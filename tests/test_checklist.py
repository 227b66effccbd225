"""The checklist: the one place raised errors become results; default-deny aggregation."""

from __future__ import annotations

from verifier.appraise.policy import default_policy, parse_policy
from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate
from verifier.core.model import CheckResult, Severity, Status, aggregate
from verifier.engine.checklist import Checklist, Passed, Skip


async def test_raised_errors_map_to_fail_indeterminate_and_skipped() -> None:
    c = Checklist(default_policy())

    def failed() -> None:
        raise CheckFailed("bad", reason="hash_mismatch", details={"expected": "a", "got": "b"})

    def malformed() -> None:
        raise EvidenceError("garbled")

    def unknown() -> None:
        raise Indeterminate("timeout", reason="upstream_timeout")

    def skip() -> None:
        raise Skip("absent", reason="not_in_bundle")

    await c.run("request.hash", failed)
    await c.run("response.hash", malformed)
    await c.run("signature.valid", unknown)
    await c.run("report.signer", skip)
    got = {r.id: (r.status, r.reason) for r in c.results()}
    assert got["request.hash"] == (Status.FAIL, "hash_mismatch")
    assert got["response.hash"] == (Status.FAIL, "malformed_evidence")
    assert got["signature.valid"] == (Status.INDETERMINATE, "upstream_timeout")
    assert got["report.signer"] == (Status.SKIPPED, "not_in_bundle")


async def test_a_bug_in_a_check_is_indeterminate_never_pass() -> None:
    c = Checklist(default_policy())

    def buggy() -> None:
        raise ZeroDivisionError

    await c.run("tdx.debug", buggy)
    result = next(r for r in c.results() if r.id == "tdx.debug")
    assert (result.status, result.reason) == (Status.INDETERMINATE, "internal_error")


async def test_unreached_checks_are_indeterminate_and_dependents_are_blocked() -> None:
    c = Checklist(default_policy())
    await c.run("tdx.tcb", lambda: Passed(), needs=("tdx.quote",))
    results = {r.id: r for r in c.results()}
    assert results["tdx.tcb"].reason == "blocked"
    assert results["tdx.quote"].status is Status.INDETERMINATE


async def test_policy_off_checks_are_not_run() -> None:
    policy = parse_policy(b'[checks]\n"tdx.debug" = "off"\n', source="t")
    c = Checklist(policy)
    ran = []
    await c.run("tdx.debug", lambda: ran.append(1))
    assert not ran
    assert next(r for r in c.results() if r.id == "tdx.debug").reason == "policy_off"


def _r(cid: str, status: Status, sev: Severity = Severity.REQUIRED) -> CheckResult:
    return CheckResult(id=cid, status=status, severity=sev, reason=None if status is Status.PASS else "x")


def test_aggregate_fail_dominates_then_indeterminate_then_pass() -> None:
    assert aggregate([_r("a", Status.PASS), _r("b", Status.FAIL), _r("c", Status.INDETERMINATE)]) is Status.FAIL
    assert aggregate([_r("a", Status.PASS), _r("b", Status.SKIPPED)]) is Status.INDETERMINATE
    assert aggregate([_r("a", Status.PASS), _r("b", Status.FAIL, Severity.ADVISORY)]) is Status.PASS
    assert aggregate([]) is Status.INDETERMINATE


def test_a_non_pass_result_without_reason_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="needs a reason"):
        CheckResult(id="a", status=Status.FAIL, severity=Severity.REQUIRED)
