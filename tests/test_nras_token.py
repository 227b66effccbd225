"""Offline verification of NRAS v3 detached-EAT responses: signatures, key chain (RFC 5280), claims, device pairing."""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate
from verifier.core.trust import production_anchors
from verifier.evidence.gpu_cert import GpuIdentity, gpu_identities
from verifier.evidence.gpu_payload import parse_nvidia_payload
from verifier.simulator import SimulatorWorld
from verifier.simulator import nras as sim_nras
from verifier.verify.memo import Memo
from verifier.verify.nras_token import verify_nras_response

FIX = Path(__file__).resolve().parent.parent / "fixtures"
ANCHORS = production_anchors()
TODAY = 1795000000


def _devices(path: str, *keys: str | int) -> tuple[GpuIdentity, ...]:
    """The identities of the evidence NRAS was asked about: the recorded request, or the report's payload."""
    doc: Any = json.loads((FIX / path).read_text())
    for k in keys:
        doc = doc[k]
    return gpu_identities(parse_nvidia_payload(doc).evidence)


class Case:
    def __init__(self, folder: str, jwks: str, nonce: str, devices: tuple[GpuIdentity, ...], iat: int) -> None:
        self.body = (FIX / folder / "nras_v3_response.json").read_bytes()
        self.jwks = json.loads((FIX / jwks).read_text())
        self.nonce, self.devices, self.gpus, self.now = bytes.fromhex(nonce), devices, len(devices), iat + 30

    def verify(self, body: bytes | list[Any] | None = None, **over: Any) -> Any:
        args: dict[str, Any] = {
            "jwks": self.jwks,
            "expected_nonce": self.nonce,
            "devices": self.devices,
            "now": self.now,
            "anchors": ANCHORS,
        }
        return verify_nras_response(self.body if body is None else body, **{**args, **over})

    def reason(self, body: bytes | list[Any] | None = None, **over: Any) -> str:
        with pytest.raises((CheckFailed, Indeterminate)) as exc:
            self.verify(body, **over)
        return exc.value.reason

    def tokens(self) -> list[Any]:
        return json.loads(self.body)


_NEAR_DIR = "redpill/attestation/nearcloud-two-layer-ed25519-tls-20260629"
_GEMMA_DIR = "redpill/attestation/phala-flat-ecdsa-nanogpt-gemma-20260610"
SINGLE = Case(
    "nvidia/single-gpu-nras-20260629",
    "nvidia/single-gpu-nras-20260629/nras_jwks.json",
    "080c405ce6789e1761445180029523df3ae49576043f7f0868413a38e5e9a84e",
    _devices("nvidia/single-gpu-nras-20260629/nras_v3_request.json"),
    1782698883,
)
GEMMA = Case(
    _GEMMA_DIR,
    "nvidia/redpill-chutes-8gpu-nras-fail-20260610/nras_jwks.json",
    "9a796732359e9324a45576a730e5a9c47bff518b8ee8bcb882d00b5b1ff6f39a",
    _devices(f"{_GEMMA_DIR}/attestation_report.json", "nvidia_payload"),
    1781056142,
)
NEAR = Case(
    _NEAR_DIR,
    f"{_NEAR_DIR}/nras_jwks.json",
    "e79c2ec87ccfa76f3aef88deec0687facbd85d1689d82b0cc2de1353f7a62609",
    _devices(f"{_NEAR_DIR}/attestation_report.json", "model_attestations", 0, "nvidia_payload"),
    1782698812,
)
CHUTES = Case(
    "nvidia/redpill-chutes-8gpu-nras-fail-20260610",
    "nvidia/redpill-chutes-8gpu-nras-fail-20260610/nras_jwks.json",
    "aa8aa7cb237cb07d054e2ba1c1660b6d6bf60a1501e4d33bec8115148543e501",
    _devices("nvidia/redpill-chutes-8gpu-nras-fail-20260610/nras_v3_request.json"),
    1781056156,
)
GENUINE = [SINGLE, GEMMA, NEAR]


# ---------------------------------------------------------------- recorded rounds


