"""Policy on the verified GPUs of ONE attestation (and NRAS claims when present): model, driver, VBIOS, count.

The GPUs must be distinct devices first (``gpu_duplicate_evidence``): one GPU's evidence repeated
must not satisfy ``gpu.expected_count``, which is a count per attestation, never a sum over several.
Models match by prefix ("GH100" matches "GH100 A01 GSP BROM"). Versions compare numerically by
dotted component: decimal for drivers (570.172.08), hex for VBIOS (96.00.D0.00.03).
"""

from __future__ import annotations

from collections.abc import Iterable

from verifier.core.errors import CheckFailed, ConfigError
from verifier.evidence.gpu_cert import check_distinct_gpus
from verifier.verify.gpu_device import VerifiedGpu
from verifier.verify.nras_token import NrasResult


def appraise_gpus(
    gpus: list[VerifiedGpu],
    nras: NrasResult | None,
    *,
    hwmodel_allowlist: frozenset[str] | None,
    driver_allowlist: frozenset[str] | None,
    min_driver: str | None,
    vbios_allowlist: frozenset[str] | None,
    min_vbios: str | None,
    expected_count: int | None,
) -> None:
    check_distinct_gpus([g.identity for g in gpus])
    # (name, hwmodel, driver, vbios) from the local evidence and, when given, from NRAS
    rows: list[tuple[str, str | None, str | None, str | None]] = [
        (f"GPU-{g.index}", g.hwmodel, g.driver_version, g.vbios_version) for g in gpus
    ]
    if nras is not None:
        rows += [(f"NRAS {c.name}", c.hwmodel, c.driver_version, c.vbios_version) for c in nras.gpus]
    if not rows:
        raise CheckFailed("no GPU to appraise", reason="no_gpu_evidence")
    if expected_count is not None:
        counts = {"evidence": len(gpus)} | ({"nras": len(nras.gpus)} if nras is not None else {})
        if any(n != expected_count for n in counts.values()):
            raise CheckFailed(
                f"{counts} GPU(s), policy expects {expected_count}",
                reason="gpu_count_mismatch",
                details={"expected": expected_count, "got": counts},
            )
    if hwmodel_allowlist is not None:
        _fail_if(
            "gpu_model_not_allowed",
            "hardware model",
            {"prefixes": _sorted(hwmodel_allowlist)},
            [(n, m) for n, m, _, _ in rows if m is None or not any(m.startswith(p) for p in hwmodel_allowlist)],
        )
    min_d = _version(min_driver, 10, "min_driver") if min_driver else None
    _fail_if(
        "gpu_driver_not_allowed",
        "driver",
        {"allowed": _sorted(driver_allowlist), "min": min_driver},
        [(n, d) for n, _, d, _ in rows if not _allowed(d, driver_allowlist, min_d, 10)],
    )
    min_v = _version(min_vbios, 16, "min_vbios") if min_vbios else None
    vb_allow = frozenset(v.upper() for v in vbios_allowlist) if vbios_allowlist is not None else None
    _fail_if(
        "gpu_vbios_not_allowed",
        "VBIOS",
        {"allowed": _sorted(vbios_allowlist), "min": min_vbios},
        [(n, v) for n, _, _, v in rows if not _allowed(v and v.upper(), vb_allow, min_v, 16)],
    )


def _allowed(value: str | None, allow: frozenset[str] | None, minimum: tuple[int, ...] | None, base: int) -> bool:
    if allow is None and minimum is None:
        return True
    if value is None:
        return False  # unknown version cannot be shown to satisfy the policy
    if allow is not None and value not in allow:
        return False
    if minimum is not None:
        try:
            return _version(value, base, "") >= minimum
        except ConfigError:
            return False
    return True


def _version(text: str, base: int, key: str) -> tuple[int, ...]:
    try:
        return tuple(int(p, base) for p in text.strip().split("."))
    except ValueError:
        raise ConfigError(f"policy gpu.{key}: {text!r} is not a dotted version") from None


def _fail_if(reason: str, what: str, expected: dict[str, object], bad: Iterable[tuple[str, str | None]]) -> None:
    bad = list(bad)
    if bad:
        shown = ", ".join(f"{n}={v}" for n, v in bad)
        raise CheckFailed(
            f"GPU {what} not allowed by policy: {shown}",
            reason=reason,
            details={"expected": expected, "got": dict(bad)},
        )


def _sorted(values: frozenset[str] | None) -> list[str] | None:
    return sorted(values) if values is not None else None
