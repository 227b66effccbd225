"""Which device an evidence entry names, why one GPU repeated is one GPU, and verify_gpu as a pure function."""

from __future__ import annotations

import datetime as dt
import json
import pickle
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.gpu_cert import TCB_INFO_OIDS, check_distinct_gpus, gpu_identities, gpu_identity, leaf_fwid
from verifier.evidence.gpu_payload import GpuEvidence, parse_nvidia_payload
from verifier.simulator import SimulatorWorld
from verifier.verify.gpu_device import verify_gpu

FIX = Path(__file__).resolve().parent.parent / "fixtures"
ROOT_PEM = (Path(__file__).resolve().parent.parent / "verifier/anchors/nvidia_device_identity_ca.pem").read_bytes()
NEAR_NOW = 1782698812
WORLD = SimulatorWorld("test_gpu_identity")
NONCE = bytes(range(32))
SIM_NOW = 1_790_000_000


def _near() -> tuple[GpuEvidence, ...]:
    report = json.loads(
        (FIX / "redpill/attestation/nearcloud-two-layer-ed25519-tls-20260629/attestation_report.json").read_text()
    )
    return parse_nvidia_payload(report["model_attestations"][0]["nvidia_payload"]).evidence


def _duplicate_reason(evidence: tuple[GpuEvidence, ...]) -> CheckFailed:
    with pytest.raises(CheckFailed) as exc:
        check_distinct_gpus(gpu_identities(evidence))
    assert exc.value.reason == "gpu_duplicate_evidence"
    return exc.value


def test_the_identity_read_from_evidence_is_the_identity_of_the_verified_gpu() -> None:
    for ev in _near():
        assert verify_gpu(ev, root_pem=ROOT_PEM, now=NEAR_NOW).identity == gpu_identity(ev)


def test_eight_real_gpus_share_one_fwid_yet_are_eight_distinct_devices() -> None:
    gpus = [verify_gpu(ev, root_pem=ROOT_PEM, now=NEAR_NOW) for ev in _near()]
    assert len({g.fwid for g in gpus}) == 1  # the FWID measures firmware: it cannot tell GPUs apart
    check_distinct_gpus([g.identity for g in gpus])
    assert (
        len({g.ueid for g in gpus}) == len({g.device_sha256 for g in gpus}) == len({g.leaf_sha256 for g in gpus}) == 8
    )


def test_one_gpu_asked_four_times_verifies_entry_by_entry_but_is_one_device() -> None:
    evidence = parse_nvidia_payload(WORLD.gpu_payload(NONCE, 4, repeat=True)).evidence
    assert len({ev.evidence for ev in evidence}) == 4  # four distinct, genuine SPDM transcripts
    for ev in evidence:
        verify_gpu(ev, root_pem=WORLD.anchors.nvidia_device_root_pem, now=SIM_NOW)
    err = _duplicate_reason(evidence)
    assert "GPU-0, GPU-1, GPU-2, GPU-3" in err.message and {"ueid", "leaf_sha256", "device_sha256"} <= set(
        err.message.split()
    )


def test_an_entry_copied_byte_for_byte_is_a_duplicate() -> None:
    a, b = _near()[:2]
    _duplicate_reason((a, b, GpuEvidence(2, a.arch, a.certificate_pem, a.evidence, a.nonce)))


def test_another_leaf_under_the_same_device_certificate_is_the_same_gpu() -> None:
    a = _near()[0]
    other = WORLD.gpu(0)
    # same BROM (device) certificate, another leaf: a GPU re-keyed (e.g. rebooted) is still one GPU
    chain = other.leaf.public_bytes(serialization.Encoding.PEM)
    rest = a.certificate_pem.split(b"-----END CERTIFICATE-----\n", 1)[1]
    rekeyed = GpuEvidence(1, a.arch, chain + rest, a.evidence, None)
    err = _duplicate_reason((a, rekeyed))
    assert "device_sha256" in err.message and "ueid" not in err.message