@pytest.mark.parametrize("case", GENUINE, ids=["single", "gemma", "near8"])
def test_recorded_rounds_pass_at_their_time(case: Case) -> None:
    r = case.verify()
    assert r.overall and r.nonce == case.nonce.hex() and len(r.gpus) == case.gpus
    assert all(
        g.measres == "success" and g.secboot and g.dbgstat == "disabled" and g.hwmodel == "GH100" for g in r.gpus
    )
    assert [g.name for g in r.gpus] == [f"GPU-{i}" for i in range(case.gpus)]
    assert r.kid.startswith("nv-eat-kid-prod-") and r.exp == r.iat + 3600
    json.dumps(r.to_json())


def test_gemma_claims() -> None:
    g = GEMMA.verify().gpus[0]
    assert (g.driver_version, g.vbios_version) == ("570.172.08", "96.00.D0.00.03")


def test_body_may_be_a_decoded_list() -> None:
    assert SINGLE.verify(SINGLE.tokens()).overall


def test_chutes_failure_token_is_result_false_with_the_nras_error() -> None:
    with pytest.raises(CheckFailed) as exc:
        CHUTES.verify()
    assert exc.value.reason == "nras_result_false"
    assert "GPU-0" in exc.value.message and "4010 NONCE_NOT_MATCHING (nonce)" in exc.value.message
    assert exc.value.details["gpus"]["GPU-7"] == "4010 NONCE_NOT_MATCHING (nonce)"


@pytest.mark.parametrize("case", [*GENUINE, CHUTES], ids=["single", "gemma", "near8", "chutes"])
def test_tokens_are_expired_today(case: Case) -> None:
    assert case.reason(now=TODAY) == "nras_token_expired"


def test_leeway_bounds_expiry_and_not_before() -> None:
    iat = SINGLE.now - 30
    SINGLE.verify(now=iat + 3600 + 60)
    assert SINGLE.reason(now=iat + 3600 + 61) == "nras_token_expired"
    SINGLE.verify(now=iat - 60)
    assert SINGLE.reason(now=iat - 61) == "nras_token_expired"
    assert SINGLE.reason(now=iat + 3601, leeway=0) == "nras_token_expired"


def test_genuine_token_against_another_nonce() -> None:
    assert SINGLE.reason(expected_nonce=b"\x00" * 32) == "nras_nonce_mismatch"
    assert NEAR.reason(expected_nonce=SINGLE.nonce) == "nras_nonce_mismatch"


def test_unknown_kid_is_indeterminate() -> None:
    assert SINGLE.reason(jwks={"keys": []}) == "nras_jwks_unavailable"
    # the 2026-06-10 JWKS snapshot does not hold the 2026-06-28 key
    with pytest.raises(Indeterminate) as exc:
        SINGLE.verify(jwks=CHUTES.jwks)
    assert exc.value.reason == "nras_jwks_unavailable" and "nv-eat-kid-prod-20260628" in exc.value.details["kid"]


# ---------------------------------------------------------------- forged tokens


def _b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def _kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def test_token_resigned_with_a_fresh_key_under_the_same_kid() -> None:
    body = SINGLE.tokens()
    attacker = ec.generate_private_key(ec.SECP384R1())
    tok = body[0][1]
    body[0][1] = jwt.encode(_claims(tok), attacker, algorithm="ES384", headers={"kid": _kid(tok)})
    assert SINGLE.reason(body) == "nras_token_invalid"


