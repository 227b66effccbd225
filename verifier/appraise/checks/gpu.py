"""Checks over the GPUs of each attestation: the SPDM evidence to NVIDIA's root, our nonce, NRAS's tokens."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from verifier.appraise.gpu import appraise_gpus
from verifier.appraise.registry import Appraisal, Passed, check, each
from verifier.core.errors import Indeterminate
from verifier.evidence.spdm import check_gpu_nonces
from verifier.verify.gpu_device import VerifiedGpu
from verifier.verify.nras_token import NrasResult
from verifier.verify.results import Facts, GpuFacts

if TYPE_CHECKING:
    from verifier.appraise.policy import GpuPolicy


def _over_gpus(f: Facts, rule: Callable[[GpuFacts], str]) -> Passed:
    return each([(g.attestation.path, partial(rule, g)) for g in f.gpus.get()])


def _appraise(g: GpuPolicy, gpus: list[VerifiedGpu], nras: NrasResult | None, *, expected_count: int | None) -> None:
    appraise_gpus(
        gpus,
        nras,
        hwmodel_allowlist=g.allowed_hwmodels,
        driver_allowlist=g.allowed_drivers,
        min_driver=g.min_driver,
        vbios_allowlist=g.allowed_vbios,
        min_vbios=g.min_vbios,
        expected_count=expected_count,
    )


@check("gpu.evidence", "every GPU's SPDM report is signed by a device chain to NVIDIA's root", reuse=False)
def gpu_evidence(f: Facts, a: Appraisal) -> Passed:
    def rule(g: GpuFacts) -> str:
        devices = g.devices.get()
        _appraise(a.policy.gpu, list(devices), None, expected_count=a.policy.gpu.expected_count)  # per attestation
        return f"{len(devices)} GPU(s) {', '.join(sorted({d.hwmodel for d in devices}))}"

    passed = _over_gpus(f, rule)
    return Passed(f"verified to the NVIDIA device root: {passed.message}")


@check("gpu.nonce", "every GPU's evidence answers our nonce", needs=("gpu.evidence",))
def gpu_nonce(f: Facts, a: Appraisal) -> Passed:
    if f.bundle.meta.nonce is None:
        raise Indeterminate("no expected nonce in the bundle", reason="no_nonce")

    def rule(g: GpuFacts) -> str:
        assert g.expected_nonce is not None
        check_gpu_nonces(g.payload, g.expected_nonce)
        return f"{len(g.payload.evidence)} GPU(s) answer {g.expected_nonce.hex()[:16]}…"

    return _over_gpus(f, rule)


@check("gpu.nras", "NVIDIA NRAS attests every GPU, with a verified token", needs=("gpu.evidence",))
def gpu_nras(f: Facts, a: Appraisal) -> Passed:
    if f.bundle.meta.nonce is None:
        raise Indeterminate("no expected nonce in the bundle", reason="no_nonce")

    def rule(g: GpuFacts) -> str:
        result = g.nras.get()
        _appraise(a.policy.gpu, [], result, expected_count=None)  # NRAS's own view of each GPU meets the policy too
        return f"NRAS attests {len(result.gpus)} GPU(s); token signatures verified"

    return _over_gpus(f, rule)
