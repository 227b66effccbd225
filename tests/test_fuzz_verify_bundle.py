"""`verifier verify-bundle` end to end on mutated bundles: never an `internal_error` in any check, never `pass`.

The seed is a bundle the simulator made and the verifier passed (a fresh minted nonce, every required check
passing), exported from the ledger: each mutation below breaks something a check must catch, so `pass` after it
would be a security bug and `internal_error` a crash. A bundle that cannot be read at all is a usage error
(exit 1, a message, no traceback). The real Chutes fixture covers the lone-surrogate instance nonce.
"""

from __future__ import annotations

import asyncio
import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fixture_bundles import ALL, CHUTES_AT, NEAR_AT, PHALA_FLAT_AT, chutes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import Seed, mutated_bytes, mutated_json

from verifier.cli import main
from verifier.demo import run_demo
from verifier.evidence.quote import HEADER_LEN, TD10_LEN
from verifier.simulator.gateway import SimulatorConfig

NOW = 1_790_000_000  # the simulator's and the service's pinned clock
Files = dict[str, bytes]


def _clock() -> float:
    return float(NOW)


@pytest.fixture(scope="module")
def passing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Files, int]:
    """A simulator-made bundle (phala_flat, ecdsa, one GPU) that the verifier passed, exported from its ledger."""
    workdir = tmp_path_factory.mktemp("passing")
    (result,) = asyncio.run(run_demo(config=SimulatorConfig(clock=_clock), db_dir=workdir))
    assert result.verdict["status"] == "pass", result.verdict
    out = workdir / "export.zip"
    code = CliRunner().invoke(main, ["export", result.verdict["id"], "--db", str(result.db_path), "-o", str(out)])
    assert code.exit_code == 0, code.output
    with zipfile.ZipFile(out) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    return files, int(result.verdict["times"]["verified_at"])


def _write(root: Path, files: Files) -> Path:
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(body)
    return root


def _invoke(path: Path, at: int, trust: str) -> Any:
    result = CliRunner().invoke(main, ["verify-bundle", str(path), "--at", str(at), "--trust", trust, "--json"])
    # CliRunner catches what escapes the command: only click's own exit (a verdict's code, a usage error) may
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def _judge(output: str) -> tuple[dict[str, Any], dict[str, tuple[str, str | None]]]:
    verdict = json.loads(output)
    checks = {c["id"]: (c["status"], c["reason"]) for c in verdict["checks"]}
    assert not [cid for cid, (_, reason) in checks.items() if reason == "internal_error"], output[-3000:]
    return verdict, checks


def _verify(path: Path, at: int, trust: str = "simulator") -> tuple[dict[str, Any], dict[str, tuple[str, str | None]]]:
    return _judge(_invoke(path, at, trust).output)


def _edit_json(name: str, edit: Callable[[Any], None]) -> Callable[[Files], Files]:
    def apply(files: Files) -> Files:
        doc = json.loads(files[name])
        edit(doc)
        return {**files, name: json.dumps(doc).encode()}

    return apply


def _other_hex(c: str) -> str:
    return format((int(c, 16) + 1) % 16, "x")


def _quote_digit(offset: int) -> Callable[[Any], None]:
    """Change one hex digit of the quote's byte at ``offset`` (so the bytes, not just the case, differ)."""

    def edit(doc: Any) -> None:
        for entry in (doc, *doc.get("all_attestations", [])):
            q = entry["intel_quote"]
            entry["intel_quote"] = entry["quote"] = q[: 2 * offset] + _other_hex(q[2 * offset]) + q[2 * offset + 1 :]

    return edit


def _flip_byte(name: str, at: int) -> Callable[[Files], Files]:
    return lambda files: {**files, name: files[name][:at] + bytes([files[name][at] ^ 0x01]) + files[name][at + 1 :]}


def _set_key(key: str, value: Any) -> Callable[[Any], None]:
    return lambda doc: doc.__setitem__(key, value)


