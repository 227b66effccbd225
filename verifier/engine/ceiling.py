"""A re-appraisal never upgrades an observer check (registry ``observed=True``: ``tls.binds_peer``, ``model.served``).

An observer check judges what the verifier saw at capture time (the TLS peer of a live connection), recorded in
the bundle as observer data that nothing authenticates (``tls.json``): editing it is as easy as editing a text file.
Re-appraising the bundle later (``reverify``, a job, ``verify-bundle --prior``) recomputes the check from that
record, so its result may be no better than the one the verdict it re-checks reached: a recorded ``fail``,
``indeterminate`` or ``skipped`` stays what it was (status and reason), with a message saying why; one the live
appraisal never judged (``policy_off``, ``blocked``) becomes ``indeterminate`` ``observation_not_upgraded`` — a
re-appraisal cannot be the first to pass an observation. So does one the recorded verdict has no row for at all (a
verdict recorded before the check existed, or a prior with no check rows): nothing live ever judged it — unless
the recomputed pass says it rests on no observer data (``details.observed`` false: ``model.served`` with no
recorded headers judges the signed body alone); a recorded non-pass is held either way. A downgrade
(a recorded pass the recomputation no longer reaches) is kept: it can only make the verdict stricter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from verifier.appraise.catalog import CHECKS
from verifier.core.model import CheckResult, Status

OBSERVED: frozenset[str] = frozenset(c.id for c in CHECKS if c.observed)


def no_upgrade(
    results: Iterable[CheckResult], prior: Mapping[str, CheckResult] | None, *, prior_id: str | None
) -> tuple[CheckResult, ...]:
    """``results`` with every observer check that now passes but did not pass in ``prior`` held at its prior row."""
    if prior is None:
        return tuple(results)
    out = []
    for r in results:
        before = prior.get(r.id)
        unobserved = r.details.get("observed") is False  # this pass rests on no observer data at all
        if before is None and unobserved:
            out.append(r)  # e.g. model.served from the signed body alone, for a verdict recorded before the check
            continue
        if r.id in OBSERVED and r.status is Status.PASS and (before is None or before.status is not Status.PASS):
            source = f"verdict {prior_id}" if prior_id else "the prior verdict"
            if before is None or (before.status is Status.SKIPPED and before.reason in ("policy_off", "blocked")):
                status, reason = Status.INDETERMINATE, "observation_not_upgraded"  # never judged live
            else:
                status, reason = before.status, before.reason or "observation_not_upgraded"
            recorded = "no result for it" if before is None else f"{before.status} ({before.reason})"
            r = CheckResult(
                id=r.id,
                status=status,
                severity=r.severity,
                reason=reason,
                message=(
                    f"not upgraded: {source} recorded {recorded}; a re-appraisal recomputes "
                    "this check from unauthenticated observer data (tls.json, headers.json) and may not turn that "
                    "into a pass "
                    f"(recomputed: {r.message})"
                ),
                details={
                    "recomputed": "pass",
                    "prior": None if before is None else {"status": str(before.status), "reason": before.reason},
                },
            )
        out.append(r)
    return tuple(out)


def prior_checks(verdict: Mapping[str, object]) -> dict[str, CheckResult]:
    """The check rows of a recorded verdict (JSON), by id; ValueError naming the first row that is not one."""
    rows = verdict.get("checks")
    if not isinstance(rows, list):
        raise ValueError("the verdict has no list of checks")
    out: dict[str, CheckResult] = {}
    for i, row in enumerate(rows):
        try:
            result = CheckResult.from_json(row)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ValueError(f"checks[{i}] is not a check row (id, status, severity, reason)") from None
        out[result.id] = result
    return out
