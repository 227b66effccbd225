"""Every parser of untrusted input, fed mutated real evidence (fixtures/ and simulator-made) and generated input,
raises only the project's errors: ``BundleError`` for a bundle, ``EvidenceError`` / ``CheckFailed`` for evidence,
``ConfigError`` for a policy — never another exception (which the checklist would record as ``internal_error``).

Representative, not exhaustive: the CI budget for the whole property suite is about a minute on two cores. A long
run multiplies every example count: ``VERIFIER_FUZZ_SCALE=100 pytest tests/test_fuzz_parsers.py``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fixture_bundles import NEAR_MODEL, NEAR_MODEL_KEY, SIG, chutes, near_two_layer, phala_1gpu_20260325, phala_flat
from hypothesis import given, settings
from hypothesis import strategies as st
from mutations import SURROGATES, Seed, mutated_bytes, mutated_json, odd_json
from simulated_evidence import MODEL, signer_address, simulated_report, world

from verifier.appraise.policy import KEYS, parse_policy
from verifier.core.errors import CheckFailed, ConfigError, EvidenceError
from verifier.evidence import exchange
from verifier.evidence.bundle import MAX_FILES, Bundle, BundleError, BundleMeta
from verifier.evidence.collateral import Collateral, collateral_from_bundle
from verifier.evidence.quote import decode_quote_text, parse_quote
from verifier.evidence.report import parse_report, select_attestations
from verifier.evidence.report_data import (
    check_binds_nonce,
    check_binds_signer,
    check_chutes_binding,
    tls_spki_fingerprint,
)

ROOT = Path(__file__).resolve().parent.parent
TDX = ROOT / "fixtures" / "tdx"
SCALE = int(os.environ.get("VERIFIER_FUZZ_SCALE", "1"))
FEW, SOME, MORE = (settings(max_examples=n * SCALE) for n in (20, 60, 200))
PHALA_SIGNER = "0xa6df16ebBc510D97A32b99B4DFD33793acC90e2b"
_LAYOUT = re.compile(
    r"meta\.json|request\.body|response\.body|signature\.json|report\.json|(collateral|nras)/[A-Za-z0-9._-]+\.json"
)


# ---------------------------------------------------------------- seeds: real fixtures and simulator-made evidence


def _doc(raw: bytes | None) -> dict[str, Any]:
    assert raw is not None
    return dict(json.loads(raw))


def _aci_legacy() -> dict[str, Any]:
    doc = _doc(phala_1gpu_20260325().report)
    doc["api_version"] = "aci/1"
    doc["attestation"] = {"tee_type": "tdx", "workload_keyset": {"keys": []}, "evidence": {"quote": doc["intel_quote"]}}
    return doc


# name -> (report document, signer, algo, model) — the signer the report attests, for select_attestations
REPORTS: dict[str, tuple[dict[str, Any], str, str, str | None]] = {
    "phala_flat": (_doc(phala_flat().report), PHALA_SIGNER, "ecdsa", None),
    "near_direct": (
        {**_doc(phala_flat().report), "model_name": "Qwen/Qwen3.5-27B"},
        PHALA_SIGNER,
        "ecdsa",
        "Qwen/Qwen3.5-27B",
    ),
    "near_two_layer": (_doc(near_two_layer().report), NEAR_MODEL_KEY, "ed25519", NEAR_MODEL),
    "aci_legacy": (_aci_legacy(), _aci_legacy()["signing_address"], "ecdsa", None),
    "chutes": (_doc(chutes().report), PHALA_SIGNER, "ecdsa", None),  # no signer: selection must fail cleanly
    **{
        f"simulated_{fmt}": (json.loads(simulated_report(fmt)), signer_address("ecdsa"), "ecdsa", MODEL)
        for fmt in ("phala_flat", "near_two_layer", "aci_legacy")
    },
}
QUOTES = {
    "v4": (TDX / "dcap-qvl-samples" / "tdx_quote.bin").read_bytes(),
    "v5": (TDX / "dcap-qvl-samples" / "tdx_quote_outdated.bin").read_bytes(),
    "chutes_v4": (TDX / "quotes" / "redpill-chutes-20260610-instance0.bin").read_bytes(),
    "simulated_v4": world().tdx_quote(bytes(range(64))),
}
COLLATERAL = {p.name: p.read_text() for p in sorted((TDX / "collateral").glob("*.json"))} | {
    "simulated": world().collateral_json(1_790_000_000)
}
_V4 = parse_quote(QUOTES["v4"])
REPORT_DATA = _V4.report.report_data
PCK_PEM = _V4.pck_chain_pem
STREAM = (SIG / "near-direct-qwen35-3part-stream-20260602" / "response_body.sse").read_bytes()
COMPLETION = json.dumps(
    {"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"message": {"content": "hi"}}]}
).encode()
POLICIES = {
    p.name: p.read_bytes()
    for p in [*sorted((ROOT / "policies").glob("*.toml")), ROOT / "verifier/policies/default.toml"]
}


# ---------------------------------------------------------------- bundle: meta.json, zip, directory


def _meta_seed() -> dict[str, Any]:
    return _doc(phala_flat().files()["meta.json"])


@MORE
@given(mutated_json(_meta_seed()))
def test_mutated_meta_json_is_a_bundle_error_or_a_meta_that_round_trips(raw: bytes) -> None:
    try:
        bundle = Bundle.from_files({"meta.json": raw})
    except BundleError:
        return
    assert BundleMeta.from_json(bundle.meta.to_json()) == bundle.meta


@SOME
@given(st.dictionaries(st.sampled_from(sorted(_meta_seed())), odd_json, max_size=8))
def test_meta_json_with_any_value_types_raises_only_bundle_errors(doc: dict[str, Any]) -> None:
    try:
        meta = BundleMeta.from_json(doc)
    except BundleError:
        return
    json.dumps(meta.to_json()).encode()


def _zip_path(data: bytes) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-bundle-"))
    (folder / "b.zip").write_bytes(data)
    return folder / "b.zip"


@SOME
@given(mutated_bytes(Seed("phala_flat.zip", phala_flat().to_zip()), max_edits=3))
def test_mutated_zip_bundle_raises_only_bundle_errors(data: bytes) -> None:
    path = _zip_path(data)
    try:
        Bundle.load(path)
    except BundleError:
        pass
    finally:
        path.unlink()
        path.parent.rmdir()


_MEMBER_NAMES = st.one_of(
    st.sampled_from(
        [
            "meta.json",
            "report.json",
            "request.body",
            "nras/jwks.json",
            "collateral/tdx.json",
            "case/report.json",
            "",
            "/",
            "/report.json",
            "../meta.json",
            "case/../meta.json",
            "./report.json",
            "a//b.json",
            "dir/",
            "collateral/",
            "nras\\jwks.json",
            "README.md",
            "case/PROVENANCE.md",
        ]
    ),
    st.text(alphabet="abc./\\-_", max_size=12),
)
_METHODS = st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])


@SOME
@given(st.lists(st.tuples(_MEMBER_NAMES, _METHODS, st.binary(max_size=64)), max_size=6))
def test_zip_member_names_methods_and_duplicates_are_refused_or_read_plainly(
    members: list[tuple[str, int, bytes]],
) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, method, body in members:
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = method
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zipfile warns while writing a duplicated name (that is the point)
                zf.writestr(info, body)
    path = _zip_path(buf.getvalue())
    try:
        bundle = Bundle.load(path)
    except BundleError:
        return
    finally:
        path.unlink()
        path.parent.rmdir()
    files = [n for n, m, _ in members if not n.endswith("/")]
    assert len(set(files)) == len(files), "a duplicated member was read"
    assert {m for n, m, _ in members} <= {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
    assert all(_LAYOUT.fullmatch(n) for n in bundle.files())


_DIR_NAMES = st.one_of(
    st.sampled_from(
        [
            "meta.json",
            "report.json",
            "nras/jwks.json",
            "collateral/x.json",
            "README.md",
            ".hidden",
            "notes.txt",
            "nras/deep/x.json",
            "collateral/a b.json",
        ]
    ),
    st.text(alphabet="abcxyz._-", min_size=1, max_size=10).filter(lambda n: n not in (".", "..")),
)


@FEW
@given(st.dictionaries(_DIR_NAMES, mutated_bytes(b'{"model": "m", "nonce_origin": "supplied"}'), max_size=5))
def test_directory_bundle_with_any_file_names_raises_only_bundle_errors(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, body in files.items():
            target = root / name
            if any(p.exists() and not p.is_dir() for p in target.parents if p != root and root in p.parents):
                continue  # a file where a folder is needed: not a tree
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.write_bytes(body)
        try:
            bundle = Bundle.load(root)
        except BundleError:
            return
        assert all(_LAYOUT.fullmatch(n) for n in bundle.files()) and len(bundle.files()) <= MAX_FILES + 1


# ---------------------------------------------------------------- attestation reports, every format


def _select(raw: bytes | dict[str, Any], signer: str, algo: str, model: str | None) -> None:
    try:
        report = parse_report(raw)
    except EvidenceError:
        return
    for att in report.attestations:
        att.signer()
        assert att.algo in ("ecdsa", "ed25519") or att.signing_algo
        for text in (att.instance_nonce, att.e2e_pubkey):
            assert text is None or (text.isascii() and text.isprintable())
    try:
        chosen = select_attestations(
            report, signing_address=signer, signing_algo=algo, models={model.lower()} if model else None
        )
    except (CheckFailed, EvidenceError):
        return
    assert chosen


@pytest.mark.parametrize("name", sorted(REPORTS))
@SOME
@given(data=st.data())
def test_mutated_report_raises_only_evidence_or_check_errors(name: str, data: st.DataObject) -> None:
    doc, signer, algo, model = REPORTS[name]
    _select(data.draw(mutated_json(Seed(name, doc))), signer, algo, model)


@pytest.mark.parametrize("name", ["phala_flat", "near_two_layer", "chutes"])
@FEW
@given(data=st.data())
def test_report_with_mutated_bytes_raises_only_evidence_or_check_errors(name: str, data: st.DataObject) -> None:
    doc, signer, algo, model = REPORTS[name]
    _select(data.draw(mutated_bytes(Seed(name, json.dumps(doc).encode()))), signer, algo, model)


# ---------------------------------------------------------------- report_data bindings

_ADDRESSES = st.one_of(
    st.sampled_from([PHALA_SIGNER, "0x" + REPORT_DATA[:20].hex(), REPORT_DATA[:32].hex(), NEAR_MODEL_KEY]),
    st.text(max_size=70),
    SURROGATES,
    st.none(),
    st.integers(),
)
_ALGOS = st.one_of(
    st.sampled_from(["ecdsa", "ed25519", "ECDSA", "Ed25519", "rsa", ""]), st.text(max_size=8), SURROGATES
)


@MORE
@given(mutated_bytes(REPORT_DATA, max_edits=2), _ALGOS, _ADDRESSES, st.one_of(st.none(), _ADDRESSES))
def test_signer_binding_on_any_report_data_and_address_raises_only_evidence_or_check_errors(
    rd: bytes, algo: Any, address: Any, fingerprint: Any
) -> None:
    try:
        layout = check_binds_signer(rd, signing_algo=algo, signing_address=address, tls_cert_fingerprint=fingerprint)
    except (CheckFailed, EvidenceError):
        return
    assert layout in ("padded_address", "ed25519_key", "tls_fingerprint")


@MORE
@given(
    mutated_bytes(REPORT_DATA, max_edits=2),
    st.one_of(st.binary(max_size=40), odd_json),
    st.one_of(SURROGATES, st.text(max_size=70), odd_json),
    st.one_of(SURROGATES, st.text(max_size=70), odd_json),
)
def test_nonce_and_chutes_bindings_on_any_input_raise_only_evidence_or_check_errors(
    rd: bytes, nonce: Any, nonce_hex: Any, e2e_pubkey: Any
) -> None:
    for check in (
        lambda: check_binds_nonce(rd, nonce),
        lambda: check_chutes_binding(rd, nonce_hex=nonce_hex, e2e_pubkey_b64=e2e_pubkey),
    ):
        with contextlib.suppress(CheckFailed, EvidenceError):
            check()


@SOME
@given(mutated_bytes(Seed("pck_chain.pem", PCK_PEM)))
def test_tls_fingerprint_of_a_mutated_certificate_chain_raises_only_evidence_error(pem: bytes) -> None:
    with contextlib.suppress(EvidenceError):
        assert len(tls_spki_fingerprint(pem)) == 64


# ---------------------------------------------------------------- TDX quotes v4 / v5, hex and base64 text


@pytest.mark.parametrize("name", sorted(QUOTES))
@MORE
@given(data=st.data())
def test_mutated_quote_raises_only_evidence_error(name: str, data: st.DataObject) -> None:
    raw = data.draw(mutated_bytes(Seed(name, QUOTES[name])))
    try:
        q = parse_quote(raw)
    except EvidenceError:
        return
    assert len(q.report.report_data) == 64 and len(q.signature) == 64 and len(q.qe_report) == 384
    json.dumps(q.to_json())


@SOME
@given(st.sampled_from(sorted(QUOTES)), st.booleans(), st.data())
def test_mutated_quote_text_raises_only_evidence_error(name: str, as_base64: bool, data: st.DataObject) -> None:
    text = base64.b64encode(QUOTES[name]).decode() if as_base64 else QUOTES[name].hex()
    mutated = data.draw(mutated_bytes(Seed(name, text.encode()), max_edits=3)).decode("latin-1")
    if data.draw(st.booleans()):
        at = data.draw(st.integers(min_value=0, max_value=len(mutated)))
        mutated = mutated[:at] + data.draw(SURROGATES) + mutated[at:]
    with contextlib.suppress(EvidenceError):
        parse_quote(decode_quote_text(mutated))


# ---------------------------------------------------------------- collateral (QuoteCollateralV3 JSON)


@pytest.mark.parametrize("name", sorted(COLLATERAL))
@SOME
@given(data=st.data())
def test_mutated_collateral_raises_only_evidence_error(name: str, data: st.DataObject) -> None:
    raw = data.draw(mutated_json(Seed(name, json.loads(COLLATERAL[name]))))
    try:
        c = Collateral.parse(raw.decode(), source="bundle")
    except EvidenceError:
        return
    json.dumps(c.to_record())
    c.valid_at(0)


@SOME
@given(
    st.dictionaries(
        st.sampled_from(["tdx-a.json", "tdx-b.json", "notes.txt"]),
        mutated_bytes(Seed("collateral", next(iter(COLLATERAL.values())).encode()), max_edits=2),
        max_size=3,
    ),
    st.sampled_from(["90C06F000000", "b0c06f000000", "", "zz"]),
)
def test_bundle_collateral_with_mutated_files_raises_only_evidence_error(files: dict[str, bytes], fmspc: str) -> None:
    try:
        found = collateral_from_bundle(files, fmspc=fmspc)
    except EvidenceError:
        return
    assert found is None or found.fmspc == fmspc.upper()


# ---------------------------------------------------------------- the exchange: chat id of a body or an SSE stream


@MORE
@given(
    st.one_of(
        mutated_bytes(Seed("stream", STREAM)),
        mutated_bytes(COMPLETION),
        mutated_json(json.loads(COMPLETION)),
        st.builds(lambda doc: b"data: " + doc + b"\n\n", mutated_json(json.loads(COMPLETION))),
        st.binary(max_size=200),
    )
)
def test_chat_id_of_any_body_is_none_or_a_usable_id_and_never_raises(body: bytes) -> None:
    chat_id = exchange.chat_id_from_response(body)
    assert chat_id is None or (0 < len(chat_id) <= exchange.MAX_CHAT_ID and chat_id.isprintable() and chat_id.encode())
    assert all(isinstance(d, bytes) for d in exchange.sse_data(body))
    fallback = exchange.reserialized_sha256(body)
    assert fallback is None or len(fallback) == 64


# ---------------------------------------------------------------- policy TOML


def _toml_value(value: Any) -> str:
    """TOML text for a generated value (strings in JSON form are TOML basic strings; surrogates make invalid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps("" if value is None else str(value))


_POLICY_KEYS = st.one_of(st.sampled_from(sorted(KEYS)), st.sampled_from(["tdx.unknown", "x.y", "checks.nope"]))


@MORE
@given(
    st.dictionaries(
        _POLICY_KEYS, st.one_of(odd_json, st.sampled_from(["required", "advisory", "off", "570.1", "abc"])), max_size=5
    ),
    st.sampled_from([0, 0, 50, 400, 3000]),
)
def test_policy_with_any_keys_and_value_types_raises_only_config_errors(values: dict[str, Any], nesting: int) -> None:
    sections: dict[str, list[str]] = {}
    for name, value in values.items():
        section, key = name.split(".", 1) if "." in name else (name, "fuzz/model")  # [models]: one table-valued key
        sections.setdefault(section, []).append(f"{json.dumps(key)} = {_toml_value(value)}")
    text = "".join(f"[{s}]\n" + "\n".join(lines) + "\n" for s, lines in sections.items())
    if nesting:
        text += "[tdx]\nallowed_mrtd = " + "[" * nesting + "]" * nesting + "\n"
    try:
        parse_policy(text.encode(), source="fuzz.toml")
    except ConfigError as exc:
        assert "fuzz.toml" in exc.message


@pytest.mark.parametrize("name", sorted(POLICIES))
@MORE
@given(data=st.data())
def test_mutated_policy_file_raises_only_config_errors(name: str, data: st.DataObject) -> None:
    try:
        parse_policy(data.draw(mutated_bytes(Seed(name, POLICIES[name]))), source=name)
    except ConfigError as exc:
        assert name in exc.message
