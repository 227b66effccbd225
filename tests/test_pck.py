from __future__ import annotations

import base64
import contextlib
import json
import re
from pathlib import Path

import pytest
from asn1crypto import core
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.core.errors import EvidenceError
from verifier.evidence.pck import fmspc_from_extension, pck_identity
from verifier.evidence.quote import parse_quote
from verifier.simulator.pki import sgx_extension_value
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


FMSPC_ENTRY = "3014060a2a864886f84d010d0104040690c06f000000"  # SEQUENCE { OID ...13.1.4 (FMSPC), OCTETS[6] }
PPID_ENTRY = "300e060a2a864886f84d010d01010400"  # SEQUENCE { OID ...13.1.1 (PPID), OCTETS[0] }


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (b"", "not a SEQUENCE OF"),  # truncated
        (b"\x04\x00", "not a SEQUENCE OF"),  # an OCTET STRING, not a SEQUENCE
        (b"\x30\x05\x30\x03", "not a SEQUENCE OF"),  # claims 5 bytes, 2 remain
        (b"\x30\x84\xff\xff\xff\xff", "not a SEQUENCE OF"),  # claims 4 GiB
        (b"\x30\x80", "not a SEQUENCE OF"),  # indefinite length, no end-of-contents
        (b"\x30\x02\x04\x00", "not a SEQUENCE OF"),  # entry is not a SEQUENCE
        (b"\x30\x04\x30\x02\x04\x00", "not a SEQUENCE OF"),  # entry does not start with an OID
        (bytes.fromhex("3008300604000402aabb"), "not a SEQUENCE OF"),  # entry's first element is not an OID
        (bytes.fromhex("3026" + PPID_ENTRY + FMSPC_ENTRY + "00"), "not a SEQUENCE OF"),  # trailing byte
        (b"\x30\x00", "0 FMSPC entries"),
        (bytes.fromhex("3010" + PPID_ENTRY), "0 FMSPC entries"),
        (bytes.fromhex("302c" + FMSPC_ENTRY + FMSPC_ENTRY), "2 FMSPC entries"),  # ambiguous: never pick one
        (bytes.fromhex("3010300e060a2a864886f84d010d01040400"), "6-byte OCTET STRING"),
        (bytes.fromhex("30173015060a2a864886f84d010d0104040790c06f00000000"), "6-byte OCTET STRING"),  # 7 bytes
        (bytes.fromhex("30163014060a2a864886f84d010d0104020690c06f000000"), "not a SEQUENCE OF"),  # an INTEGER
    ],
)
def test_sgx_extension_reader_names_what_is_wrong(der: bytes, message: str) -> None:
    with pytest.raises(EvidenceError, match=message):
        fmspc_from_extension(der)


def test_sgx_extension_reader_reads_fmspc() -> None:
    der = bytes.fromhex("3026" + PPID_ENTRY + FMSPC_ENTRY)
    assert fmspc_from_extension(der) == "90C06F000000"


def test_simulator_extension_reads_back_its_platform_fmspc() -> None:
    world = SimulatorWorld()
    assert fmspc_from_extension(sgx_extension_value(world.seed, world.platform)) == world.platform.fmspc.hex().upper()


class _Entry(core.Sequence):
    _fields = [("id", core.ObjectIdentifier), ("value", core.Any)]  # noqa: RUF012


class _Entries(core.SequenceOf):
    _child_spec = _Entry


_values = st.one_of(
    st.binary(max_size=10).map(core.OctetString),
    st.integers(-(2**70), 2**70).map(core.Integer),
    st.booleans().map(core.Boolean),
)
_arcs = st.lists(st.integers(0, 2**32), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_arcs, _values), max_size=6), st.one_of(st.none(), st.binary(min_size=5, max_size=7)), st.data()
)
def test_random_extensions_read_their_one_fmspc_or_raise_only_evidence_error(
    others: list[tuple[list[int], core.Asn1Value]], fmspc: bytes | None, data: st.DataObject
) -> None:
    entries = [_Entry({"id": "1.3." + ".".join(map(str, arcs)), "value": value}) for arcs, value in others]
    if fmspc is not None:
        entries.insert(
            data.draw(st.integers(0, len(entries))),
            _Entry({"id": "1.2.840.113741.1.13.1.4", "value": core.OctetString(fmspc)}),
        )
    der = bytearray(_Entries(entries).dump())
    if fmspc is not None and len(fmspc) == 6:
        assert fmspc_from_extension(bytes(der)) == fmspc.hex().upper()
    else:
        with pytest.raises(EvidenceError):
            fmspc_from_extension(bytes(der))
    for _ in range(data.draw(st.integers(1, 4))):  # then garble it
        if der:
            der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(EvidenceError):
        assert len(fmspc_from_extension(bytes(der))) == 12


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
    for candidate in (
        blob,
        b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(blob) + b"-----END CERTIFICATE-----\n",
    ):
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