def _signature_digit(doc: Any) -> None:
    doc["signature"] = doc["signature"][:10] + _other_hex(doc["signature"][10]) + doc["signature"][11:]


def _drop(name: str) -> Callable[[Files], Files]:
    return lambda files: {n: b for n, b in files.items() if n != name}


def _first(prefix: str, files: Files) -> str:
    return next(n for n in sorted(files) if n.startswith(prefix))


MUTATIONS: dict[str, Callable[[Files], Files]] = {
    "response body byte flipped": lambda f: _flip_byte("response.body", len(f["response.body"]) // 2)(f),
    "request body byte flipped": lambda f: _flip_byte("request.body", 3)(f),
    "signature digit changed": _edit_json("signature.json", _signature_digit),
    "signed text response hash changed": _edit_json(
        "signature.json", lambda d: d.__setitem__("text", d["text"][:-1] + _other_hex(d["text"][-1]))
    ),
    "signing address with a lone surrogate": _edit_json("signature.json", _set_key("signing_address", "0x\ud800")),
    "quote report_data digit changed": _edit_json("report.json", _quote_digit(HEADER_LEN + 520)),
    "quote RTMR3 digit changed": _edit_json("report.json", _quote_digit(HEADER_LEN + 472 + 5)),
    "quote header digit changed": _edit_json("report.json", _quote_digit(30)),
    "report nested too deeply": lambda f: {**f, "report.json": b'{"intel_quote": ' + b"[" * 5000 + b"]" * 5000 + b"}"},
    "report signer with a lone surrogate": _edit_json("report.json", _set_key("signing_address", "\udfff")),
    "nvidia payload replaced by a number": _edit_json("report.json", _set_key("nvidia_payload", 7)),
    "meta nonce changed": _edit_json("meta.json", _set_key("nonce", "11" * 32)),
    "NRAS answer is an object, not a detached EAT": lambda f: {**f, "nras/response.json": b'{"error": "upstream"}'},
    "NRAS answer with a number for a token": lambda f: {**f, "nras/response.json": b'[["JWT", 5], {"GPU-0": []}]'},
    "NRAS JWKS is garbage": lambda f: {**f, "nras/jwks.json": b"\xff\xfe not json"},
    "collateral with a lone surrogate in its TCB id": lambda f: {
        **f,
        _first("collateral/", f): f[_first("collateral/", f)].replace(
            b'\\"id\\":\\"TDX\\"', b'\\"id\\":\\"\\\\udc00\\"'
        ),
    },
    "collateral missing": lambda f: _drop(_first("collateral/", f))(f),
}


def test_the_unmutated_simulator_bundle_passes(tmp_path: Path, passing: tuple[Files, int]) -> None:
    files, at = passing
    verdict, _ = _verify(_write(tmp_path / "b", files), at)
    assert verdict["status"] == "pass"  # so that "never pass" below means something


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_mutated_bundle_is_never_pass_and_never_internal_error(
    tmp_path: Path, passing: tuple[Files, int], mutation: str
) -> None:
    files, at = passing
    mutated = MUTATIONS[mutation](files)
    assert mutated != files, "the mutation changed nothing"
    verdict, checks = _verify(_write(tmp_path / "b", mutated), at)
    assert verdict["status"] in ("fail", "indeterminate"), checks


# byte offsets of the quote a dcap-qvl signature covers: header, TD report body, then signature and attestation key
_SIGNED = (0, HEADER_LEN + TD10_LEN + 4 + 64 + 64)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    part=st.sampled_from(["request.body", "response.body", "quote"]),
    data=st.data(),
)
def test_random_edits_of_signed_bytes_are_never_pass_and_never_internal_error(
    tmp_path_factory: pytest.TempPathFactory, passing: tuple[Files, int], part: str, data: st.DataObject
) -> None:
    files, at = passing
    if part == "quote":
        doc = json.loads(files["report.json"])
        raw = bytes.fromhex(doc["intel_quote"])
        mutated = data.draw(mutated_bytes(Seed("quote", raw), max_edits=2, region=_SIGNED))
        for entry in (doc, *doc["all_attestations"]):
            entry["intel_quote"] = entry["quote"] = mutated.hex()
        files = {**files, "report.json": json.dumps(doc).encode()}
        changed = mutated != raw
    else:
        body = data.draw(mutated_bytes(Seed(part, files[part]), max_edits=2))
        changed = body != files[part]
        files = {**files, part: body}
    verdict, checks = _verify(_write(tmp_path_factory.mktemp("b"), files), at)
    assert verdict["status"] != "pass" or not changed, checks