def _self_made_jwks(
    kid: str, leaf_key: ec.EllipticCurvePrivateKey, *, intermediate_der: bytes | None = None
) -> dict[str, Any]:
    inter_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    genuine_inter = x509.load_der_x509_certificate(ANCHORS.nras_intermediate_der)
    name = genuine_inter.subject
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    inter = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(genuine_inter.issuer)
        .public_key(inter_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(inter_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=NVIDIA Attestation Service GPU GH100"))
        .issuer_name(name)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(inter_key, hashes.SHA256())
    )
    nums = leaf_key.public_key().public_numbers()
    inter_der = intermediate_der or inter.public_bytes(serialization.Encoding.DER)
    return {
        "keys": [
            {
                "kty": "EC",
                "crv": "P-384",
                "kid": kid,
                "x": _b64u(nums.x.to_bytes(48, "big")),
                "y": _b64u(nums.y.to_bytes(48, "big")),
                "x5c": [
                    base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode(),
                    base64.b64encode(inter_der).decode(),
                ],
            }
        ]
    }


def _resign_all(body: list[Any], key: ec.EllipticCurvePrivateKey) -> list[Any]:
    """Re-sign every token with ``key`` and fix up the submods, as a full forgery would."""
    kid = _kid(body[0][1])
    devices = {n: jwt.encode(_claims(t), key, algorithm="ES384", headers={"kid": kid}) for n, t in body[1].items()}
    overall = _claims(body[0][1])
    overall["submods"] = {
        n: ["DIGEST", ["SHA-256", hashlib.sha256(t.encode()).hexdigest()]] for n, t in devices.items()
    }
    return [["JWT", jwt.encode(overall, key, algorithm="ES384", headers={"kid": kid})], devices]


@pytest.mark.parametrize("pin_intermediate", [False, True], ids=["self-made-x5c", "genuine-x5c1"])
def test_attacker_jwks_with_self_made_x5c(pin_intermediate: bool) -> None:
    attacker = ec.generate_private_key(ec.SECP384R1())
    body = _resign_all(SINGLE.tokens(), attacker)
    jwks = _self_made_jwks(
        _kid(body[0][1]), attacker, intermediate_der=ANCHORS.nras_intermediate_der if pin_intermediate else None
    )
    assert SINGLE.reason(body, jwks=jwks) == "nras_token_invalid"


def test_genuine_x5c_with_attacker_xy() -> None:
    attacker = ec.generate_private_key(ec.SECP384R1())
    body = _resign_all(SINGLE.tokens(), attacker)
    jwks = copy.deepcopy(SINGLE.jwks)
    nums = attacker.public_key().public_numbers()
    for k in jwks["keys"]:
        k["x"], k["y"] = _b64u(nums.x.to_bytes(48, "big")), _b64u(nums.y.to_bytes(48, "big"))
    assert SINGLE.reason(body, jwks=jwks) == "nras_token_invalid"


def test_alg_none_and_hs256_are_rejected() -> None:
    tok = SINGLE.tokens()[0][1]
    kid = _kid(tok)
    head = _b64u(json.dumps({"alg": "none", "kid": kid}).encode())
    none_tok = f"{head}.{tok.split('.')[1]}."
    jwk = next(k for k in SINGLE.jwks["keys"] if k["kid"] == kid)
    secret = base64.b64decode(jwk["x5c"][0])  # classic confusion: the public cert as an HMAC key
    signing_input = f"{_b64u(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{tok.split('.')[1]}"
    hs_tok = f"{signing_input}.{_b64u(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    for forged in (none_tok, hs_tok):
        body = SINGLE.tokens()
        body[0][1] = forged
        assert SINGLE.reason(body) == "nras_token_invalid"


def test_tampered_device_token_payload_breaks_its_signature() -> None:
    body = SINGLE.tokens()
    h, p, s = body[1]["GPU-0"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=="))
    claims["measres"] = "success"
    claims["secboot"] = True
    claims["x-nvidia-gpu-driver-version"] = "999.0"
    body[1]["GPU-0"] = f"{h}.{_b64u(json.dumps(claims).encode())}.{s}"
    assert SINGLE.reason(body) == "nras_token_invalid"


def test_swapped_device_tokens_break_the_submods() -> None:
    body = NEAR.tokens()
    body[1]["GPU-0"], body[1]["GPU-1"] = body[1]["GPU-1"], body[1]["GPU-0"]
    assert NEAR.reason(body) == "nras_submod_mismatch"


def test_missing_or_extra_device_tokens_break_the_submods() -> None:
    body = NEAR.tokens()
    del body[1]["GPU-7"]
    assert NEAR.reason(body) == "nras_submod_mismatch"
    assert NEAR.reason(devices=NEAR.devices[:7]) == "nras_submod_mismatch"
    extra = GpuIdentity(8, "1", "GH100 A01 GSP BROM", "00", "00")
    assert NEAR.reason(devices=(*NEAR.devices, extra)) == "nras_submod_mismatch"
    body = NEAR.tokens()
    body[1]["GPU-8"] = body[1]["GPU-0"]
    assert NEAR.reason(body) == "nras_submod_mismatch"


# ---------------------------------------------------------------- claims, with a test PKI posing as NRAS


class FakeNras:
    """The simulator's NRAS signing PKI (RFC 5280-conformant, pinned through test TrustAnchors); mints any claims."""

    def __init__(self, fault: str | None = None) -> None:
        pki = sim_nras.build_nras_pki(b"test_nras_token", fault=fault)
        self.key, self.jwks, self.kid = pki.leaf_key, pki.jwks(), pki.kid
        self.anchors = replace(ANCHORS, name="test", nras_intermediate_der=pki.intermediate_der)
        self.iat = 1790000000
        self.nonce = bytes(range(32))

    @staticmethod
    def devices(n: int = 2) -> tuple[GpuIdentity, ...]:
        return tuple(GpuIdentity(i, str(1000 + i), "GH100 A01 GSP BROM", f"leaf{i}", f"device{i}") for i in range(n))

    def body(
        self,
        n: int = 2,
        *,
        overall: dict[str, Any] | None = None,
        device: dict[str, Any] | None = None,
        per_gpu: dict[int, dict[str, Any]] | None = None,
    ) -> list[Any]:
        std = {
            "iss": ANCHORS.nras_issuer,
            "iat": self.iat,
            "nbf": self.iat,
            "exp": self.iat + 3600,
            "eat_nonce": self.nonce.hex(),
        }
        dev = {
            **std,
            "measres": "success",
            "secboot": True,
            "dbgstat": "disabled",
            "hwmodel": "GH100",
            "x-nvidia-gpu-driver-version": "570.172.08",
            "x-nvidia-gpu-vbios-version": "96.00.CF.00.02",
            **(device or {}),
        }
        devices = {
            f"GPU-{i}": jwt.encode(
                {"ueid": str(1000 + i), **dev, **(per_gpu or {}).get(i, {})},
                self.key,
                algorithm="ES384",
                headers={"kid": self.kid},
            )
            for i in range(n)
        }
        subs = {k: ["DIGEST", ["SHA-256", hashlib.sha256(v.encode()).hexdigest()]] for k, v in devices.items()}
        top = {**std, "x-nvidia-overall-att-result": True, "submods": subs, "x-nvidia-ver": "2.0", **(overall or {})}
        return [["JWT", jwt.encode(top, self.key, algorithm="ES384", headers={"kid": self.kid})], devices]

    def verify(self, body: list[Any], n: int = 2, **over: Any) -> Any:
        args = {
            "jwks": self.jwks,
            "expected_nonce": self.nonce,
            "devices": self.devices(n),
            "now": self.iat + 10,
            "anchors": self.anchors,
        }
        return verify_nras_response(json.dumps(body).encode(), **{**args, **over})

    def reason(self, body: list[Any], n: int = 2, **over: Any) -> str:
        with pytest.raises((CheckFailed, Indeterminate)) as exc:
            self.verify(body, n, **over)
        return exc.value.reason


@pytest.fixture(scope="module")
def fake() -> FakeNras:
    return FakeNras()


def test_fake_nras_positive(fake: FakeNras) -> None:
    assert fake.verify(fake.body()).gpus[1].driver_version == "570.172.08"


def test_the_production_anchors_reject_the_fake_nras(fake: FakeNras) -> None:
    assert fake.reason(fake.body(), anchors=ANCHORS) == "nras_token_invalid"


def test_submod_digest_tampered(fake: FakeNras) -> None:
    body = fake.body()
    subs = _claims(body[0][1])["submods"]
    subs["GPU-1"][1][1] = "00" * 32
    assert fake.reason(fake.body(overall={"submods": subs})) == "nras_submod_mismatch"
    subs["GPU-1"] = ["DIGEST", ["SHA-384", "00"]]
    assert fake.reason(fake.body(overall={"submods": subs})) == "nras_submod_mismatch"
    assert fake.reason(fake.body(overall={"submods": None})) == "nras_submod_mismatch"


@pytest.mark.parametrize(
    "device",
    [{"measres": "fail"}, {"secboot": False}, {"secboot": "true"}, {"dbgstat": "enabled"}, {"measres": None}],
)
def test_per_gpu_claims_must_be_acceptable(fake: FakeNras, device: dict[str, Any]) -> None:
    assert fake.reason(fake.body(device=device)) == "nras_claim_failed"


def test_overall_result_must_be_literally_true(fake: FakeNras) -> None:
    for value in (False, "true", 1, None):
        assert fake.reason(fake.body(overall={"x-nvidia-overall-att-result": value})) == "nras_result_false"


def test_wrong_issuer(fake: FakeNras) -> None:
    assert fake.reason(fake.body(overall={"iss": "https://nras.attestation-stg.nvidia.com"})) == "nras_token_invalid"
    assert fake.reason(fake.body(device={"iss": "LOCAL_GPU_VERIFIER"})) == "nras_token_invalid"


def test_device_eat_nonce_must_match_too(fake: FakeNras) -> None:
    assert fake.reason(fake.body(device={"eat_nonce": "00" * 32})) == "nras_nonce_mismatch"


def test_a_signing_certificate_not_yet_valid_at_the_verification_time_is_expired(fake: FakeNras) -> None:
    early = 1700000000  # 2023: before the simulator leaf's 2025-12-08 notBefore
    body = fake.body(overall={"iat": early, "nbf": early, "exp": early + 3600})
    assert fake.reason(body, now=early + 10) == "nras_token_expired"


def test_signatures_are_checked_before_claims(fake: FakeNras) -> None:
    body = fake.body(overall={"x-nvidia-overall-att-result": False})
    body[1]["GPU-1"] = body[1]["GPU-1"][:-4] + ("AAAA" if not body[1]["GPU-1"].endswith("AAAA") else "BBBB")
    assert fake.reason(body) == "nras_token_invalid"


# ---------------------------------------------------------------- garbage


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"{}",
        b"[]",
        b'[["JWT"], {}]',
        b'[["JWS", "a.b.c"], {}]',
        b'[["JWT", 5], {}]',
        b'[["JWT", "a.b.c"], []]',
        b'[["JWT", "a.b.c"], {"GPU-0": 1}]',
        b'[["JWT", "not a jwt"], {}]',
        b'[["JWT", "e30"], {}]',
        b'[["JWT", "W10.e30.AA"], {}]',
    ],
)
def test_garbage_bodies_are_evidence_errors(body: bytes) -> None:
    with pytest.raises(EvidenceError):
        SINGLE.verify(body)


