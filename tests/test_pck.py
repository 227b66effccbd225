from __future__ import annotations

import base64
import contextlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.core.errors import EvidenceError
from verifier.evidence.pck import fmspc_from_extension, pck_identity
from verifier.evidence.quote import parse_quote
from verifier.simulator.world import SimulatorWorld

TDX = Path(__file__).resolve().parent.parent / "fixtures" / "tdx"
CASES = {c["quote"]: c for c in json.loads((TDX / "manifest.json").read_text())["cases"] if c["type"] == "TDX"}
PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.S)


def chain_of(rel: str) -> bytes:
    return parse_quote((TDX / rel).read_bytes()).pck_chain_pem


REAL_CHAIN = chain_of("quotes/redpill-chutes-20260610-instance0.bin")


@pytest.mark.parametrize("rel", sorted(CASES))
def test_real_quotes_match_manifest(rel: str) -> None:
    assert pck_identity(chain_of(rel)) == (CASES[rel]["fmspc"], CASES[rel]["pck_ca"])


def test_processor_ca_from_sgx_quote() -> None:
    # the v3 SGX sample is not a TDX quote, but its PCK chain (Processor CA) is plain PEM inside it
    raw = (TDX / "dcap-qvl-samples" / "sgx_quote.bin").read_bytes()
    assert pck_identity(b"".join(PEM.findall(raw))) == ("00A067110000", "processor")


def test_simulator_quote() -> None:
    world = SimulatorWorld()
    q = parse_quote(world.tdx_quote(b"rd"))
    assert pck_identity(q.pck_chain_pem) == (world.platform.fmspc.hex().upper(), "platform")


def test_chain_order_does_not_matter() -> None:
    certs = PEM.findall(REAL_CHAIN)
    assert pck_identity(b"".join(reversed(certs))) == ("90C06F000000", "platform")


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"not a pem", "not PEM"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not PEM"),
        (b"".join(PEM.findall(REAL_CHAIN)[1:]), "Intel SGX extension"),  # CA + root only: no leaf
    ],
)
def test_bad_chains_name_the_problem(chain: bytes, message: str) -> None:
    with pytest.raises(EvidenceError, match=message):
        pck_identity(chain)


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (b"", "truncated"),
        (b"\x04\x00", "expected one SEQUENCE"),
        (b"\x30\x05\x30\x03", "claims 5 bytes"),
        (b"\x30\x84\xff\xff\xff\xff", "claims"),
        (b"\x30\x80", "bad DER length"),
        (b"\x30\x02\x04\x00", "expected SEQUENCE"),
        (b"\x30\x04\x30\x02\x04\x00", "expected OID"),
        (b"\x30\x00", "no FMSPC"),
        (bytes.fromhex("3010300e060a2a864886f84d010d01040400"), "6-byte OCTET STRING"),
    ],
)
def test_der_reader_bounds(der: bytes, message: str) -> None:
    with pytest.raises(EvidenceError, match=message):
        fmspc_from_extension(der)


def test_der_reader_reads_fmspc() -> None:
    # SEQUENCE { SEQUENCE { OID ...13.1.1 (PPID), OCTETS[2] }, SEQUENCE { OID ...13.1.4 (FMSPC), OCTETS[6] } }
    der = bytes.fromhex("3026" "300e060a2a864886f84d010d01010400" "3014060a2a864886f84d010d01040406" "90c06f000000")
    assert fmspc_from_extension(der) == "90C06F000000"


def _mutated_chain(data: st.DataObject) -> bytes:
    """The real chain with some base64 characters of its DER changed: garbled but still PEM-shaped."""
    certs = PEM.findall(REAL_CHAIN)
    leaf = bytearray(base64.b64decode(b"".join(certs[0].splitlines()[1:-1])))
    for _ in range(data.draw(st.integers(1, 8))):
        leaf[data.draw(st.integers(0, len(leaf) - 1))] = data.draw(st.integers(0, 255))
    body = base64.encodebytes(bytes(leaf))
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n" + b"".join(certs[1:])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_raise_evidence_error(blob: bytes) -> None:
    for candidate in (blob, b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(blob) + b"-----END CERTIFICATE-----\n"):
        with contextlib.suppress(EvidenceError):
            pck_identity(candidate)
    with contextlib.suppress(EvidenceError):
        fmspc_from_extension(blob)


@pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")
@settings(max_examples=200, deadline=None)
@given(st.data())
def test_garbled_real_leaf_only_raises_evidence_error(data: st.DataObject) -> None:
    try:
        fmspc, ca = pck_identity(_mutated_chain(data))
    except EvidenceError:
        return
    assert len(fmspc) == 12 and ca in ("platform", "processor")
