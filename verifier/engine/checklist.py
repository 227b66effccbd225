"""The one place where raised errors become check results (aesthetics.md §6.4).

``CheckFailed`` / ``EvidenceError`` -> fail; ``Indeterminate`` -> indeterminate; any other
exception is a bug -> indeterminate ``internal_error`` (logged), never pass. Checks the policy turns
off are not run; checks whose prerequisites did not pass are ``skipped`` with reason ``blocked``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from verifier.appraise.catalog import CHECKS
from verifier.appraise.policy import Policy
from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate, VerifierError
from verifier.core.model import CheckResult, Severity, Status

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Passed:
    """What a check function returns: a message for the table, details, and a value for later steps."""

    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    value: Any = None


class Skip(VerifierError):
    """A check function's way to say it cannot apply here (e.g. ``not_in_bundle``): recorded as skipped."""


CheckFn = Callable[[], "Passed | Awaitable[Passed | None] | None"]


class Checklist:
    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._results: dict[str, CheckResult] = {}
        self.values: dict[str, Any] = {}

    def status(self, check_id: str) -> Status | None:
        result = self._results.get(check_id)
        return result.status if result else None

    def record(self, check_id: str, status: Status, reason: str | None, message: str, details: dict[str, Any] | None = None) -> None:
        self._results[check_id] = CheckResult(
            id=check_id, status=status, severity=self._policy.severity(check_id), reason=reason, message=message, details=details or {}
        )

    def skip(self, check_id: str, reason: str, message: str) -> None:
        self.record(check_id, Status.SKIPPED, reason, message)

    async def run(self, check_id: str, fn: CheckFn, *, needs: Iterable[str] = ()) -> Any:
        """Run one check; returns the value its Passed carried, or None when it did not pass."""
        if self._policy.severity(check_id) is Severity.OFF:
            self.skip(check_id, "policy_off", "turned off by the policy")
            return None
        for dep in needs:
            if self.status(dep) is not Status.PASS:
                self.skip(check_id, "blocked", f"needs {dep}, which did not pass")
                return None
        try:
            outcome = fn()
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except Skip as exc:
            self.skip(check_id, exc.reason, exc.message)
            return None
        except (CheckFailed, EvidenceError) as exc:
            self.record(check_id, Status.FAIL, exc.reason, exc.message, exc.details)
            return None
        except Indeterminate as exc:
            self.record(check_id, Status.INDETERMINATE, exc.reason, exc.message, exc.details)
            return None
        except Exception:
            log.exception("check %s raised an unexpected error", check_id)
            self.record(check_id, Status.INDETERMINATE, "internal_error", "the verifier hit an internal error (logged); not a pass")
            return None
        passed = outcome if isinstance(outcome, Passed) else Passed()
        self.record(check_id, Status.PASS, None, passed.message, passed.details)
        self.values[check_id] = passed.value
        return passed.value

    def results(self) -> list[CheckResult]:
        """Every catalogued check, in catalogue order; a check never reached is indeterminate."""
        out = []
        for spec in CHECKS:
            result = self._results.get(spec.id)
            if result is None:
                result = CheckResult(
                    id=spec.id, status=Status.INDETERMINATE, severity=self._policy.severity(spec.id),
                    reason="internal_error", message="check was not evaluated",
                )
            out.append(result)
        return out


def merge_failures(path_errors: list[tuple[str, Exception]]) -> None:
    """Re-raise the most severe of several per-attestation errors: fail, then indeterminate, then skip."""
    if not path_errors:
        return

    def rank(exc: Exception) -> int:
        return 0 if isinstance(exc, CheckFailed | EvidenceError) else 2 if isinstance(exc, Skip) else 1

    path, exc = min(path_errors, key=lambda pe: rank(pe[1]))
    if isinstance(exc, VerifierError):
        exc.message = f"{path}: {exc.message}" if len(path_errors) > 1 or path not in ("$", "") else exc.message
        exc.details = {**exc.details, "attestation": path}
    raise exc
