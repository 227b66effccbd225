"""The checklist: walk the registry in order, turning each appraisal function's outcome into a result row.

The one place where raised errors become check results: ``CheckFailed`` / ``EvidenceError`` -> fail;
``Indeterminate`` -> indeterminate; ``Skip`` -> skipped; any other exception is a bug -> indeterminate
``internal_error`` (logged), never pass. A check the policy turns off is ``skipped`` (``policy_off``); a check
whose ``needs`` did not all pass is ``skipped`` (``blocked``) without running: its evidence was never verified.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from verifier.appraise.catalog import CHECKS
from verifier.appraise.registry import Appraisal, CheckSpec
from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate, Skip
from verifier.core.model import CheckResult, Severity, Status
from verifier.verify.results import Facts

log = logging.getLogger(__name__)


def appraise(facts: Facts, appraisal: Appraisal, specs: Iterable[CheckSpec] = CHECKS) -> tuple[CheckResult, ...]:
    """Every check of ``specs`` (the registry, in order), each once, against the facts."""
    policy = appraisal.policy
    results: dict[str, CheckResult] = {}

    def row(
        check_id: str, status: Status, reason: str | None, message: str, details: dict | None = None
    ) -> CheckResult:
        return CheckResult(
            id=check_id,
            status=status,
            severity=policy.severity(check_id),
            reason=reason,
            message=message,
            details=details or {},
        )

    for spec in specs:
        unmet = [n for n in spec.needs if results[n].status is not Status.PASS]
        if policy.severity(spec.id) is Severity.OFF:
            results[spec.id] = row(spec.id, Status.SKIPPED, "policy_off", "turned off by the policy")
        elif unmet:
            first = results[unmet[0]]
            results[spec.id] = row(
                spec.id,
                Status.SKIPPED,
                "blocked",
                f"needs {first.id}, which did not pass ({first.status}: {first.reason})",
                {"needs": unmet},
            )
        else:
            try:
                passed = spec.fn(facts, appraisal)
                results[spec.id] = row(spec.id, Status.PASS, None, passed.message, passed.details)
            except Skip as exc:
                results[spec.id] = row(spec.id, Status.SKIPPED, exc.reason, exc.message, exc.details)
            except (CheckFailed, EvidenceError) as exc:
                results[spec.id] = row(spec.id, Status.FAIL, exc.reason, exc.message, exc.details)
            except Indeterminate as exc:
                results[spec.id] = row(spec.id, Status.INDETERMINATE, exc.reason, exc.message, exc.details)
            except Exception:
                log.exception("check %s raised an unexpected error", spec.id)
                results[spec.id] = row(
                    spec.id,
                    Status.INDETERMINATE,
                    "internal_error",
                    "the verifier hit an internal error (logged); not a pass",
                )
    return tuple(results.values())
