"""The simulator's evidence is real-format and verifies under its TEST anchors (and only under them).

TDX: dcap-qvl itself is the oracle (accept UpToDate; reject a flipped TD-report byte, expired
collateral, a DEBUG TD). GPU and NRAS: checked with cryptography and PyJWT directly, not with the
project's verifiers, so a shared misunderstanding cannot hide.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import struct
import time
from pathlib import Path

import dcap_qvl
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verifier.core.trust import SIMULATOR
from verifier.simulator import SimulatorWorld, simulator_anchors
from verifier.simulator.event_log import RUNTIME_EVENT_TYPE, replay
from verifier.simulator.nras import ISSUER
from verifier.simulator.pki import SGX_EXTENSION_OID

NOW = 1_790_000_000  # 2026-09-21
NONCE = bytes.fromhex("9a796732359e9324a45576a730e5a9c47bff518b8ee8bcb882d00b5b1ff6f39a")
SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "tdx" / "dcap-qvl-samples"


@pytest.fixture(scope="module")
def world() -> SimulatorWorld:
    return SimulatorWorld(b"test-simulator-pki")


def _report_data(world: SimulatorWorld) -> bytes:
    return bytes(20) + bytes(12) + NONCE  # dstack ecdsa layout: address ‖ 12 zero bytes ‖ nonce


def _verify(world: SimulatorWorld, quote: bytes, collateral: str, now: int = NOW) -> dcap_qvl.VerifiedReport:
    return dcap_qvl.verify_with_root_ca(
        quote, dcap_qvl.QuoteCollateralV3.from_json(collateral), world.anchors.intel_root_ca_der, now
    )


# ---------------------------------------------------------------- TDX: dcap-qvl accepts and rejects


def test_dcap_qvl_accepts_the_quote_up_to_date(world: SimulatorWorld) -> None:
    report = _verify(world, world.tdx_quote(_report_data(world)), world.collateral_json(NOW))
    assert report.status == "UpToDate"
    assert report.advisory_ids == []
    td = json.loads(report.to_json())["report"]["TD10"]
    assert td["report_data"] == _report_data(world).hex()
    assert td["td_attributes"] == "0000001000000000"  # SEPT_VE_DISABLE only, like every real quote


def test_a_flipped_td_report_byte_breaks_the_quote_signature(world: SimulatorWorld) -> None:
    quote = bytearray(world.tdx_quote(_report_data(world)))
    quote[48 + 136] ^= 0x01  # first byte of MRTD
    with pytest.raises(ValueError, match="ISV enclave report signature is invalid"):
        _verify(world, bytes(quote), world.collateral_json(NOW))


def test_expired_collateral_is_rejected(world: SimulatorWorld) -> None:
    quote = world.tdx_quote(_report_data(world))
    with pytest.raises(ValueError, match="TCBInfo expired"):
        _verify(world, quote, world.collateral_json(NOW, expired=True))
    fresh = world.collateral_json(NOW)
    next_update = json.loads(json.loads(fresh)["tcb_info"])["nextUpdate"]
    assert next_update == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 3600 + 30 * 86400))
    with pytest.raises(ValueError, match="TCBInfo expired"):
        _verify(world, quote, fresh, NOW - 3600 + 30 * 86400 + 1)
    with pytest.raises(ValueError, match="issue date is in the future"):
        _verify(world, quote, fresh, NOW - 7200)


def test_a_debug_td_is_rejected(world: SimulatorWorld) -> None:
    with pytest.raises(ValueError, match="Debug mode is enabled"):
        _verify(world, world.tdx_quote(_report_data(world), debug=True), world.collateral_json(NOW))


def test_the_real_intel_root_rejects_simulated_collateral(world: SimulatorWorld) -> None:
    with pytest.raises(ValueError, match="root CA CRL"):
        dcap_qvl.verify(
            world.tdx_quote(_report_data(world)), dcap_qvl.QuoteCollateralV3.from_json(world.collateral_json(NOW)), NOW
        )


def test_collateral_knobs_revocation_and_tcb_status(world: SimulatorWorld) -> None:
    quote = world.tdx_quote(_report_data(world))
    with pytest.raises(ValueError, match="CertRevoked"):
        _verify(world, quote, world.collateral_json(NOW, revoke_pck=True))
    report = _verify(
        world, quote, world.collateral_json(NOW, tcb_status="SWHardeningNeeded", advisory_ids=("INTEL-SA-00615",))
    )
    assert (report.status, report.advisory_ids) == ("SWHardeningNeeded", ["INTEL-SA-00615"])


def test_another_world_cannot_vouch_for_this_quote(world: SimulatorWorld) -> None:
    other = SimulatorWorld(b"another seed")
    with pytest.raises(ValueError):
        _verify(other, world.tdx_quote(_report_data(world)), other.collateral_json(NOW))


# ---------------------------------------------------------------- TDX: structure mirrors the real sample


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def _sgx_ext(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID)).value.value


def test_pck_chain_and_extension_mirror_the_real_sample(world: SimulatorWorld) -> None:
    real = dcap_qvl.parse_quote((SAMPLES / "tdx_quote.bin").read_bytes())
    sim = dcap_qvl.parse_quote(world.tdx_quote(_report_data(world)))
    real_chain = x509.load_pem_x509_certificates(real.cert_chain_pem_bytes())
    sim_chain = x509.load_pem_x509_certificates(sim.cert_chain_pem_bytes())
    assert (
        [_cn(c) for c in sim_chain]
        == [_cn(c) for c in real_chain]
        == ["Intel SGX PCK Certificate", "Intel SGX PCK Platform CA", "Intel SGX Root CA"]
    )
    assert sim_chain[-1].public_bytes(serialization.Encoding.DER) == world.anchors.intel_root_ca_der
    for r, s in zip(real_chain, sim_chain, strict=True):
        assert [(e.oid, e.critical) for e in r.extensions] == [(e.oid, e.critical) for e in s.extensions]
    # Same ASN.1 byte for byte, except the two per-platform identifiers (PPID, PlatformInstanceID).
    r_ext, s_ext = _sgx_ext(real_chain[0]), _sgx_ext(sim_chain[0])
    assert len(r_ext) == len(s_ext)
    assert [i for i in range(len(r_ext)) if r_ext[i] != s_ext[i]] <= [*range(20, 36), *range(468, 484)]
    r_pck, s_pck = real.pck_extension(), sim.pck_extension()
    for field in ("cpu_svn", "pce_svn", "pce_id", "fmspc", "sgx_type"):
        assert getattr(r_pck, field) == getattr(s_pck, field)
    assert (sim.fmspc(), sim.ca(), sim.header.qe_vendor_id.hex()) == (
        "B0C06F000000",
        "platform",
        "939a7233f79c4ca9940a0db3957f0607",
    )


def test_collateral_has_the_real_shape_and_signatures(world: SimulatorWorld) -> None:
    real = json.loads((SAMPLES / "tdx_quote_collateral.json").read_text())
    sim = json.loads(world.collateral_json(NOW))
    assert set(sim) == set(real) - {"pck_certificate_chain"}
    for part in ("tcb_info", "qe_identity"):
        assert list(json.loads(sim[part])) == list(json.loads(real[part]))
    tcb = json.loads(sim["tcb_info"])
    assert [m["id"] for m in tcb["tdxModuleIdentities"]] == ["TDX_03", "TDX_01"]
    assert list(tcb["tcbLevels"][0]["tcb"]) == ["sgxtcbcomponents", "pcesvn", "tdxtcbcomponents"]
    # ECDSA P-256 over the exact JSON bytes, raw r‖s, by the first cert of the issuer chain
    signer = x509.load_pem_x509_certificates(sim["tcb_info_issuer_chain"].encode())[0]
    for body, sig in ((sim["tcb_info"], sim["tcb_info_signature"]), (sim["qe_identity"], sim["qe_identity_signature"])):
        raw = bytes.fromhex(sig)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        signer.public_key().verify(der, body.encode(), ec.ECDSA(hashes.SHA256()))
    root_crl = x509.load_der_x509_crl(bytes.fromhex(sim["root_ca_crl"]))
    assert root_crl.is_signature_valid(x509.load_der_x509_certificate(world.anchors.intel_root_ca_der).public_key())


def test_quote_layout_matches_dcap_qvl_md_4_1(world: SimulatorWorld) -> None:
    quote = world.tdx_quote(_report_data(world))
    assert struct.unpack_from("<HHI", quote, 0) == (4, 2, 0x81)
    assert quote[568:632] == _report_data(world)
    sig_len = struct.unpack_from("<I", quote, 632)[0]
    assert len(quote) == 636 + sig_len
    assert struct.unpack_from("<H", quote, 764)[0] == 6
    qe_report = quote[770:1154]
    auth_len = struct.unpack_from("<H", quote, 1218)[0]
    assert qe_report[320:352] == hashlib.sha256(quote[700:764] + quote[1220 : 1220 + auth_len]).digest()
    assert struct.unpack_from("<H", quote, 1220 + auth_len)[0] == 5


# ---------------------------------------------------------------- dstack event log ↔ quote


def test_event_log_replays_to_the_quote_rtmrs_and_binds_the_compose(world: SimulatorWorld) -> None:
    td = dcap_qvl.parse_quote(world.tdx_quote(_report_data(world))).report
    events = world.event_log
    assert replay(events) == (td.rt_mr0, td.rt_mr1, td.rt_mr2, td.rt_mr3)
    runtime = [e for e in events if e["imr"] == 3]
    assert [e["event"] for e in runtime] == [
        "system-preparing",
        "app-id",
        "compose-hash",
        "instance-id",
        "boot-mr-done",
        "mr-kms",
        "os-image-hash",
        "key-provider",
        "storage-fs",
        "system-ready",
    ]
    for e in runtime:
        pre = (
            struct.pack("<I", RUNTIME_EVENT_TYPE)
            + b":"
            + e["event"].encode()
            + b":"
            + bytes.fromhex(e["event_payload"])
        )
        assert e["digest"] == hashlib.sha384(pre).hexdigest()
    compose_hash = hashlib.sha256(world.app_compose.encode()).digest()
    assert next(e for e in runtime if e["event"] == "compose-hash")["event_payload"] == compose_hash.hex()
    assert td.mr_config_id == b"\x01" + compose_hash + bytes(15)
    info = world.info()
    assert info["compose_hash"] == compose_hash.hex() and info["tcb_info"]["rtmr3"] == td.rt_mr3.hex()
    assert info["tcb_info"]["mrtd"] == td.mr_td.hex()


def test_another_app_changes_rtmr3_and_mr_config_id_only(world: SimulatorWorld) -> None:
    other = world.with_app_compose('{"manifest_version":2,"name":"other"}')
    a = dcap_qvl.parse_quote(world.tdx_quote(_report_data(world))).report
    b = dcap_qvl.parse_quote(other.tdx_quote(_report_data(world))).report
    assert (a.rt_mr0, a.rt_mr1, a.rt_mr2, a.mr_td) == (b.rt_mr0, b.rt_mr1, b.rt_mr2, b.mr_td)
    assert a.rt_mr3 != b.rt_mr3 and a.mr_config_id != b.mr_config_id
    assert _verify(other, other.tdx_quote(b"x"), other.collateral_json(NOW)).status == "UpToDate"


# ---------------------------------------------------------------- NVIDIA GPU evidence


def _items(payload: str) -> list[tuple[list[x509.Certificate], bytes]]:
    body = json.loads(payload)
    return [
        (x509.load_pem_x509_certificates(base64.b64decode(i["certificate"])), base64.b64decode(i["evidence"]))
        for i in body["evidence_list"]
    ]


def test_gpu_payload_shape_nonce_and_spdm_signature(world: SimulatorWorld) -> None:
    payload = world.gpu_payload(NONCE, 2)
    body = json.loads(payload)
    assert list(body) == ["nonce", "evidence_list", "arch"] and body["nonce"] == NONCE.hex()
    assert [list(i) for i in body["evidence_list"]] == [["certificate", "evidence", "arch"]] * 2
    for chain, evidence in _items(payload):
        assert evidence[:4] == bytes([0x11, 0xE0, 0x01, 0xFF]) and evidence[4:36] == NONCE
        assert evidence[41] == 64 and int.from_bytes(evidence[42:45], "little") == 64 * 55
        sig = evidence[-96:]
        der = encode_dss_signature(int.from_bytes(sig[:48], "big"), int.from_bytes(sig[48:], "big"))
        chain[0].public_key().verify(der, evidence[:-96], ec.ECDSA(hashes.SHA384()))


def test_gpu_device_chain_verifies_to_the_pinned_root_and_carries_the_fwid(world: SimulatorWorld) -> None:
    root = x509.load_pem_x509_certificate(world.anchors.nvidia_device_root_pem)
    for chain, evidence in _items(world.gpu_payload(NONCE, 2)):
        assert len(chain) == 5 and chain[-1] == root
        for child, parent in itertools.pairwise(chain):
            child.verify_directly_issued_by(parent)
        assert [_cn(c) for c in chain] == [
            "GH100 A01 GSP FMC LF",
            "GH100 A01 GSP BROM",
            "NVIDIA GH100 Provisioner ICA 1",
            "NVIDIA GH100 Identity",
            "NVIDIA Device Identity CA",
        ]
        tcb_info = chain[0].extensions.get_extension_for_oid(x509.ObjectIdentifier("2.23.133.5.4.1")).value.value
        opaque = evidence[45 + 64 * 55 + 34 : -96]
        pos, fwid = 0, None
        while pos < len(opaque):
            t, n = struct.unpack_from("<HH", opaque, pos)
            fwid = opaque[pos + 4 : pos + 4 + n] if t == 20 else fwid
            pos += 4 + n
        assert fwid == tcb_info[-48:]


def test_wrong_nonce_substitutes_the_nonce_everywhere(world: SimulatorWorld) -> None:
    payload = world.gpu_payload(NONCE, 1, wrong_nonce=True)
    ((_, evidence),) = _items(payload)
    assert evidence[4:36] != NONCE and json.loads(payload)["nonce"] == evidence[4:36].hex()


# ---------------------------------------------------------------- NRAS


def _decode(token: str, jwks: dict) -> dict:
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    return jwt.decode(
        token,
        jwt.PyJWK(key, algorithm="ES384").key,
        algorithms=["ES384"],
        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
    )


def test_nras_tokens_verify_with_the_jwks_and_submods_match(world: SimulatorWorld) -> None:
    response = json.loads(json.dumps(world.nras_response(world.gpu_payload(NONCE, 3), now=NOW)))
    jwks = world.jwks()
    (kind, overall_jws), devices = response
    assert kind == "JWT" and list(devices) == ["GPU-0", "GPU-1", "GPU-2"]
    overall = _decode(overall_jws, jwks)
    assert overall["iss"] == ISSUER == world.anchors.nras_issuer
    assert overall["eat_nonce"] == NONCE.hex() and overall["x-nvidia-overall-att-result"] is True
    assert overall["iat"] == overall["nbf"] == NOW and overall["exp"] == NOW + 3600
    for name, token in devices.items():
        assert overall["submods"][name] == ["DIGEST", ["SHA-256", hashlib.sha256(token.encode("ascii")).hexdigest()]]
        claims = _decode(token, jwks)
        assert (claims["measres"], claims["secboot"], claims["dbgstat"], claims["hwmodel"]) == (
            "success",
            True,
            "disabled",
            "GH100",
        )
        assert (
            claims["x-nvidia-gpu-driver-version"] == "595.71.05"
            and claims["x-nvidia-gpu-vbios-version"] == "96.00.D9.00.02"
        )
        assert claims["ueid"] == str(world.gpu(int(name[4:])).leaf.serial_number)
    assert jwt.get_unverified_header(overall_jws) == {"kid": jwks["keys"][0]["kid"], "alg": "ES384"}


def test_nras_jwks_chains_to_the_pinned_intermediate(world: SimulatorWorld) -> None:
    (key,) = world.jwks()["keys"]
    assert list(key) == ["kty", "crv", "kid", "x5c", "x", "y"]
    leaf, inter = (x509.load_der_x509_certificate(base64.b64decode(c)) for c in key["x5c"])
    assert base64.b64decode(key["x5c"][1]) == world.anchors.nras_intermediate_der
    leaf.verify_directly_issued_by(inter)
    assert inter.public_key().key_size == 2048 and leaf.public_key().curve.name == "secp384r1"


def test_nras_failure_tokens(world: SimulatorWorld) -> None:
    jwks = world.jwks()
    for response in (
        world.nras_response(world.gpu_payload(NONCE, 2), now=NOW, fail=True),
        world.nras_response(json.loads(world.gpu_payload(NONCE, 2)) | {"nonce": "00" * 32}, now=NOW),
    ):
        (_, overall_jws), devices = response
        assert _decode(overall_jws, jwks)["x-nvidia-overall-att-result"] is False
        for token in devices.values():
            details = _decode(token, jwks)["x-nvidia-error-details"]
            assert (details["code"], details["message"]) == (4010, "NONCE_NOT_MATCHING")


# ---------------------------------------------------------------- anchors, determinism, speed


def test_simulator_anchors_profile() -> None:
    anchors = simulator_anchors()
    assert anchors.name == SIMULATOR and anchors.is_simulator
    assert anchors.nras_issuer == "https://nras.simulator.invalid"
    assert anchors == SimulatorWorld().anchors  # default seed: the same bytes in every process


def test_same_seed_same_bytes_other_seed_other_roots() -> None:
    a, b, c = SimulatorWorld(b"s1"), SimulatorWorld(b"s1"), SimulatorWorld(b"s2")
    assert a.tdx_quote(b"rd") == b.tdx_quote(b"rd") and a.collateral_json(NOW) == b.collateral_json(NOW)
    assert a.gpu_payload(NONCE, 2) == b.gpu_payload(NONCE, 2)
    assert a.nras_response(a.gpu_payload(NONCE), now=NOW) == b.nras_response(b.gpu_payload(NONCE), now=NOW)
    fa, fc = a.anchors.fingerprints(), c.anchors.fingerprints()
    assert all(fa[k] != fc[k] for k in fa)


def test_a_full_world_is_fast() -> None:
    start = time.perf_counter()
    w = SimulatorWorld(b"speed")
    quote, collateral = w.tdx_quote(b"rd"), w.collateral_json(NOW)
    w.nras_response(w.gpu_payload(NONCE, 8), now=NOW)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"world + quote + collateral + 8-GPU payload + NRAS took {elapsed:.3f} s"
    assert _verify(w, quote, collateral).status == "UpToDate"
