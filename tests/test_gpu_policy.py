"""GPU policy: distinct devices, model prefix, driver / VBIOS allow-lists and minimums, GPU count per attestation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from verifier.appraise.gpu import appraise_gpus
from verifier.core.errors import CheckFailed, ConfigError
from verifier.core.trust import production_anchors
from verifier.evidence.gpu_cert import gpu_identities
from verifier.evidence.gpu_payload import parse_nvidia_payload
from verifier.verify.gpu_device import VerifiedGpu
from verifier.verify.nras_token import NrasGpuClaims, NrasResult, verify_nras_response

GPU = VerifiedGpu(
    index=0,
    arch="HOPPER",
    hwmodel="GH100 A01 GSP BROM",
    ueid="1",
    driver_version="570.172.08",
    vbios_version="96.00.CF.00.02",
    fwid=None,
    fwid_checked=False,
    feature_flag=None,
    project="G520",
    project_sku="0280",
    chip_sku="895",
    not_before=0,
    not_after=2**40,
    chain_sha256="00",
    leaf_sha256="l0",
    device_sha256="d0",
)
GPUS = [replace(GPU, index=i, ueid=str(i + 1), leaf_sha256=f"l{i}", device_sha256=f"d{i}") for i in range(8)]
OPEN: dict[str, Any] = {
    "hwmodel_allowlist": None,
    "driver_allowlist": None,
    "min_driver": None,
    "vbios_allowlist": None,
    "min_vbios": None,
    "expected_count": None,
}


def appraise(gpus: list[VerifiedGpu] = GPUS, nras: NrasResult | None = None, **policy: Any) -> None:
    appraise_gpus(gpus, nras, **{**OPEN, **policy})


def reason(gpus: list[VerifiedGpu] = GPUS, nras: NrasResult | None = None, **policy: Any) -> str:
    with pytest.raises(CheckFailed) as exc:
        appraise(gpus, nras, **policy)
    return exc.value.reason


def near_nras() -> NrasResult:
    d = Path(__file__).resolve().parent.parent / "fixtures/redpill/attestation/nearcloud-two-layer-ed25519-tls-20260629"
    report = json.loads((d / "attestation_report.json").read_text())
    devices = gpu_identities(parse_nvidia_payload(report["model_attestations"][0]["nvidia_payload"]).evidence)
    return verify_nras_response(
        (d / "nras_v3_response.json").read_bytes(),
        jwks=json.loads((d / "nras_jwks.json").read_text()),
        expected_nonce=bytes.fromhex("e79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609"),
        devices=devices,
        now=1782698900,
        anchors=production_anchors(),
    )


def test_open_policy_passes() -> None:
    appraise()


def test_model_matches_by_prefix() -> None:
    appraise(hwmodel_allowlist=frozenset({"GH100"}))
    appraise(hwmodel_allowlist=frozenset({"GB100", "GH100 A01"}))
    assert reason(hwmodel_allowlist=frozenset({"GB100"})) == "gpu_model_not_allowed"
    assert reason(hwmodel_allowlist=frozenset({"A01"})) == "gpu_model_not_allowed"


def test_nras_hwmodel_is_checked_too() -> None:
    nras = near_nras()
    appraise(nras=nras, hwmodel_allowlist=frozenset({"GH100"}))
    # NRAS v3 says "GH100": a longer allow-list entry matches the certificate but not NRAS
    assert reason(nras=nras, hwmodel_allowlist=frozenset({"GH100 A01 GSP BROM"})) == "gpu_model_not_allowed"


def test_driver_allowlist_and_minimum() -> None:
    appraise(driver_allowlist=frozenset({"570.172.08"}))
    assert reason(driver_allowlist=frozenset({"570.172.09"})) == "gpu_driver_not_allowed"
    appraise(min_driver="570.172.08")
    appraise(min_driver="570.172.8")  # numeric, not string
    appraise(min_driver="570.86.10")  # 172 > 86 numerically ("172" < "86" as strings)
    appraise(min_driver="570")
    with pytest.raises(CheckFailed) as exc:
        appraise(min_driver="575.32")
    assert exc.value.reason == "gpu_driver_not_allowed" and exc.value.details["got"]["GPU-0"] == "570.172.08"


def test_one_bad_gpu_fails_the_set() -> None:
    gpus = [*GPUS[:7], replace(GPUS[7], driver_version="535.86.09")]
    assert reason(gpus, min_driver="550") == "gpu_driver_not_allowed"


def test_vbios_hex_components_and_case() -> None:
    appraise(vbios_allowlist=frozenset({"96.00.cf.00.02"}))
    appraise(min_vbios="96.00.9F.00.01")  # CF > 9F in hex
    assert reason(min_vbios="96.00.D0.00.03") == "gpu_vbios_not_allowed"
    assert reason(vbios_allowlist=frozenset({"96.00.D0.00.03"})) == "gpu_vbios_not_allowed"


def test_unknown_versions_cannot_satisfy_a_policy() -> None:
    gpus = [replace(GPU, driver_version=None, vbios_version=None)]
    appraise(gpus)
    assert reason(gpus, min_driver="1") == "gpu_driver_not_allowed"
    assert reason(gpus, vbios_allowlist=frozenset({"96.00.CF.00.02"})) == "gpu_vbios_not_allowed"
    assert reason([replace(GPU, driver_version="570.x")], min_driver="1") == "gpu_driver_not_allowed"


def test_gpu_count() -> None:
    appraise(expected_count=8)
    assert reason(expected_count=4) == "gpu_count_mismatch"
    nras = replace(near_nras(), gpus=near_nras().gpus[:7])
    assert reason(nras=nras, expected_count=8) == "gpu_count_mismatch"


def test_nras_versions_are_appraised() -> None:
    nras = near_nras()
    bad = replace(nras, gpus=(*nras.gpus[:7], replace(nras.gpus[7], driver_version="535.0")))
    assert isinstance(bad.gpus[7], NrasGpuClaims)
    appraise(nras=nras, min_driver="570.172.08")
    assert reason(nras=bad, min_driver="570.172.08") == "gpu_driver_not_allowed"


@pytest.mark.parametrize("shared", ["ueid", "leaf_sha256", "device_sha256"])
def test_one_gpu_repeated_cannot_satisfy_the_expected_count(shared: str) -> None:
    repeated = [replace(GPUS[i], **{shared: getattr(GPUS[0], shared)}) for i in range(8)]
    with pytest.raises(CheckFailed) as exc:
        appraise(repeated, expected_count=8)
    assert exc.value.reason == "gpu_duplicate_evidence"
    assert "GPU-0, GPU-1, GPU-2" in exc.value.message and shared in exc.value.message


def test_two_entries_of_one_device_fail_even_without_a_count_policy() -> None:
    assert reason([GPUS[0], GPUS[1], replace(GPUS[0], index=2)]) == "gpu_duplicate_evidence"


def test_no_gpus_at_all() -> None:
    assert reason([]) == "no_gpu_evidence"


def test_unparsable_policy_version_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        appraise(min_driver="latest")
    with pytest.raises(ConfigError):
        appraise(min_vbios="96.00.XY")
