"""EIP-191 personal_sign recovery (coincurve + keccak) against eth-account, the reference the protocol names.

eth-account is a test dependency only: production recovers with ``verifier.verify.signature``.
"""

from __future__ import annotations

import hashlib
import sys

import pytest
from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct
from eth_utils import to_checksum_address as eth_checksum
from fixture_bundles import signature_case, signature_cases
from hypothesis import given
from hypothesis import strategies as st

from verifier.core.errors import CheckFailed, EvidenceError
from verifier.evidence.eth_address import address_of_public_key, keccak256, parse_address
from verifier.evidence.signature import parse_signature
from verifier.simulator.eth_key import EthKey, to_checksum_address
from verifier.verify.signature import SECP256K1_N, eip191_digest, recover_eip191

# py_ecc (imported by eth-account) raises the recursion limit to 100000; deep-JSON tests elsewhere in this
# process rely on the default (a RecursionError, not a C stack overflow). Put it back.
sys.setrecursionlimit(min(sys.getrecursionlimit(), 1000))

secrets_ = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
texts = st.text(max_size=300)


def eth_sign(secret: bytes, text: str) -> bytes:
    return bytes(Account.from_key(secret).sign_message(encode_defunct(text=text)).signature)


def eth_recover(text: str, signature: bytes) -> bytes:
    return parse_address(Account.recover_message(encode_defunct(text=text), signature=signature))


def ours(text: str, signature: bytes) -> bytes:
    return recover_eip191(text.encode("utf-8"), signature)


KEY = b"\x11" * 32
TEXT = "a" * 64 + ":" + "b" * 64
SIG = eth_sign(KEY, TEXT)
ADDRESS = parse_address(Account.from_key(KEY).address)


