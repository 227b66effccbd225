"""The AR4SI trustworthiness vector (IETF RATS EAR, draft-ietf-rats-ar4si): one tier per aspect, from the checks.

A consumer sees e.g. "hardware affirming, executables none: not pinned" rather than one word. Tiers and
their claim values follow AR4SI: none (0), affirming (2), warning (32), contraindicated (96). Mapping:
- hardware: genuine TDX platform and NVIDIA GPUs (tdx.quote, tdx.tcb, gpu.evidence, gpu.nras);
- instance-identity: the signing key is the attested TD's (signature.valid, report.signer, tdx.binds_signer);
- configuration: the TD and OS are configured as required (tdx.debug, then tdx.os_image: a dev image warns);
- executables: the measured software is the pinned software (tdx.event_log, tdx.app, tdx.measurements);
- runtime-opaque: the TD's memory is hidden from the host (tdx.quote and tdx.debug);
- sourced-data: the request and response bytes are the signed ones, for the requested model
  (request.hash, response.hash, model.binding) and the evidence is fresh (nonce.fresh, tdx.binds_nonce, gpu.nonce).
"""

from __future__ import annotations

from collections.abc import Mapping

from verifier.core.model import CheckResult, Status

TIERS = {"none": 0, "affirming": 2, "warning": 32, "contraindicated": 96}

ASPECTS: dict[str, tuple[str, ...]] = {
    "hardware": ("tdx.quote", "tdx.tcb", "gpu.evidence", "gpu.nras"),
    "instance-identity": ("signature.valid", "report.signer", "tdx.binds_signer"),
    "configuration": ("tdx.debug",),
    "executables": ("tdx.event_log", "tdx.app", "tdx.measurements"),
    "runtime-opaque": ("tdx.quote", "tdx.debug"),
    "sourced-data": ("request.hash", "response.hash", "model.binding", "nonce.fresh", "tdx.binds_nonce", "gpu.nonce"),
}


# turned off by ``gpu.nras = "local"``: the GPUs are still verified to NVIDIA's root locally (gpu.evidence)
_MAY_BE_OFF = frozenset({"gpu.nras"})


def _tier(checks: Mapping[str, CheckResult], ids: tuple[str, ...]) -> tuple[str, str]:
    rows = [checks[i] for i in ids if i in checks and not (i in _MAY_BE_OFF and checks[i].reason == "policy_off")]
    if not rows:
        return "none", "no check of this aspect ran"
    failed = [r for r in rows if r.status is Status.FAIL]
    if failed:
        return "contraindicated", "; ".join(f"{r.id} failed ({r.reason})" for r in failed)
    off = [r for r in rows if r.reason == "policy_off"]
    if off:  # what the policy chose not to verify is not established, whatever the verdict's status
        return "none", "; ".join(f"{r.id} turned off by the policy" for r in off)
    open_ = [r for r in rows if r.status is not Status.PASS]
    if open_:
        return "none", "; ".join(f"{r.id} {r.status} ({r.reason})" for r in open_)
    return "affirming", f"{', '.join(r.id for r in rows)} passed"


def trust_vector(results: tuple[CheckResult, ...] | list[CheckResult]) -> dict[str, dict[str, object]]:
    checks = {r.id: r for r in results}
    out: dict[str, dict[str, object]] = {}
    for aspect, ids in ASPECTS.items():
        tier, because = _tier(checks, ids)
        if aspect == "configuration" and tier == "affirming":
            os_image = checks.get("tdx.os_image")
            if os_image is not None and os_image.status is Status.FAIL:
                tier, because = "warning", f"tdx.os_image: {os_image.message}"
        unpinned = [c for c in ("tdx.app", "tdx.measurements") if not (checks[c].details or {}).get("pinned", True)]
        if aspect == "executables" and tier == "affirming" and unpinned:
            tier, because = "warning", f"{' and '.join(unpinned)}: not pinned (the policy accepts unpinned software)"
        out[aspect] = {"tier": tier, "value": TIERS[tier], "because": because}
    return out