@pytest.mark.parametrize("jwks", [None, [], {"keys": "x"}, {}])
def test_malformed_jwks_is_evidence_error(jwks: Any) -> None:
    with pytest.raises(EvidenceError):
        SINGLE.verify(jwks=jwks)


def test_malformed_jwk_entry_is_token_invalid() -> None:
    jwks = copy.deepcopy(SINGLE.jwks)
    for k in jwks["keys"]:
        k["x5c"] = ["!!", "!!"]
    assert SINGLE.reason(jwks=jwks) == "nras_token_invalid"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="ab.-_JWTGPU0eyJ", max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["GPU-0", "keys", "kid", "x5c", "JWT"]), inner, max_size=3)
    ),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(body=_json, jwks=_json)
def test_random_json_raises_only_verifier_errors(body: Any, jwks: Any) -> None:
    for b in (body, json.dumps(body).encode()):
        for j in (jwks, SINGLE.jwks):
            with contextlib.suppress(EvidenceError, CheckFailed, Indeterminate):
                verify_nras_response(
                    b, jwks=j, expected_nonce=SINGLE.nonce, devices=SINGLE.devices, now=SINGLE.now, anchors=ANCHORS
                )


# ---------------------------------------------------------------- the signing chain under RFC 5280 (simulator faults)


