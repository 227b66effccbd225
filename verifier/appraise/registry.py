"""The check registry: every check declared once, with its appraisal function and what it rests on.

``@check(id, title, needs=..., rests_on=...)`` registers an appraisal function. From that one declaration:
- the engine's runtime blocking: a check runs only when every check in ``needs`` passed, else it is
  ``skipped`` with reason ``blocked`` (its evidence was never verified, so judging it proves nothing);
- the policy foundation rule: a ``required`` check needs every check in ``needs`` and ``rests_on`` required
  too (``rests_on`` adds checks its meaning depends on without blocking it, e.g. ``report.signer`` for the
  report_data bindings: a binding of an unattested key proves nothing about the response);
- the reuse requirement: checks declared ``reuse=True`` must all pass before an attestation may be reused;
- observer checks (``observed=True``) judge what this verifier saw at capture time (the live TLS peer, the
  response headers), which nothing in the bundle authenticates: a re-appraisal never upgrades their recorded
  result (``engine.ceiling``).
Check ids are stable public names (README); the README's table is generated from this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from verifier.core.errors import CheckFailed, EvidenceError, Skip, VerifierError
from verifier.core.model import Severity

if TYPE_CHECKING:
    from verifier.appraise.policy import Policy
    from verifier.verify.results import Facts


@dataclass(frozen=True, slots=True)
class Passed:
    """What an appraisal function returns when its rule holds: a message for the table and details."""

    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Appraisal:
    """What a check is judged against besides the facts: the policy and the reference values."""

    policy: Policy
    refs: Any = None  # verifier.appraise.refs.Refs when configured


CheckFn = Callable[["Facts", Appraisal], Passed]


@dataclass(frozen=True, slots=True)
class CheckSpec:
    id: str
    title: str
    default_severity: Severity
    needs: tuple[str, ...]
    rests_on: tuple[str, ...]
    reuse: bool
    fn: CheckFn
    observed: bool = False

    @property
    def foundations(self) -> tuple[str, ...]:
        """Every check this one's verdict-deciding power depends on (the policy rule)."""
        return tuple(dict.fromkeys(self.needs + self.rests_on))


REGISTRY: dict[str, CheckSpec] = {}


def check(
    check_id: str,
    title: str,
    *,
    needs: tuple[str, ...] = (),
    rests_on: tuple[str, ...] = (),
    severity: Severity = Severity.REQUIRED,
    reuse: bool = False,
    observed: bool = False,
) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if check_id in REGISTRY:
            raise AssertionError(f"check {check_id} declared twice")
        for dep in needs + rests_on:
            if dep not in REGISTRY:
                raise AssertionError(f"check {check_id} depends on {dep}, which must be declared before it")
        REGISTRY[check_id] = CheckSpec(check_id, title, severity, needs, rests_on, reuse, fn, observed)
        return fn

    return register


def each(items: list[tuple[str, Callable[[], str]]]) -> Passed:
    """Run one rule per attestation (or GPU); every failure is reported, the most severe decides."""
    errors: list[tuple[str, VerifierError]] = []
    messages: list[str] = []
    for name, rule in items:
        try:
            messages.append(rule())
        except VerifierError as exc:
            errors.append((name, exc))
    merge_failures(errors)
    return Passed("; ".join(dict.fromkeys(messages)))


def merge_failures(path_errors: list[tuple[str, VerifierError]]) -> None:
    """Raise the most severe of several errors (fail, then indeterminate, then skip), listing all of them."""
    if not path_errors:
        return

    def rank(exc: VerifierError) -> int:
        return 0 if isinstance(exc, CheckFailed | EvidenceError) else 2 if isinstance(exc, Skip) else 1

    path, exc = min(path_errors, key=lambda pe: rank(pe[1]))
    details = {**exc.details, "attestation": path}
    if len(path_errors) > 1:
        details["failures"] = [{"at": p, "reason": e.reason, "message": e.message} for p, e in path_errors]
    message = f"{path}: {exc.message}" if len(path_errors) > 1 or path not in ("$", "") else exc.message
    raise type(exc)(message, reason=exc.reason, details=details)
