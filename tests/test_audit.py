"""The "done when" of signed, portable results: for verdicts recorded through the service, the verdict JSON, its EAR,
an inclusion proof, a checkpoint and the JWKS / log key prove — with no database — that the verifier signed the
result and committed it to the log (a standalone script and `verifier log verify` / `verifier ear verify`); a
tampered verdict, a forged checkpoint, a stale proof and a foreign EAR each fail."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from web_env import Env, post, start

from verifier.app.audit import AuditError, audit_consistency, audit_inclusion
from verifier.app.ear import jwks
from verifier.app.keys import Role
from verifier.cli import main
from verifier.core.checkpoint import Checkpoint, NoteSigner

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "audit_verdict.py"


async def _get(env: Env, path: str, role: Role | None = Role.READ) -> str:
    resp = await env.client.get(path, headers=env.auth(role) if role else {})
    assert resp.status == 200, path
    return await resp.text()


@pytest.fixture
async def files(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> dict[str, Path]:
    """Two verdicts recorded through the HTTP API; the files an auditor keeps of the first; then the database goes."""
    env = await start(
        aiohttp_client,
        aiohttp_server,
        tmp_path,
        log_key_path=str(tmp_path / "log.pem"),
        ear_key_path=str(tmp_path / "ear.pem"),
    )
    first = await (await post(env)).json()
    out = tmp_path / "audit"
    out.mkdir()
    old_checkpoint = await _get(env, "/v1/log/checkpoint")
    await post(env)
    saved = {
        "verdict.json": await _get(env, f"/v1/verifications/{first['id']}"),
        "ear.jwt": await _get(env, f"/v1/verifications/{first['id']}/ear"),
        "checkpoint.txt": await _get(env, "/v1/log/checkpoint"),
        "old-checkpoint.txt": old_checkpoint,
        "proof.json": await _get(env, f"/v1/log/proof/{first['id']}?size=2"),
        "stale-proof.json": await _get(env, f"/v1/log/proof/{first['id']}?size=1"),
        "consistency.json": await _get(env, "/v1/log/consistency?from=1&to=2"),
        "jwks.json": await _get(env, "/.well-known/jwks.json", None),
        "log.vkey": await _get(env, "/v1/log/key", None),
    }
    for name, text in saved.items():
        (out / name).write_text(text)
    for db_file in tmp_path.glob("verifier.db*"):
        db_file.unlink()
    return {name: out / name for name in saved}


def script(f: dict[str, Path], **replace: Path) -> subprocess.CompletedProcess[str]:
    f = {**f, **replace}
    args = [f[n] for n in ("verdict.json", "ear.jwt", "proof.json", "checkpoint.txt", "jwks.json", "log.vkey")]
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def log_verify(f: dict[str, Path], *extra: str, **replace: Path) -> tuple[int, str]:
    f = {**f, **replace}
    args = [
        "log",
        "verify",
        "--log-key",
        str(f["log.vkey"]),
        "--checkpoint",
        str(f["checkpoint.txt"]),
        "--proof",
        str(f["proof.json"]),
        "--verdict",
        str(f["verdict.json"]),
        *extra,
    ]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


def altered(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text
    out = path.with_name("altered-" + path.name)
    out.write_text(text.replace(old, new, 1))
    return out


def test_a_standalone_script_with_only_the_files_proves_signature_and_inclusion(files: dict[str, Path]) -> None:
    done = script(files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: verdict ") and "is leaf 0 of" in done.stdout


def test_verifier_log_verify_checks_inclusion_consistency_and_the_ear(files: dict[str, Path]) -> None:
    code, out = log_verify(
        files,
        "--old-checkpoint",
        str(files["old-checkpoint.txt"]),
        "--consistency",
        str(files["consistency.json"]),
        "--ear",
        str(files["ear.jwt"]),
        "--jwks",
        str(files["jwks.json"]),
    )
    assert code == 0, out
    assert (
        "included: verdict" in out
        and "leaf 0" in out
        and "consistent: the tree of 1 leaves" in out
        and "EAR: signed" in out
    )


def test_a_tampered_verdict_fails(files: dict[str, Path]) -> None:
    verdict = json.loads(files["verdict.json"].read_text())
    tampered = files["verdict.json"].with_name("tampered.json")
    tampered.write_text(
        json.dumps({**verdict, "notes": []} if verdict["notes"] else {**verdict, "notes": [{"code": "x"}]})
    )
    code, out = log_verify(files, **{"verdict.json": tampered})
    assert code == 2 and "is not leaf 0 of the signed tree" in out
    assert script(files, **{"verdict.json": tampered}).returncode == 2


def test_a_forged_checkpoint_fails(files: dict[str, Path]) -> None:
    forged = altered(files["checkpoint.txt"], "\n2\n", "\n3\n")
    code, out = log_verify(files, **{"checkpoint.txt": forged})
    assert code == 2 and "does not verify" in out
    assert script(files, **{"checkpoint.txt": forged}).returncode == 2


def test_a_stale_proof_fails(files: dict[str, Path]) -> None:
    code, out = log_verify(files, **{"proof.json": files["stale-proof.json"]})
    assert code == 2 and "stale proof" in out
    assert script(files, **{"proof.json": files["stale-proof.json"]}).returncode == 2


def test_an_old_checkpoint_the_new_one_does_not_extend_fails(files: dict[str, Path]) -> None:
    consistency = json.loads(files["consistency.json"].read_text())
    bad = files["consistency.json"].with_name("bad-consistency.json")
    bad.write_text(json.dumps({**consistency, "consistency_path": [consistency["old_root"]]}))
    code, out = log_verify(files, "--old-checkpoint", str(files["old-checkpoint.txt"]), "--consistency", str(bad))
    assert code == 2 and "not a prefix" in out


def test_ear_verify_checks_a_token_against_a_jwks_file(files: dict[str, Path], tmp_path: Path) -> None:
    ok = CliRunner().invoke(main, ["ear", "verify", str(files["ear.jwt"]), "--jwks", str(files["jwks.json"])])
    assert ok.exit_code == 0 and json.loads(ok.output)["eat_profile"] == "tag:ietf.org,2026:rats/ear#04"
    other = tmp_path / "other-jwks.json"
    other.write_text(json.dumps(jwks((Ed25519PrivateKey.generate(),))))
    bad = CliRunner().invoke(main, ["ear", "verify", files["ear.jwt"].read_text(), "--jwks", str(other)])
    assert bad.exit_code == 2 and "no key with kid" in bad.output
    foreign = CliRunner().invoke(
        main,
        [
            "log",
            "verify",
            "--log-key",
            str(files["log.vkey"]),
            "--checkpoint",
            str(files["checkpoint.txt"]),
            "--proof",
            str(files["proof.json"]),
            "--verdict",
            str(files["verdict.json"]),
            "--ear",
            str(files["ear.jwt"]),
            "--jwks",
            str(other),
        ],
    )
    assert foreign.exit_code == 2


def test_log_verify_refuses_incomplete_arguments(files: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        main,
        [
            "log",
            "verify",
            "--log-key",
            str(files["log.vkey"]),
            "--checkpoint",
            str(files["checkpoint.txt"]),
            "--proof",
            str(files["proof.json"]),
        ],
    )
    assert result.exit_code != 0 and "give --proof with --verdict" in result.output


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**60) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
_SIGNER = NoteSigner("audit.test/log", Ed25519PrivateKey.from_private_bytes(bytes(32)))
_NOTE = _SIGNER.sign_checkpoint(Checkpoint("audit.test/log", 3, bytes(32)))


@given(
    _JSON,
    _JSON,
    st.dictionaries(
        st.sampled_from(["log_index", "tree_size", "verdict_id", "inclusion_path"]),
        _JSON | st.integers(0, 4) | st.lists(st.just("AAAA"), max_size=3),
    ),
)
def test_arbitrary_proof_and_verdict_files_raise_only_audit_error(
    verdict: Any, proof: Any, fields: dict[str, Any]
) -> None:
    for candidate in (proof, {"tree_size": 3, "verdict_id": None, **fields}):
        with contextlib.suppress(AuditError):
            audit_inclusion(verdict, candidate, _NOTE, _SIGNER.verifier)
        with contextlib.suppress(AuditError):
            audit_consistency(_NOTE, Checkpoint("audit.test/log", 3, bytes(32)), candidate, _SIGNER.verifier)


def test_ear_verify_fetches_the_jwks_from_a_url_without_following_redirects(files: dict[str, Path]) -> None:
    import http.server
    import threading

    body = files["jwks.json"].read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/.well-known/jwks.json":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(302)
                self.send_header("Location", "/.well-known/jwks.json")
                self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        ok = CliRunner().invoke(
            main, ["ear", "verify", str(files["ear.jwt"]), "--jwks", f"{base}/.well-known/jwks.json"]
        )
        assert ok.exit_code == 0, ok.output
        moved = CliRunner().invoke(main, ["ear", "verify", str(files["ear.jwt"]), "--jwks", f"{base}/old"])
        assert (
            moved.exit_code != 0 and "HTTP 302" in moved.output and "FAIL" not in moved.output
        )  # usage, not a verdict
    finally:
        server.shutdown()
