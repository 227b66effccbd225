"""tdx.tcb: judge what dcap-qvl established about the platform TCB against the policy (docs/dcap.md §4.2).

Runs only after dcap-qvl verified the quote with ``collateral``, so the collateral's dates and
evaluation data number are those of signed, checked documents. The first violated rule raises.
"""

from __future__ import annotations

from collections.abc import Collection

from verifier.core.errors import CheckFailed
from verifier.core.ports import DcapResult
from verifier.evidence.collateral import Collateral


def appraise_tcb(
    result: DcapResult,
    collateral: Collateral | None,
    *,
    now: int,
    allowed_statuses: Collection[str],
    advisory_allowlist: Collection[str] | None,
    rejected_advisories: Collection[str],
    min_tcb_eval_data_number: int | None,
    max_collateral_age: int | None,
) -> None:
    """CheckFailed (reason + got/expected details) unless the TCB status, advisories, eval number and age are allowed.

    ``advisory_allowlist`` None: any advisory not rejected is tolerated; otherwise every advisory must be
    listed. ``min_tcb_eval_data_number`` / ``max_collateral_age`` None or 0: no limit.
    """
    status, advisories = result.status, list(result.advisory_ids)
    if status == "Revoked":
        raise CheckFailed(
            "TCB status is Revoked, which is never allowed",
            reason="tcb_revoked",
            details={"got": status, "expected": sorted(allowed_statuses)},
        )
    failures: list[CheckFailed] = []  # every rule is judged; all failures are reported, the first decides the reason
    if status not in allowed_statuses:
        failures.append(
            CheckFailed(
                f"TCB status {status} is not allowed by policy (allowed: {', '.join(sorted(allowed_statuses))})",
                reason="tcb_status_not_allowed",
                details={"got": status, "expected": sorted(allowed_statuses)},
            )
        )
    if rejected := sorted(set(advisories) & set(rejected_advisories)):
        failures.append(
            CheckFailed(
                f"advisories {', '.join(rejected)} are rejected by policy",
                reason="advisory_not_allowed",
                details={"got": advisories, "rejected": rejected},
            )
        )
    if advisory_allowlist is not None and (unlisted := sorted(set(advisories) - set(advisory_allowlist))):
        failures.append(
            CheckFailed(
                f"advisories {', '.join(unlisted)} are not in the policy's allow-list",
                reason="advisory_not_allowed",
                details={"got": advisories, "not_allowed": unlisted, "expected": sorted(advisory_allowlist)},
            )
        )
    if min_tcb_eval_data_number:
        number = result.tcb_eval_data_number
        if number is None and collateral is not None:
            number = collateral.tcb_eval_data_number
        if number is None or number < min_tcb_eval_data_number:
            failures.append(
                CheckFailed(
                    f"TCB evaluation data number {number} is below the policy minimum {min_tcb_eval_data_number}",
                    reason="tcb_eval_too_old",
                    details={"got": number, "expected": f">= {min_tcb_eval_data_number}"},
                )
            )
    if max_collateral_age:
        if collateral is None:
            failures.append(
                CheckFailed(
                    f"collateral issue date unknown; policy requires it at most {max_collateral_age} s old",
                    reason="collateral_too_old",
                    details={"got": None, "expected": f"<= {max_collateral_age}"},
                )
            )
        elif (age := now - collateral.issued_at) > max_collateral_age:  # the newer of TCB info / QE identity dates
            failures.append(
                CheckFailed(
                    f"collateral issued at {collateral.issued_at} is {age} s old at {now}, policy allows "
                    f"{max_collateral_age} s",
                    reason="collateral_too_old",
                    details={
                        "got": age,
                        "expected": f"<= {max_collateral_age}",
                        "issued_at": collateral.issued_at,
                        "now": now,
                    },
                )
            )
    if failures:
        first = failures[0]
        details = dict(first.details)
        if len(failures) > 1:
            details["failures"] = [{"reason": f.reason, "message": f.message, **f.details} for f in failures]
        raise CheckFailed("; ".join(f.message for f in failures), reason=first.reason, details=details)