def with_rs(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


# ---------------------------------------------------------------- digest and hash


def test_keccak256_is_original_keccak_not_nist_sha3() -> None:
    empty = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"  # Keccak-256("")
    assert keccak256(b"").hex() == empty
    assert hashlib.sha3_256(b"").hexdigest() != empty


@given(texts)
def test_eip191_digest_equals_eth_accounts_defunct_hash(text: str) -> None:
    assert eip191_digest(text.encode("utf-8")) == bytes(defunct_hash_message(text=text))


def test_eip191_prefix_counts_utf8_bytes_not_characters() -> None:
    assert eip191_digest("é".encode()) == keccak256(b"\x19Ethereum Signed Message:\n2\xc3\xa9")
    assert eip191_digest("é".encode()) == bytes(defunct_hash_message(text="é"))


# ---------------------------------------------------------------- recovery equals eth-account's


@pytest.mark.parametrize("name", signature_cases())
def test_every_recorded_ecdsa_signature_recovers_to_what_eth_account_recovers(name: str) -> None:
    sig = parse_signature(signature_case(name).signature or b"")
    if sig.signing_algo != "ecdsa":
        assert sig.signing_algo == "ed25519"
        return
    raw = bytes.fromhex(sig.signature.removeprefix("0x"))
    assert ours(sig.text, raw) == eth_recover(sig.text, raw) == parse_address(sig.signing_address)


@given(secrets_, texts)
def test_recovery_equals_eth_accounts_for_random_keys_and_messages(secret: bytes, text: str) -> None:
    sig = eth_sign(secret, text)
    assert ours(text, sig) == eth_recover(text, sig) == parse_address(Account.from_key(secret).address)


@given(secrets_, texts)
def test_simulator_signatures_are_byte_identical_to_eth_accounts(secret: bytes, text: str) -> None:
    key = EthKey(secret)
    assert key.personal_sign(text) == eth_sign(secret, text)
    assert key.address == Account.from_key(secret).address
    assert address_of_public_key(key.public_key) == parse_address(key.address)


def test_bare_recovery_id_v_0_or_1_recovers_like_27_or_28() -> None:
    bare = SIG[:64] + bytes([SIG[64] - 27])
    assert ours(TEXT, bare) == eth_recover(TEXT, bare) == ADDRESS


def test_high_s_twin_recovers_the_same_key_as_eth_account_does() -> None:
    r, s = int.from_bytes(SIG[:32], "big"), int.from_bytes(SIG[32:64], "big")
    assert s <= SECP256K1_N // 2  # producers sign low-s
    twin = with_rs(r, SECP256K1_N - s, 55 - SIG[64])  # (r, n - s, v ^ 1)
    assert ours(TEXT, twin) == eth_recover(TEXT, twin) == ADDRESS


@pytest.mark.parametrize("v", [2, 3, 26, 29, 30, 34, 35, 36, 37, 38, 127, 255])
def test_v_other_than_0_1_27_28_is_signature_invalid(v: int) -> None:
    with pytest.raises(CheckFailed) as exc:
        ours(TEXT, SIG[:64] + bytes([v]))
    assert exc.value.reason == "signature_invalid"


def test_eip155_v_forms_are_rejected_although_eth_account_accepts_them() -> None:
    eip155 = SIG[:64] + bytes([SIG[64] + 8])  # chain id 0: v = recid + 35
    assert eth_recover(TEXT, eip155) == ADDRESS
    with pytest.raises(CheckFailed, match=r"v is 3[56]"):
        ours(TEXT, eip155)


@pytest.mark.parametrize(
    ("r", "s"),
    [(0, 1), (1, 0), (SECP256K1_N, 1), (1, SECP256K1_N), (2**256 - 1, 1), (1, 2**256 - 1)],
    ids=["r=0", "s=0", "r=n", "s=n", "r=max", "s=max"],
)
def test_r_or_s_outside_1_to_n_minus_1_is_rejected_as_eth_account_does(r: int, s: int) -> None:
    with pytest.raises(CheckFailed) as exc:
        ours(TEXT, with_rs(r, s, 27))
    assert exc.value.reason == "signature_invalid"
    with pytest.raises(Exception):  # noqa: B017 (eth-account raises BadSignature or ValidationError)
        eth_recover(TEXT, with_rs(r, s, 27))


@pytest.mark.parametrize("n", [0, 64, 66, 130])
def test_signature_not_65_bytes_is_signature_invalid(n: int) -> None:
    with pytest.raises(CheckFailed) as exc:
        ours(TEXT, (SIG * 3)[:n])
    assert exc.value.reason == "signature_invalid"


@given(secrets_, texts, st.integers(0, 65 * 8 - 1))
def test_any_bit_flip_in_the_signature_never_recovers_the_same_address(secret: bytes, text: str, bit: int) -> None:
    sig = bytearray(eth_sign(secret, text))
    sig[bit // 8] ^= 0x80 >> (bit % 8)
    try:
        recovered = ours(text, bytes(sig))
    except CheckFailed as exc:
        assert exc.reason == "signature_invalid"
        return
    assert recovered != parse_address(Account.from_key(secret).address)


@given(st.binary(min_size=64, max_size=64), st.sampled_from([0, 1, 27, 28]), texts)
def test_arbitrary_r_s_recover_exactly_when_eth_account_recovers_and_to_the_same_address(
    rs: bytes, v: int, text: str
) -> None:
    sig = rs + bytes([v])
    try:
        recovered = ours(text, sig)
    except CheckFailed as exc:
        assert exc.reason == "signature_invalid"
        with pytest.raises(Exception):  # noqa: B017 (eth-account raises BadSignature or ValidationError)
            eth_recover(text, sig)
        return
    assert recovered == eth_recover(text, sig)


@given(st.binary(max_size=80), st.binary(max_size=80))
def test_recovery_on_arbitrary_bytes_raises_only_signature_invalid(sig: bytes, message: bytes) -> None:
    try:
        recover_eip191(message, sig)
    except CheckFailed as exc:
        assert exc.reason == "signature_invalid"


# ---------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    "address",
    [  # the EIP-55 specification's own examples
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ],
)
def test_eip55_checksum_of_the_specification_examples(address: str) -> None:
    assert to_checksum_address(parse_address(address)) == address


@given(st.binary(min_size=20, max_size=20))
def test_eip55_checksum_equals_eth_utils(address: bytes) -> None:
    assert to_checksum_address(address) == eth_checksum(address)


@pytest.mark.parametrize(
    "text",
    [
        "0x" + "ab" * 20,
        "0X" + "AB" * 20,
        "ab" * 20,
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    ],
)
def test_addresses_are_read_in_any_letter_case(text: str) -> None:
    assert parse_address(text).hex() == text.lower().removeprefix("0x")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0x",
        "0x" + "ab" * 19,
        "0x" + "ab" * 21,
        "0x" + "gg" * 20,
        "0x" + "ab" * 19 + "a ",
        "0x0x" + "ab" * 19,
        "\u0661" * 40,
    ],
)
def test_malformed_addresses_are_evidence_errors(text: str) -> None:
    with pytest.raises(EvidenceError):
        parse_address(text)


def test_address_of_public_key_wants_the_64_byte_point() -> None:
    with pytest.raises(ValueError, match="64-byte"):
        address_of_public_key(b"\x04" + EthKey(KEY).public_key)
    assert address_of_public_key(EthKey(KEY).public_key) == ADDRESS
