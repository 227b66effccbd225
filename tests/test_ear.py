"""EAR claims from a verdict, EdDSA signing, verification against a JWKS; the EAR and log key files and rotation."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from hypothesis import given
from hypothesis import strategies as st
from tests_support import verdict as make_verdict

from verifier.app.ear import EAR_PROFILE, EarError, ear_claims, jwks, public_jwk, sign_ear, verify_ear
from verifier.app.signing_keys import load_keys, rotate
from verifier.core.errors import ConfigError

KEY = Ed25519PrivateKey.generate()


def tv(**tiers: int) -> dict[str, dict[str, Any]]:
    aspects = ("hardware", "instance-identity", "configuration", "executables", "runtime-opaque", "sourced-data")
    return {a: {"tier": "?", "value": tiers.get(a.replace("-", "_"), 2), "because": ""} for a in aspects}


def verdict(**overrides: Any) -> dict[str, Any]:
    base = make_verdict(
        id="v_1",
        trust_vector=tv(),
        attestation={"paths": ["gateway"], "hops": ["model"]},
        claims={"gpus": [{"uuid": "GPU-1"}, {"uuid": "GPU-2"}]},
        refs={"id": "r", "sha256": "ab" * 32},
    )
    base.update(overrides)
    return base


def test_a_passing_verdict_gives_affirming_submods_for_the_signature_each_td_and_each_gpu() -> None:
    claims = ear_claims(verdict(), log_index=7, iat=100)
    assert claims["eat_profile"] == EAR_PROFILE and claims["iat"] == 100
    assert set(claims["submods"]) == {"signature", "td:gateway", "td:model", "gpu:0", "gpu:1"}
    assert claims["submods"]["gpu:0"]["ear_trustworthiness_vector"] == {"hardware": 2}
    assert claims["submods"]["signature"]["ear_appraisal_policy_ids"] == [
        f"policy:default@sha256:{'cc' * 32}",
        f"refs:r@sha256:{'ab' * 32}",
    ]
    assert all(s["ear_status"] == "affirming" for s in claims["submods"].values())
    assert (claims["x-verifier-verdict-id"], claims["x-verifier-log-index"]) == ("v_1", 7)
    assert claims["eat_nonce"] == "ERERERERERERERERERERERERERERERERERERERERERE"


def test_a_contraindicated_aspect_makes_its_submods_contraindicated_and_only_those() -> None:
    subs = ear_claims(verdict(status="fail", trust_vector=tv(executables=96)), log_index=0, iat=1)["submods"]
    assert subs["td:gateway"]["ear_status"] == "contraindicated"
    assert subs["signature"]["ear_status"] == "none"  # affirming aspects, but the verdict did not pass


def test_a_verdict_that_did_not_pass_never_carries_an_affirming_submod() -> None:
    subs = ear_claims(verdict(status="indeterminate"), log_index=0, iat=1)["submods"]
    assert {s["ear_status"] for s in subs.values()} == {"none"}


def test_missing_or_unknown_tier_values_are_none() -> None:
    subs = ear_claims(verdict(trust_vector={"hardware": {"value": 5}}), log_index=None, iat=1)["submods"]
    assert subs["gpu:0"]["ear_trustworthiness_vector"] == {"hardware": 0} and subs["gpu:0"]["ear_status"] == "none"


def test_a_signed_ear_verifies_against_the_jwks_and_pyjwt_agrees() -> None:
    token = sign_ear(ear_claims(verdict(), log_index=0, iat=1), KEY)
    doc = jwks((Ed25519PrivateKey.generate(), KEY))
    assert verify_ear(token, doc)["x-verifier-verdict-id"] == "v_1"
    assert jwt.decode(token, jwt.PyJWK(doc["keys"][0]).key, algorithms=["EdDSA"])["iat"] == 1


def test_an_ear_fails_with_a_jwks_without_its_key_or_when_tampered_or_of_another_profile() -> None:
    token = sign_ear(ear_claims(verdict(), log_index=0, iat=1), KEY)
    with pytest.raises(EarError, match="no key with kid"):
        verify_ear(token, jwks((Ed25519PrivateKey.generate(),)))
    head, _body, sig = token.split(".")
    forged = sign_ear(
        {**ear_claims(verdict(status="pass"), log_index=0, iat=1), "x-verifier-verdict-status": "fail"},
        Ed25519PrivateKey.generate(),
    ).split(".")[1]
    with pytest.raises(EarError, match="does not verify"):
        verify_ear(f"{head}.{forged}.{sig}", jwks((KEY,)))
    other = sign_ear({**ear_claims(verdict(), log_index=0, iat=1), "eat_profile": "tag:other"}, KEY)
    with pytest.raises(EarError, match="eat_profile"):
        verify_ear(other, jwks((KEY,)))
    hs = jwt.encode(
        {"eat_profile": EAR_PROFILE},
        "secret-secret-secret-secret-secret",
        algorithm="HS256",
        headers={"kid": public_jwk(KEY.public_key())["kid"]},
    )
    with pytest.raises(EarError, match="expected EdDSA"):
        verify_ear(hs, jwks((KEY,)))


@given(st.text(max_size=200))
def test_arbitrary_tokens_raise_only_ear_error(token: str) -> None:
    with contextlib.suppress(EarError):
        verify_ear(token, jwks((KEY,)))


def test_a_key_file_is_made_once_mode_0600_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "ear.pem"
    with pytest.raises(ConfigError, match="does not exist"):
        load_keys(path)
    (made,) = load_keys(path, create=True)
    assert os.stat(path).st_mode & 0o777 == 0o600
    (again,) = load_keys(path, create=True)
    assert public_jwk(again.public_key()) == public_jwk(made.public_key())


def test_rotation_signs_with_the_new_key_and_keeps_the_old_public_key_in_the_jwks(tmp_path: Path) -> None:
    path = tmp_path / "ear.pem"
    (old,) = load_keys(path, create=True)
    new = rotate(path)
    keys = load_keys(path)
    assert [public_jwk(k.public_key()) for k in keys] == [public_jwk(old.public_key()), public_jwk(new.public_key())]
    doc = jwks(keys)
    assert doc["keys"][0]["kid"] == public_jwk(new.public_key())["kid"]
    assert verify_ear(sign_ear(ear_claims(verdict(), log_index=0, iat=1), old), doc)  # an EAR of before the rotation


def test_a_key_file_with_another_kind_of_key_or_none_is_refused(tmp_path: Path) -> None:
    ec = tmp_path / "ec.pem"
    ec.write_bytes(generate_private_key(SECP256R1()).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    with pytest.raises(ConfigError, match="expected Ed25519"):
        load_keys(ec)
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing here\n")
    with pytest.raises(ConfigError, match="no PEM private key"):
        load_keys(empty)


_JWK = st.fixed_dictionaries(
    {"kid": st.just(public_jwk(KEY.public_key())["kid"])},
    optional={
        "kty": st.sampled_from(["OKP", "EC", "RSA", "x"]),
        "crv": st.sampled_from(["Ed25519", "P-256", ""]),
        "x": st.text(max_size=50),
        "alg": st.sampled_from(["EdDSA", "none", "HS256"]),
    },
)


@given(st.lists(_JWK, max_size=3) | st.none() | st.text(max_size=10))
def test_arbitrary_jwks_raise_only_ear_error(keys: Any) -> None:
    token = sign_ear(ear_claims(verdict(), log_index=0, iat=1), KEY)
    with contextlib.suppress(EarError):
        verify_ear(token, {"keys": keys})
