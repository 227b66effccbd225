"""The GPU device chain under RFC 5280 path validation, and malformed certificates that must stay project errors.

Each RFC 5280 property the chain check enforces has a negative test built with the simulator's PKI
(``verifier.simulator.gpu.CHAIN_FAULTS``): the chain keeps its genuine test root and keys and
commits exactly one violation, which a check of signatures issuer by issuer would let through.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.gpu_payload import GpuEvidence, parse_nvidia_payload
from verifier.simulator import SimulatorWorld, keys
from verifier.simulator import gpu as sim_gpu
from verifier.verify.gpu_device import verify_gpu

WORLD = SimulatorWorld("test_gpu_chain")
ROOT = WORLD.anchors.nvidia_device_root_pem
NOW = 1_790_000_000
NONCE = bytes(range(32))
PHALA_DIR = Path(__file__).resolve().parent.parent / "fixtures/nvidia/phala-format-1gpu-20260325"
REAL_ROOT = (Path(__file__).resolve().parent.parent / "verifier/anchors/nvidia_device_identity_ca.pem").read_bytes()
REAL = GpuEvidence(
    0, "HOPPER", (PHALA_DIR / "gpu0_cert_chain.pem").read_bytes(), (PHALA_DIR / "gpu0_evidence.bin").read_bytes(), None
)
REAL_NOW = 1782698812


def _evidence(chain_pem: bytes, dev: sim_gpu.GpuDevice | None = None) -> GpuEvidence:
    dev = dev or WORLD.gpu(0)
    return GpuEvidence(0, "HOPPER", chain_pem, sim_gpu.device_evidence(dev, NONCE), None)


def _failure(ev: GpuEvidence, *, root: bytes = ROOT, now: int = NOW) -> CheckFailed | EvidenceError:
    with pytest.raises((CheckFailed, EvidenceError)) as exc:
        verify_gpu(ev, root_pem=root, now=now)
    assert isinstance(exc.value, CheckFailed | EvidenceError)
    return exc.value


def _pem(*certs: x509.Certificate | bytes) -> bytes:
    out = b""
    for c in certs:
        der = c if isinstance(c, bytes) else c.public_bytes(serialization.Encoding.DER)
        out += b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
    return out


def test_the_unfaulted_simulator_chain_passes_path_validation() -> None:
    g = verify_gpu(_evidence(WORLD.devices.chain_pem(WORLD.gpu(0))), root_pem=ROOT, now=NOW)
    assert g.hwmodel == "GH100 A01 GSP BROM" and g.fwid_checked


@pytest.mark.parametrize(
    ("fault", "reason", "needle"),
    [
        ("intermediate_not_ca", "gpu_cert_chain_invalid", "depth 2"),
        ("intermediate_no_basic_constraints", "gpu_cert_chain_invalid", "depth 2"),
        ("intermediate_path_len", "gpu_cert_chain_invalid", "path length"),
        ("intermediate_no_cert_sign", "gpu_cert_chain_invalid", "depth 2"),
        ("intermediate_expired", "gpu_cert_expired", "expired"),
        ("leaf_no_digital_signature", "gpu_cert_chain_invalid", "digitalSignature"),
    ],
)
def test_an_rfc5280_violation_in_the_supplied_chain_fails(fault: str, reason: str, needle: str) -> None:
    err = _failure(_evidence(sim_gpu.faulty_chain_pem(WORLD.seed, WORLD.devices, WORLD.gpu(0), fault)))
    assert (type(err), err.reason) == (CheckFailed, reason)
    assert needle in err.message


def test_every_chain_fault_has_a_negative_test() -> None:
    tested = {
        "intermediate_not_ca",
        "intermediate_no_basic_constraints",
        "intermediate_path_len",
        "intermediate_no_cert_sign",
        "intermediate_expired",
        "leaf_no_digital_signature",
    }
    assert set(sim_gpu.CHAIN_FAULTS) == tested


def test_validity_is_judged_at_the_injected_time_not_the_clock() -> None:
    ev = _evidence(sim_gpu.faulty_chain_pem(WORLD.seed, WORLD.devices, WORLD.gpu(0), "intermediate_expired"))
    verify_gpu(ev, root_pem=ROOT, now=1_700_000_000)  # 2023-11: the re-issued ICA (2022-03..2024-03) is valid then
    assert _failure(ev, now=NOW).reason == "gpu_cert_expired"


def test_a_chain_in_another_order_fails() -> None:
    dev = WORLD.gpu(0)
    d = WORLD.devices
    assert _failure(_evidence(_pem(dev.leaf, d.ica, dev.brom, d.identity, d.root))).reason == "gpu_cert_chain_invalid"


def test_the_root_copy_in_the_middle_of_the_chain_fails() -> None:
    dev = WORLD.gpu(0)
    d = WORLD.devices
    assert _failure(_evidence(_pem(dev.leaf, dev.brom, d.root, d.ica, d.identity))).reason == "gpu_cert_chain_invalid"


# ---------------------------------------------------------------- key types other than EC P-384


def _dsa_key() -> dsa.DSAPublicKey:
    return dsa.generate_private_key(1024).public_key()


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ed448.Ed448PrivateKey.generate().public_key(),
        lambda: ed25519.Ed25519PrivateKey.generate().public_key(),
        lambda: keys.fixed_rsa_key().public_key(),
        _dsa_key,
        lambda: ec.generate_private_key(ec.SECP256R1()).public_key(),
    ],
    ids=["ed448", "ed25519", "rsa", "dsa", "p256"],
)
def test_a_leaf_with_another_key_type_fails_the_chain_with_a_clear_reason(make_key: object) -> None:
    dev = WORLD.gpu(0)
    leaf = sim_gpu.leaf_with_key(WORLD.seed, dev, make_key())  # type: ignore[operator]
    d = WORLD.devices
    err = _failure(_evidence(_pem(leaf, dev.brom, d.ica, d.identity, d.root)))
    assert (type(err), err.reason) == (CheckFailed, "gpu_cert_chain_invalid")
    assert "not EC P-384" in err.message and "certificate 0" in err.message


def _leaf_der() -> bytes:
    return WORLD.gpu(0).leaf.public_bytes(serialization.Encoding.DER)


def _rest() -> list[x509.Certificate]:
    dev, d = WORLD.gpu(0), WORLD.devices
    return [dev.brom, d.ica, d.identity, d.root]


@pytest.mark.parametrize("version", [b"\x03", b"\x05", b"\x7f"])
def test_a_certificate_with_an_invalid_x509_version_is_evidence_error(version: bytes) -> None:
    der = _leaf_der()
    i = der.index(bytes.fromhex("a003020102"))  # [0] EXPLICIT Version v3 (2)
    bad = der[: i + 4] + version + der[i + 5 :]
    err = _failure(_evidence(_pem(bad, *_rest())))
    assert type(err) is EvidenceError and "X.509" in err.message


def test_a_certificate_with_an_unknown_key_algorithm_is_evidence_error() -> None:
    der = _leaf_der()
    ec_oid = bytes.fromhex("06072a8648ce3d0201")  # id-ecPublicKey
    bad = der.replace(ec_oid, bytes.fromhex("06072a8648ce3d0209"), 1)  # 1.2.840.10045.2.9: no such key type
    err = _failure(_evidence(_pem(bad, *_rest())))
    assert type(err) is EvidenceError and "unknown type" in err.message


def test_a_certificate_with_a_duplicated_extension_is_a_project_error() -> None:
    der = _leaf_der()
    ku = bytes.fromhex("0603551d0f")  # keyUsage OID inside an Extension
    assert ku in der
    err = _failure(_evidence(_pem(der.replace(ku, bytes.fromhex("0603551d0e"), 1), *_rest())))  # now two SKIs
    assert err.reason in ("malformed_evidence", "gpu_cert_chain_invalid")


# ---------------------------------------------------------------- property tests: mutated evidence and chains


_REAL_CERTS = x509.load_pem_x509_certificates(REAL.certificate_pem)
_REAL_DERS = [c.public_bytes(serialization.Encoding.DER) for c in _REAL_CERTS]


@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")  # mutated serials
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(0, len(_REAL_DERS) - 1),
    pos=st.integers(0, 2000),
    byte=st.integers(0, 255),
    cut=st.one_of(st.none(), st.integers(0, 2000)),
)
def test_mutated_device_certificates_raise_only_project_errors(
    which: int, pos: int, byte: int, cut: int | None
) -> None:
    der = bytearray(_REAL_DERS[which])
    der[pos % len(der)] = byte
    mutated = bytes(der)[:cut] if cut is not None else bytes(der)
    ders = [*_REAL_DERS[:which], mutated, *_REAL_DERS[which + 1 :]]
    ev = GpuEvidence(0, "HOPPER", _pem(*ders), REAL.evidence, None)
    try:
        verify_gpu(ev, root_pem=REAL_ROOT, now=REAL_NOW)
    except (CheckFailed, EvidenceError):
        return
    # what passes is unchanged, or the GPU's own root copy, which is dropped unread (the pinned root is used)
    assert mutated == _REAL_DERS[which] or which == len(_REAL_DERS) - 1


@settings(max_examples=150, deadline=None)
@given(
    order=st.permutations(range(len(_REAL_DERS))),
    keep=st.integers(1, len(_REAL_DERS)),
    extra=st.lists(st.binary(max_size=64), max_size=2),
)
def test_shuffled_truncated_or_padded_chains_raise_only_project_errors(
    order: list[int], keep: int, extra: list[bytes]
) -> None:
    pem = _pem(*[_REAL_DERS[i] for i in order[:keep]], *extra)
    try:
        g = verify_gpu(GpuEvidence(0, "HOPPER", pem, REAL.evidence, None), root_pem=REAL_ROOT, now=REAL_NOW)
    except (CheckFailed, EvidenceError):
        return
    assert order[:4] == [0, 1, 2, 3] and not extra and g.driver_version == "570.172.08"  # only the genuine order passes


@settings(max_examples=200, deadline=None)
@given(pos=st.integers(0, len(REAL.evidence) - 1), byte=st.integers(0, 255))
def test_mutated_spdm_evidence_raises_only_project_errors(pos: int, byte: int) -> None:
    ev = bytearray(REAL.evidence)
    if ev[pos] == byte:
        return
    ev[pos] = byte
    with pytest.raises((CheckFailed, EvidenceError)):
        verify_gpu(GpuEvidence(0, "HOPPER", REAL.certificate_pem, bytes(ev), None), root_pem=REAL_ROOT, now=REAL_NOW)


@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")  # mutated serials
@settings(max_examples=100, deadline=None)
@given(text=st.binary(max_size=300))
def test_arbitrary_pem_blobs_raise_only_project_errors(text: bytes) -> None:
    for pem in (text, b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(text) + b"-----END CERTIFICATE-----\n"):
        with pytest.raises((CheckFailed, EvidenceError)):
            verify_gpu(GpuEvidence(0, "HOPPER", pem, REAL.evidence, None), root_pem=REAL_ROOT, now=REAL_NOW)


def test_the_world_payload_knob_puts_the_chain_fault_in_every_entry() -> None:
    payload = parse_nvidia_payload(WORLD.gpu_payload(NONCE, 2, chain_fault="intermediate_path_len"))
    for ev in payload.evidence:
        assert _failure(ev).reason == "gpu_cert_chain_invalid"
