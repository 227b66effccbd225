"""The NRAS token signature check (``verify_es384``) refuses exactly what PyJWT's ``jwt.decode(..., ["ES384"])``
refuses, and accepts the same claims: a differential test over genuine tokens, their header variants and random
mutations that keep the compact form."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.verify.nras_token import _COMPACT, _header, verify_es384

KEY = ec.generate_private_key(ec.SECP384R1())
OTHER = ec.generate_private_key(ec.SECP384R1())
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
OPTIONS = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signed(header: dict[str, Any], payload: bytes, key: ec.EllipticCurvePrivateKey = KEY) -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(payload)
    r, s = decode_dss_signature(key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA384())))
    return f"{head}.{body}.{_b64(r.to_bytes(48, 'big') + s.to_bytes(48, 'big'))}"


GENUINE = _signed({"alg": "ES384", "kid": "k1", "typ": "JWT"}, b'{"iat": 1, "eat_nonce": "ab", "x": [1, 2]}')


def _ours(compact: str) -> tuple[str, Any]:
    header = _header("GPU-0", compact)
    try:
        return "ok", verify_es384("GPU-0", compact, header, KEY.public_key())
    except CheckFailed as exc:
        assert exc.reason == "nras_token_invalid"
        return "invalid", None
    except EvidenceError:
        return "decode", None


def _pyjwt(compact: str) -> tuple[str, Any]:
    try:
        return "ok", jwt.decode(compact, key=KEY.public_key(), algorithms=["ES384"], options=OPTIONS)  # type: ignore[arg-type]
    except jwt.InvalidSignatureError:
        return "invalid", None
    except jwt.PyJWTError:
        return "decode", None


def _same(compact: str) -> None:
    if not _COMPACT.fullmatch(compact):
        return  # refused before either is asked
    try:
        header = _header("GPU-0", compact)
    except EvidenceError:
        return  # refused before either is asked
    if header.get("alg") != "ES384" or not isinstance(header.get("kid"), str):
        return  # refused by the caller before either is asked
    assert _ours(compact) == _pyjwt(compact)


def test_a_genuine_token_gives_the_same_claims() -> None:
    assert _ours(GENUINE) == _pyjwt(GENUINE) == ("ok", {"iat": 1, "eat_nonce": "ab", "x": [1, 2]})


@pytest.mark.parametrize(
    ("header", "payload", "expected"),
    [
        ({"alg": "ES384", "kid": "k"}, b"[1, 2]", "decode"),  # not an object
        ({"alg": "ES384", "kid": "k"}, b"{nope", "decode"),
        ({"alg": "ES384", "kid": "k"}, b'"text"', "decode"),
        ({"alg": "ES384", "kid": "k", "crit": ["b64"], "b64": True}, b"{}", "ok"),
        ({"alg": "ES384", "kid": "k", "crit": ["b64"], "b64": False}, b"{}", "decode"),
        ({"alg": "ES384", "kid": "k", "b64": False}, b"{}", "decode"),
        ({"alg": "ES384", "kid": "k", "b64": 0}, b"{}", "ok"),  # only the literal false means unencoded
        ({"alg": "ES384", "kid": "k", "crit": ["b64"]}, b"{}", "decode"),  # named but absent
        ({"alg": "ES384", "kid": "k", "crit": ["exp"], "exp": 1}, b"{}", "decode"),
        ({"alg": "ES384", "kid": "k", "crit": []}, b"{}", "decode"),
        ({"alg": "ES384", "kid": "k", "crit": "b64", "b64": True}, b"{}", "decode"),
        ({"alg": "ES384", "kid": "k", "crit": [1]}, b"{}", "decode"),
    ],
)
def test_header_and_payload_variants_are_judged_alike(header: dict[str, Any], payload: bytes, expected: str) -> None:
    token = _signed(header, payload)
    assert _ours(token)[0] == _pyjwt(token)[0] == expected


def test_another_key_a_cut_or_a_longer_signature_is_invalid_alike() -> None:
    head, body, sig = _signed({"alg": "ES384", "kid": "k"}, b"{}", OTHER).split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    for signature in (sig, _b64(raw[:-1]), _b64(raw + b"\0"), _b64(raw[:48]), ""):
        token = f"{head}.{body}.{signature}"
        assert _ours(token)[0] == _pyjwt(token)[0] == "invalid"


def test_non_canonical_base64_is_refused_alike() -> None:
    head, body, sig = GENUINE.split(".")
    # 96 bytes encode to 128 characters exactly: append one, or turn the payload's last character's unused bits on
    for token in (f"{head}.{body}.{sig}A", f"{head}.{body}A.{sig}"):
        assert _ours(token)[0] == _pyjwt(token)[0] == "decode"
    _same(f"{head}A.{body}.{sig}")  # a header that does not decode is refused before either is asked
    if len(body) % 4:
        last = ALPHABET.index(body[-1])
        bits = {2: 0b1111, 3: 0b11}[len(body) % 4]
        stray = f"{head}.{body[:-1]}{ALPHABET[last | bits]}.{sig}"
        if stray != GENUINE:
            assert _ours(stray)[0] == _pyjwt(stray)[0] == "decode"


@given(pos=st.integers(0, len(GENUINE) - 1), char=st.sampled_from(ALPHABET + "."), cut=st.integers(0, 3))
def test_random_mutations_are_judged_alike(pos: int, char: str, cut: int) -> None:
    mutated = GENUINE[:pos] + char + GENUINE[pos + 1 :]
    _same(mutated[: len(mutated) - cut] if cut else mutated)