RECORDED = {"phala-flat": PHALA_FLAT_AT, "near-two-layer-model": NEAR_AT, "chutes": CHUTES_AT}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(RECORDED)),
    part=st.sampled_from(["meta.json", "report.json", "nras/response.json"]),
    data=st.data(),
)
def test_random_mutations_of_recorded_bundles_are_never_pass_and_never_internal_error(
    tmp_path_factory: pytest.TempPathFactory, name: str, part: str, data: st.DataObject
) -> None:
    # recorded evidence carries a supplied nonce (never minted by us), so no mutation of it may pass either
    files = ALL[name]().files()
    doc = json.loads(files[part])
    seed = Seed(f"{name}/{part}", files[part])
    files[part] = data.draw(st.one_of(mutated_json(Seed(seed.name, doc)), mutated_bytes(seed)))
    result = _invoke(_write(tmp_path_factory.mktemp("recorded"), files), RECORDED[name], "production")
    if result.exit_code == 1:  # an unreadable bundle (meta.json): a usage error with a message
        assert result.output.startswith("Error: "), result.output
        return
    verdict, _ = _judge(result.output)
    assert verdict["status"] in ("fail", "indeterminate")


def test_a_chutes_instance_nonce_with_a_lone_surrogate_fails_as_malformed_evidence(tmp_path: Path) -> None:
    files = chutes().files()
    doc = json.loads(files["report.json"])
    doc["all_attestations"][2]["nonce"] = doc["all_attestations"][2]["nonce"][:10] + "\ud800"
    files["report.json"] = json.dumps(doc).encode()
    verdict, checks = _verify(_write(tmp_path / "b", files), CHUTES_AT, trust="production")
    assert verdict["status"] == "fail"
    assert checks["report.signer"] == ("fail", "malformed_evidence")


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda f: {**f, "meta.json": b'{"nonce_origin": ["minted"]}'}, "nonce_origin"),
        (lambda f: {**f, "meta.json": b'{"nonce_origin": {"minted": true}}'}, "nonce_origin"),
        (lambda f: {**f, "meta.json": b'{"model": "\\ud800"}'}, "surrogate"),
        (lambda f: {**f, "meta.json": b'{"captured_at": [1]}'}, "captured_at"),
    ],
    ids=["nonce_origin list", "nonce_origin object", "model surrogate", "captured_at list"],
)
def test_an_unreadable_meta_json_is_a_usage_error_not_a_traceback(
    tmp_path: Path, passing: tuple[Files, int], make: Callable[[Files], Files], needle: str
) -> None:
    files, at = passing
    result = _invoke(_write(tmp_path / "b", make(files)), at, "simulator")
    assert result.exit_code == 1 and needle in result.output and "Traceback" not in result.output, result.output


@pytest.mark.parametrize(
    "bad_name", ["", "../meta.json", "/report.json", "report.json"], ids=["empty", "dotdot", "absolute", "duplicate"]
)
def test_a_zip_with_a_hostile_member_name_is_a_usage_error_not_a_traceback(
    tmp_path: Path, passing: tuple[Files, int], bad_name: str
) -> None:
    files, at = passing
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the duplicate name warns while being written
        for name, body in files.items():
            zf.writestr(name, body)
        zf.writestr(zipfile.ZipInfo(bad_name), b"{}")
    result = _invoke(path, at, "simulator")
    assert result.exit_code == 1, result.output
    assert "plain relative path" in result.output or "more than once" in result.output
