from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from verifier.appraise.tcb import appraise_tcb
from verifier.core.errors import CheckFailed
from verifier.core.ports import DcapResult
from verifier.evidence.collateral import Collateral

COLLATERAL = Collateral.parse(
    (Path(__file__).resolve().parent.parent / "fixtures/tdx/collateral/intel-pcs-tdx-90c06f-20260610.json").read_text(),
    source="bundle",
)
NOW = 1781056157  # manifest verify_at of this collateral: issued ~2026-06-10T00:56Z, checked at 01:49Z
POLICY: dict[str, Any] = {
    "allowed_statuses": frozenset({"UpToDate"}),
    "advisory_allowlist": None,
    "rejected_advisories": frozenset(),
    "min_tcb_eval_data_number": None,
    "max_collateral_age": None,
}


def result(status: str = "UpToDate", advisories: tuple[str, ...] = (), number: int | None = 19) -> DcapResult:
    return DcapResult(
        status=status, advisory_ids=advisories, tcb_eval_data_number=number, tcb_date="2025-05-14T00:00:00Z"
    )


def appraise(r: DcapResult, collateral: Collateral | None = COLLATERAL, now: int = NOW, **policy: Any) -> None:
    appraise_tcb(r, collateral, now=now, **{**POLICY, **policy})


def fails(reason: str, r: DcapResult, collateral: Collateral | None = COLLATERAL, **policy: Any) -> CheckFailed:
    with pytest.raises(CheckFailed) as info:
        appraise(r, collateral, **policy)
    assert info.value.reason == reason
    assert "got" in info.value.details
    return info.value


def test_uptodate_passes_default_policy() -> None:
    appraise(result())
    appraise(result(), None)  # no collateral needed when no age limit


def test_permissive_policy_passes_sw_hardening_with_listed_advisory() -> None:
    appraise(
        result("SWHardeningNeeded", ("INTEL-SA-00615",)),
        allowed_statuses=("UpToDate", "SWHardeningNeeded"),
        advisory_allowlist=["INTEL-SA-00615"],
        rejected_advisories=("INTEL-SA-00289",),
        min_tcb_eval_data_number=19,
        max_collateral_age=7 * 86400,
    )


def test_revoked_is_never_allowed() -> None:
    err = fails("tcb_revoked", result("Revoked"), allowed_statuses=frozenset({"UpToDate", "Revoked"}))
    assert err.details["got"] == "Revoked"


def test_status_not_allowed() -> None:
    err = fails("tcb_status_not_allowed", result("OutOfDate"))
    assert err.details == {"got": "OutOfDate", "expected": ["UpToDate"]}


def test_rejected_advisory() -> None:
    err = fails(
        "advisory_not_allowed",
        result(advisories=("INTEL-SA-00615", "INTEL-SA-00289")),
        rejected_advisories=frozenset({"INTEL-SA-00289"}),
    )
    assert err.details["rejected"] == ["INTEL-SA-00289"]


def test_advisory_not_in_allowlist() -> None:
    err = fails(
        "advisory_not_allowed",
        result(advisories=("INTEL-SA-00615", "INTEL-SA-00837")),
        advisory_allowlist=frozenset({"INTEL-SA-00615"}),
    )
    assert err.details["not_allowed"] == ["INTEL-SA-00837"] and err.details["expected"] == ["INTEL-SA-00615"]


def test_empty_allowlist_rejects_any_advisory_but_not_none() -> None:
    appraise(result(), advisory_allowlist=frozenset())
    fails("advisory_not_allowed", result(advisories=("INTEL-SA-00615",)), advisory_allowlist=frozenset())


def test_eval_number_too_old() -> None:
    err = fails("tcb_eval_too_old", result(number=18), min_tcb_eval_data_number=19)
    assert err.details == {"got": 18, "expected": ">= 19"}


def test_eval_number_unknown_with_minimum_fails() -> None:
    fails("tcb_eval_too_old", result(number=None), None, min_tcb_eval_data_number=1)
    appraise(result(number=None), min_tcb_eval_data_number=19)  # the verified collateral's number (19) stands in


def test_collateral_too_old() -> None:
    age = NOW - COLLATERAL.issued_at
    appraise(result(), max_collateral_age=age)
    err = fails("collateral_too_old", result(), max_collateral_age=age - 1)
    assert (
        err.details["got"] == age and err.details["issued_at"] == COLLATERAL.tcb_info_issue_date
    )  # the newer issue date


def test_collateral_unknown_with_age_limit_fails() -> None:
    fails("collateral_too_old", result(), None, max_collateral_age=86400)
