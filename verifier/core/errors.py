"""Exception hierarchy. Layers below the pipeline raise; one place turns them into results.

- ``EvidenceError``: untrusted input does not parse / is structurally invalid   -> fail
- ``CheckFailed``:   a check's condition is false (evidence is wrong)            -> fail
- ``Indeterminate``: the verifier could not decide (network, tool, missing data) -> indeterminate
- ``ConfigError``:   bad settings or policy file; raised at load time, never per request
"""

from __future__ import annotations

from typing import Any


class VerifierError(Exception):
    """Base of every error this project raises on purpose."""

    reason: str = "internal_error"

    def __init__(self, message: str, *, reason: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


class EvidenceError(VerifierError):
    """Untrusted evidence failed to parse or is structurally invalid."""

    reason = "malformed_evidence"


class CheckFailed(VerifierError):
    """A check's condition is false. ``details`` carries ``expected`` / ``got`` where useful."""

    reason = "check_failed"


class Indeterminate(VerifierError):
    """The verifier could not decide: never a pass, never a fail."""

    reason = "indeterminate"


class UpstreamError(Indeterminate):
    """A remote service (gateway, Intel PCS/PCCS, NRAS) failed: timeout, 5xx, 429, garbage."""

    reason = "upstream_unavailable"


class ConfigError(VerifierError):
    """Bad configuration or policy; names the key and file."""

    reason = "config_error"


class Skip(VerifierError):
    """A check cannot apply here (e.g. ``not_in_bundle``, ``not_configured``): recorded as skipped, never a pass."""

    reason = "not_applicable"
