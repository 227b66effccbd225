"""Offline GPU evidence verification: chain to the pinned root, SPDM signature, FWID, device identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.gpu_payload import GpuEvidence, parse_chutes_gpu_evidence, parse_nvidia_payload
from verifier.simulator import SimulatorWorld
from verifier.simulator import gpu as sim_gpu
from verifier.verify import gpu_device as device
from verifier.verify.gpu_device import verify_gpu
from verifier.verify.memo import Memo

FIX = Path(__file__).resolve().parent.parent / "fixtures"
ROOT_PEM = (Path(__file__).resolve().parent.parent / "verifier/anchors/nvidia_device_identity_ca.pem").read_bytes()
SDK = FIX / "nvidia/attestation-sdk/evidence"
NVTRUST = FIX / "nvidia/nvtrust"
NOW = 1782698812  # 2026-06-29, inside every device chain's validity (…-9999)


def _hex(path: Path) -> bytes:
    return bytes.fromhex(path.read_text().strip())


def _sample(report: str, chain: str, folder: Path = SDK, arch: str = "HOPPER") -> GpuEvidence:
    return GpuEvidence(0, arch, (folder / chain).read_bytes(), _hex(folder / report), None)


def _near() -> list[GpuEvidence]:
    report = json.loads(
        (FIX / "redpill/attestation/nearcloud-two-layer-ed25519-tls-20260629/attestation_report.json").read_text()
    )
    return list(parse_nvidia_payload(report["model_attestations"][0]["nvidia_payload"]).evidence)


PHALA = GpuEvidence(
    0,
    "HOPPER",
    (FIX / "nvidia/phala-format-1gpu-20260325/gpu0_cert_chain.pem").read_bytes(),
    (FIX / "nvidia/phala-format-1gpu-20260325/gpu0_evidence.bin").read_bytes(),
    None,
)


def _reason(ev: GpuEvidence, *, root: bytes = ROOT_PEM, now: int = NOW) -> str:
    with pytest.raises(CheckFailed) as exc:
        verify_gpu(ev, root_pem=root, now=now)
    return exc.value.reason


# ---------------------------------------------------------------- positive


def test_the_eight_near_gpus_verify() -> None:
    gpus = [verify_gpu(ev, root_pem=ROOT_PEM, now=NOW) for ev in _near()]
    assert [g.index for g in gpus] == list(range(8))
    assert {g.hwmodel for g in gpus} == {"GH100 A01 GSP BROM"}
    assert {(g.driver_version, g.vbios_version) for g in gpus} == {("570.172.08", "96.00.CF.00.02")}
    assert len({g.ueid for g in gpus}) == 8 and all(g.fwid_checked for g in gpus)
    json.dumps([g.to_json() for g in gpus])


def test_phala_gpu_verifies() -> None:
    g = verify_gpu(PHALA, root_pem=ROOT_PEM, now=NOW)
    assert (g.driver_version, g.vbios_version, g.project, g.project_sku, g.chip_sku) == (
        "570.172.08",
        "96.00.D0.00.03",
        "G520",
        "0280",
        "895",
    )


def test_chutes_forty_gpus_verify() -> None:
    report = json.loads((FIX / "nvidia/redpill-chutes-8gpu-nras-fail-20260610/attestation_report.json").read_text())
    n = 0
    for inst in report["all_attestations"]:
        for ev in parse_chutes_gpu_evidence(
            inst["gpu_evidence"], nonce_hex=inst["nonce"], e2e_pubkey_b64=inst["e2e_pubkey"]
        ).evidence:
            assert verify_gpu(ev, root_pem=ROOT_PEM, now=1781056156).feature_flag == 2
            n += 1
    assert n == 40


def test_nvtrust_sample_verifies_with_known_identity() -> None:
    g = verify_gpu(_sample("hopperAttestationReport.txt", "hopperCertChain.txt", NVTRUST), root_pem=ROOT_PEM, now=NOW)
    assert g.ueid == "478176379286082186618948445787393647364802107249"
    assert (g.driver_version, g.vbios_version, g.hwmodel) == ("550.90.07", "96.00.9F.00.01", "GH100 A01 GSP BROM")


@pytest.mark.parametrize(
    ("report", "chain", "driver"),
    [
        ("sample_hopperAttestationReport.txt", "sample_hopperCertChain.txt", "535.86.09"),
        ("sample_hopperAttestationReportExpired.txt", "sample_hopperCertChainExpired.txt", "570.124.03"),
        ("sdk_580.159.03_hopperAttestationReport.txt", "sdk_580.159.03_hopperCertChain.txt", "580.159.03"),
    ],
)
def test_attestation_sdk_hopper_samples_verify(report: str, chain: str, driver: str) -> None:
    assert verify_gpu(_sample(report, chain), root_pem=ROOT_PEM, now=NOW).driver_version == driver


def test_attestation_sdk_json_evidence_verifies() -> None:
    for name in ("hopper_evidence_590.12.json", "hopper_evidence_cert_hold_570.86.10.json"):
        raw = json.loads((SDK / name).read_text())
        payload = parse_nvidia_payload({"evidence_list": raw})
        for ev in payload.evidence:
            verify_gpu(ev, root_pem=ROOT_PEM, now=NOW)


def test_blackwell_sample_verifies_with_the_dice_tcbinfo_fwid() -> None:
    g = verify_gpu(
        _sample("sample_blackwellAttestationReport.txt", "sample_blackwellCertChain.txt", arch="BLACKWELL"),
        root_pem=ROOT_PEM,
        now=NOW,
    )
    assert g.hwmodel == "GB100 A01 GSP BROM" and g.arch == "BLACKWELL"
    assert g.fwid_checked and g.fwid is not None and g.fwid.startswith("d090cab1")


def test_absent_opaque_fwid_is_recorded_not_failed() -> None:
    g = verify_gpu(
        _sample("sample_hopperAttestationReport.txt", "sample_hopperCertChain.txt"), root_pem=ROOT_PEM, now=NOW
    )
    assert g.fwid is None and not g.fwid_checked


# ---------------------------------------------------------------- negative


def _flip(ev: GpuEvidence, offset: int) -> GpuEvidence:
    b = bytearray(ev.evidence)
    b[offset] ^= 0x01
    return GpuEvidence(ev.index, ev.arch, ev.certificate_pem, bytes(b), ev.nonce)


def test_flipped_nonce_byte_breaks_the_signature() -> None:
    assert _reason(_flip(PHALA, 4)) == "gpu_signature_invalid"


def test_flipped_signature_byte_breaks_the_signature() -> None:
    assert _reason(_flip(PHALA, len(PHALA.evidence) - 5)) == "gpu_signature_invalid"


def test_attestation_sdk_invalid_signature_sample() -> None:
    assert (
        _reason(_sample("sample_hopperAttestationReportInvalidSignature.txt", "sample_hopperCertChain.txt"))
        == "gpu_signature_invalid"
    )


def test_evidence_signed_by_another_gpu_fails() -> None:
    a, b = _near()[:2]
    assert _reason(GpuEvidence(0, "HOPPER", a.certificate_pem, b.evidence, None)) == "gpu_signature_invalid"


def test_truncated_transcript_is_evidence_error() -> None:
    with pytest.raises(EvidenceError):
        verify_gpu(
            GpuEvidence(0, "HOPPER", PHALA.certificate_pem, PHALA.evidence[:-1], None), root_pem=ROOT_PEM, now=NOW
        )


def test_garbage_certificate_is_evidence_error() -> None:
    with pytest.raises(EvidenceError):
        verify_gpu(
            GpuEvidence(
                0, "HOPPER", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", PHALA.evidence, None
            ),
            root_pem=ROOT_PEM,
            now=NOW,
        )


ATTACKER = SimulatorWorld("test_gpu_device/attacker")  # a self-consistent PKI posing as NVIDIA's, with its own root
ATTACKER_ROOT = ATTACKER.anchors.nvidia_device_root_pem


def _attacker_gpu(**opaque: object) -> GpuEvidence:
    dev = ATTACKER.gpu(0)
    evidence = sim_gpu.device_evidence(dev, bytes(32), **opaque)
    return GpuEvidence(0, "HOPPER", ATTACKER.devices.chain_pem(dev), evidence, None)


def test_wrong_pinned_root_fails_the_chain() -> None:
    assert _reason(PHALA, root=ATTACKER_ROOT) == "gpu_cert_chain_invalid"


def test_the_evidence_root_is_ignored_so_swapping_it_changes_nothing() -> None:
    certs = x509.load_pem_x509_certificates(PHALA.certificate_pem)
    swapped = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs[:-1]) + ATTACKER_ROOT
    g = verify_gpu(GpuEvidence(0, "HOPPER", swapped, PHALA.evidence, None), root_pem=ROOT_PEM, now=NOW)
    assert g.driver_version == "570.172.08"


def test_a_self_consistent_attacker_chain_with_its_own_root_fails() -> None:
    ev = _attacker_gpu()  # chain, leaf key and SPDM signature all consistent under the attacker root
    verify_gpu(ev, root_pem=ATTACKER_ROOT, now=NOW)  # sanity: valid under the attacker's root
    assert _reason(ev) == "gpu_cert_chain_invalid"


def test_missing_intermediate_fails_the_chain() -> None:
    certs = x509.load_pem_x509_certificates(PHALA.certificate_pem)
    short = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in [certs[0], certs[2], certs[3], certs[4]])
    assert _reason(GpuEvidence(0, "HOPPER", short, PHALA.evidence, None)) == "gpu_cert_chain_invalid"


def test_certificate_outside_validity_is_expired_also_from_the_cache() -> None:
    verify_gpu(PHALA, root_pem=ROOT_PEM, now=NOW)  # cached now
    assert _reason(PHALA, now=1_500_000_000) == "gpu_cert_expired"  # 2017: before the leaf's 2020 notBefore


def test_fwid_mismatch_under_a_consistent_chain() -> None:
    dev = ATTACKER.gpu(0)
    opaque = [(t, b"\x11" * 48 if t == sim_gpu.OPAQUE_FWID else v) for t, v in sim_gpu.opaque_fields(dev)]
    evidence = sim_gpu.spdm_transcript(bytes(32), dev.measurements, opaque, dev.leaf_key, bytes(32))
    ev = GpuEvidence(0, "HOPPER", ATTACKER.devices.chain_pem(dev), evidence, None)
    assert _reason(ev, root=ATTACKER_ROOT) == "gpu_fwid_mismatch"


def test_a_recurring_chain_is_verified_once_per_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    memo = Memo(16)
    real = device._verify_chain

    def counting(pem: bytes, root: x509.Certificate, *, now: int, where: str) -> object:
        calls.append(pem)
        return real(pem, root, now=now, where=where)

    monkeypatch.setattr(device, "_verify_chain", counting)
    for _ in range(3):
        verify_gpu(PHALA, root_pem=ROOT_PEM, now=NOW, memo=memo)
    assert len(calls) == 1
    verify_gpu(PHALA, root_pem=ROOT_PEM + b"\n", now=NOW, memo=memo)  # other root bytes are another entry
    assert len(calls) == 2
    verify_gpu(PHALA, root_pem=ROOT_PEM, now=NOW)  # no memo: no state kept anywhere
    assert len(calls) == 3