_LEAF_NOT_BEFORE = 1765152000  # 2025-12-08T00:00:00Z: the simulator NRAS leaf's notBefore
_FAULTY_LEAF_NOT_AFTER = 1765324800  # 2025-12-10T00:00:00Z: notAfter of the "leaf_expired" leaf


def test_signing_certificate_must_be_valid_at_iat_even_when_it_is_valid_now(fake: FakeNras) -> None:
    iat = _LEAF_NOT_BEFORE - 600  # signed before its certificate existed; the token itself is still live at `now`
    body = fake.body(overall={"iat": iat, "nbf": iat, "exp": iat + 3600})
    with pytest.raises(CheckFailed) as exc:
        fake.verify(body, now=_LEAF_NOT_BEFORE + 60)
    assert (
        exc.value.reason == "nras_token_invalid" and "outside its signing certificate's validity" in exc.value.message
    )


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        ("intermediate_not_ca", "depth 1"),
        ("intermediate_no_cert_sign", "depth 1"),
        ("leaf_no_digital_signature", "digitalSignature"),
    ],
)
def test_an_rfc5280_violation_of_the_pinned_signing_chain_is_token_invalid(fault: str, needle: str) -> None:
    faulty = FakeNras(fault)  # the faulty intermediate is the pinned one: only path validation can catch it
    with pytest.raises(CheckFailed) as exc:
        faulty.verify(faulty.body())
    assert exc.value.reason == "nras_token_invalid" and needle in exc.value.message


