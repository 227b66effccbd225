"""Every usage error of the CLI is one `Error: …` line and exit 1, never a traceback; read commands never write."""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from verifier.adapters.ledger import Ledger
from verifier.cli import main


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def assert_usage_error(code: int, out: str, needle: str) -> None:
    assert code == 1, out
    assert "Traceback" not in out and out.startswith("Error: ") and needle in out, out


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    Ledger.open(path).close()
    return path


def test_serve_on_a_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out = run("serve", "--port", str(port), "--db", str(tmp_path / "x.db"), "--insecure-no-auth")
    assert_usage_error(code, out, "cannot listen")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--port", "70000"], "70000"),
        (["--workers", "0"], "--workers"),
        (["--allow-gateway", "http://[::1"], "gateway URL"),
        (["--allow-gateway", "http://h:99999"], "gateway URL"),
        (["--insecure-no-auth", "--host", "0.0.0.0"], "loopback"),
        (["--retain-bodies", "some"], "retain-bodies"),
    ],
)
def test_serve_refuses_bad_options_before_starting(tmp_path: Path, args: list[str], needle: str) -> None:
    # as the console entry point runs it (`verifier.cli.run`: a ClickException is one `Error: …` line and exit 1)
    result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "x.db"), *args], standalone_mode=False)
    assert isinstance(result.exception, click.ClickException), result.exception
    assert needle in result.exception.format_message() and not (tmp_path / "x.db").exists()


def test_the_console_entry_point_turns_a_usage_error_into_one_line_and_exit_1(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from verifier.cli import run; run()",
            "serve",
            "--port",
            "70000",
            "--db",
            str(tmp_path / "x.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr and [line for line in lines if line.startswith("Error: ")] == [lines[-1]]
    assert "70000" in lines[-1]  # click's usage hint above it, then the one error line


@pytest.mark.parametrize("db", ["{tmp}/missing/x.db", "{tmp}/notsqlite.db", "{tmp}"])
def test_serve_with_a_db_it_cannot_open_is_a_usage_error(tmp_path: Path, db: str) -> None:
    (tmp_path / "notsqlite.db").write_bytes(b"this is not a database, just text" * 40)
    code, out = run("serve", "--db", db.format(tmp=tmp_path), "--port", "0")
    assert_usage_error(code, out, "ledger")


@pytest.mark.parametrize(
    "command", [["show", "v_X"], ["list"], ["export", "v_X", "-o", "/dev/null"], ["keys", "list"], ["ledger", "check"]]
)
def test_read_commands_on_a_non_sqlite_file_are_usage_errors(tmp_path: Path, command: list[str]) -> None:
    bad = tmp_path / "notsqlite.db"
    bad.write_bytes(b"not a database" * 100)
    code, out = run(*command, "--db", str(bad))
    assert_usage_error(code, out, "not a verifier ledger")


def test_list_on_an_empty_file_does_not_create_the_schema(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    code, out = run("list", "--db", str(empty))
    assert_usage_error(code, out, "not a verifier ledger")
    assert empty.read_bytes() == b""  # a read command wrote nothing


def test_read_commands_open_the_ledger_read_only(ledger_path: Path) -> None:
    before = hashlib.sha256(ledger_path.read_bytes()).hexdigest()
    for command in (["list"], ["show", "v_00000000000000000000000000"], ["keys", "list"], ["ledger", "check"]):
        run(*command, "--db", str(ledger_path))
    assert hashlib.sha256(ledger_path.read_bytes()).hexdigest() == before
    ro = Ledger.open_readonly(ledger_path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        ro.db.execute("INSERT INTO heartbeat (id, at) VALUES (1, 0)")
    ro.close()


def test_export_into_a_missing_folder_is_a_usage_error(tmp_path: Path, ledger_path: Path) -> None:
    from tests_support import save_one

    verdict_id = save_one(ledger_path)
    code, out = run("export", verdict_id, "--db", str(ledger_path), "-o", str(tmp_path / "no" / "such" / "x.zip"))
    assert_usage_error(code, out, "cannot write")


def test_policy_check_refuses_a_minimum_driver_that_is_not_a_version(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text('[gpu]\nmin_driver = "abc"\n')
    code, out = run("policy", "check", str(bad))
    assert_usage_error(code, out, "gpu.min_driver")
    bad.write_text('[gpu]\nmin_vbios = "96.zz"\n')
    assert_usage_error(*run("policy", "check", str(bad)), "gpu.min_vbios")
    bad.write_text('[gpu]\nmin_driver = "550.54.15"\nmin_vbios = "96.00.74.00.1C"\n')
    assert run("policy", "check", str(bad))[0] == 0


def test_verify_with_a_non_ascii_upstream_key_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "r").write_bytes(b"{}")
    (tmp_path / "s").write_bytes(b'{"id": "c1"}')
    code, out = run(
        "verify",
        "--request",
        str(tmp_path / "r"),
        "--response",
        str(tmp_path / "s"),
        "--model",
        "m",
        "--gateway",
        "http://127.0.0.1:9",
        "--offline",
        env={"VERIFIER_UPSTREAM_KEY": "sk-\u00e9\u00e9"},
    )
    assert_usage_error(code, out, "printable ASCII")