def test_distinct_simulated_gpus_are_distinct() -> None:
    check_distinct_gpus(gpu_identities(parse_nvidia_payload(WORLD.gpu_payload(NONCE, 8)).evidence))


# ---------------------------------------------------------------- a pure function over bytes: pool-ready


def test_inputs_outputs_and_errors_of_verify_gpu_pickle() -> None:
    ev = _near()[0]
    g = verify_gpu(ev, root_pem=ROOT_PEM, now=NEAR_NOW)
    assert pickle.loads(pickle.dumps(ev)) == ev and pickle.loads(pickle.dumps(g)) == g
    with pytest.raises(CheckFailed) as exc:
        verify_gpu(ev, root_pem=WORLD.anchors.nvidia_device_root_pem, now=NEAR_NOW)
    err = pickle.loads(pickle.dumps(exc.value))
    assert (type(err), err.reason, err.message, err.details) == (
        CheckFailed,
        exc.value.reason,
        exc.value.message,
        exc.value.details,
    )


def test_verify_gpu_runs_in_a_process_pool_and_a_thread_pool_with_the_same_results() -> None:
    evidence = _near()
    local = [verify_gpu(ev, root_pem=ROOT_PEM, now=NEAR_NOW) for ev in evidence]
    with ProcessPoolExecutor(max_workers=2) as procs, ThreadPoolExecutor(max_workers=4) as threads:
        for pool in (procs, threads):
            results = list(pool.map(_verify_near, evidence))
            assert results == local
        failed = procs.submit(verify_gpu, evidence[0], root_pem=WORLD.anchors.nvidia_device_root_pem, now=NEAR_NOW)
        with pytest.raises(CheckFailed) as exc:
            failed.result()
        assert exc.value.reason == "gpu_cert_chain_invalid"


def _verify_near(ev: GpuEvidence) -> object:
    return verify_gpu(ev, root_pem=ROOT_PEM, now=NEAR_NOW)


# ---------------------------------------------------------------- property tests: identity and FWID decoding


_NEAR_PEM = _near()[0].certificate_pem
_KEY = ec.derive_private_key(7, ec.SECP384R1())


@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")  # mutated serials
@settings(max_examples=200, deadline=None)
@given(pos=st.integers(0, len(_NEAR_PEM) - 1), byte=st.integers(0, 255))
def test_identities_of_mutated_chains_are_read_or_refused_as_evidence_errors(pos: int, byte: int) -> None:
    pem = bytearray(_NEAR_PEM)
    pem[pos] = byte
    try:
        ident = gpu_identity(GpuEvidence(0, "HOPPER", bytes(pem), b"", None))
    except EvidenceError:
        return
    assert ident.ueid.isdigit() and ident.index == 0


def _leaf_with_extension(oid: str, value: bytes) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "t")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
        .sign(_KEY, hashes.SHA384())
    )


@settings(max_examples=150, deadline=None)
@given(oid=st.sampled_from(TCB_INFO_OIDS), value=st.binary(max_size=200))
def test_arbitrary_tcb_info_extensions_decode_to_a_fwid_or_none(oid: str, value: bytes) -> None:
    fwid = leaf_fwid(_leaf_with_extension(oid, value), "GPU-0")
    assert fwid is None or (isinstance(fwid, bytes) and fwid in value)


def test_both_tcb_info_shapes_yield_their_fwid() -> None:
    hopper = WORLD.gpu(0)
    assert leaf_fwid(hopper.leaf, "GPU-0") == hopper.fwid
    blackwell = x509.load_pem_x509_certificates(
        (FIX / "nvidia/attestation-sdk/evidence/sample_blackwellCertChain.txt").read_bytes()
    )[0]
    fwid = leaf_fwid(blackwell, "GPU-0")
    assert fwid is not None and fwid.hex().startswith("d090cab1") and len(fwid) == 48