def test_a_signing_leaf_expired_at_the_verification_time_fails_while_the_token_is_live() -> None:
    iat, now = (
        _FAULTY_LEAF_NOT_AFTER - 600,
        _FAULTY_LEAF_NOT_AFTER + 600,
    )  # iat in the leaf's validity, token exp = iat + 1 h
    for fault, want in ((None, None), ("leaf_expired", "nras_token_expired")):
        nras = FakeNras(fault)
        body = nras.body(
            overall={"iat": iat, "nbf": iat, "exp": iat + 3600}, device={"iat": iat, "nbf": iat, "exp": iat + 3600}
        )
        if want is None:
            assert nras.verify(
                body, now=now
            ).overall  # control: the genuine simulator leaf (to 2049) passes at the same times
        else:
            with pytest.raises(CheckFailed) as exc:
                nras.verify(body, now=now)
            assert exc.value.reason == want and "path validation" in exc.value.message


def test_every_nras_chain_fault_has_a_negative_test() -> None:
    assert set(sim_nras.CHAIN_FAULTS) == {
        "intermediate_not_ca",
        "intermediate_no_cert_sign",
        "leaf_no_digital_signature",
        "leaf_expired",
    }


def test_a_remembered_signing_key_is_still_judged_at_each_verification_time() -> None:
    memo = Memo(8)
    SINGLE.verify(memo=memo)  # remembers the key, validated at SINGLE.now
    assert len(memo) == 1
    leaf = x509.load_der_x509_certificate(base64.b64decode(SINGLE.jwks["keys"][0]["x5c"][0]))
    assert leaf.not_valid_after_utc.timestamp() < TODAY
    assert (
        SINGLE.reason(now=TODAY, leeway=10**9, memo=memo) == "nras_token_expired"
    )  # token times waived: only the key's window fails


# ---------------------------------------------------------------- pairing: each token names its evidence's device


def test_recorded_tokens_name_the_devices_of_the_recorded_evidence() -> None:
    r = NEAR.verify()
    assert [g.ueid for g in r.gpus] == [d.ueid for d in NEAR.devices] and len(set(d.ueid for d in NEAR.devices)) == 8


def test_a_genuine_token_for_gpu_a_fails_for_the_evidence_of_gpu_b() -> None:
    other = replace(GEMMA.devices[0], index=0)  # another real H100 than the one NRAS attested in SINGLE
    with pytest.raises(CheckFailed) as exc:
        SINGLE.verify(devices=(other,))
    assert exc.value.reason == "nras_device_mismatch"
    assert exc.value.details["gpus"]["GPU-0"]["got"]["ueid"] == SINGLE.devices[0].ueid


def test_the_right_tokens_for_the_evidence_in_another_order_fail() -> None:
    permuted = tuple(replace(d, index=i) for i, d in enumerate((NEAR.devices[1], NEAR.devices[0], *NEAR.devices[2:])))
    assert NEAR.reason(devices=permuted) == "nras_device_mismatch"


@pytest.mark.parametrize(
    "claims", [{"ueid": "999"}, {"ueid": None}, {"hwmodel": "GB100"}, {"hwmodel": None}, {"hwmodel": "GH100 A01"}]
)
def test_a_token_naming_another_device_fails(fake: FakeNras, claims: dict[str, Any]) -> None:
    assert fake.reason(fake.body(per_gpu={1: claims})) == "nras_device_mismatch"


def test_hwmodel_may_be_the_chip_or_the_whole_device_certificate_cn(fake: FakeNras) -> None:
    fake.verify(fake.body(device={"hwmodel": "GH100"}))
    fake.verify(
        fake.body(device={"hwmodel": "GH100 A01 GSP BROM"})
    )  # what older NRAS answers and nvtrust's local verifier say


def test_evidence_naming_one_device_twice_fails_before_any_token_is_read(fake: FakeNras) -> None:
    twice = (fake.devices(1)[0], replace(fake.devices(1)[0], index=1))
    assert fake.reason(fake.body(), devices=twice) == "gpu_duplicate_evidence"


def test_a_failure_answer_keeps_its_own_reason_whatever_devices_it_is_for() -> None:
    assert CHUTES.reason(devices=tuple(replace(d, ueid=f"x{d.index}") for d in CHUTES.devices)) == "nras_result_false"


# ---------------------------------------------------------------- property tests: mutated real bodies and key chains


@settings(max_examples=200, deadline=None)
@given(pos=st.integers(0, 10**6), byte=st.integers(32, 126))
def test_mutated_recorded_bodies_raise_only_verifier_errors(pos: int, byte: int) -> None:
    raw = bytearray(NEAR.body)
    raw[pos % len(raw)] = byte
    try:
        NEAR.verify(bytes(raw))
    except (EvidenceError, CheckFailed, Indeterminate):
        return
    assert bytes(raw) == NEAR.body  # only a no-op "mutation" may pass


@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")  # mutated serials
@settings(max_examples=200, deadline=None)
@given(
    which=st.integers(0, 1),
    pos=st.integers(0, 4000),
    byte=st.integers(0, 255),
    cut=st.one_of(st.none(), st.integers(0, 4000)),
)
def test_mutated_jwks_certificates_raise_only_verifier_errors(which: int, pos: int, byte: int, cut: int | None) -> None:
    jwks = copy.deepcopy(SINGLE.jwks)
    kid = _kid(SINGLE.tokens()[0][1])
    key = next(k for k in jwks["keys"] if k["kid"] == kid)
    der = bytearray(base64.b64decode(key["x5c"][which]))
    der[pos % len(der)] = byte
    key["x5c"][which] = base64.b64encode(bytes(der)[:cut] if cut is not None else bytes(der)).decode()
    try:
        SINGLE.verify(jwks=jwks)
    except (EvidenceError, CheckFailed, Indeterminate):
        return
    assert base64.b64decode(key["x5c"][which]) == base64.b64decode(
        next(k for k in SINGLE.jwks["keys"] if k["kid"] == kid)["x5c"][which]
    )  # passes only if the mutation changed nothing


def test_a_world_with_an_nras_fault_signs_real_answers_that_fail_only_path_validation() -> None:
    world = SimulatorWorld("test_nras_token/world").with_nras_fault("intermediate_not_ca")
    payload = world.gpu_payload(bytes(32), 1)
    body = json.dumps(world.nras_response(payload, now=1_790_000_000)).encode()
    devices = gpu_identities(parse_nvidia_payload(payload).evidence)
    assert base64.b64decode(world.jwks()["keys"][0]["x5c"][1]) == world.anchors.nras_intermediate_der  # pinned
    with pytest.raises(CheckFailed) as exc:
        verify_nras_response(
            body, jwks=world.jwks(), expected_nonce=bytes(32), devices=devices, now=1_790_000_010, anchors=world.anchors
        )
    assert exc.value.reason == "nras_token_invalid" and "RFC 5280" in exc.value.message
