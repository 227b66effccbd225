"""API keys: made and printed once (alone on the last stdout line), stored only as a hash, looked up by id,
revoked for good; `serve` with an empty key store makes (or imports) the first admin key."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from verifier.adapters.ledger import Ledger
from verifier.app.keys import KeyStore, Role, key_id
from verifier.cli import main
from verifier.cli.keys import bootstrap_admin_key
from verifier.core.errors import ConfigError


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def test_keys_create_prints_the_key_alone_on_the_last_line_and_stores_only_its_hash(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    code, out = cli("keys", "create", "--role", "submit", "--name", "compliance bot", "--db", str(db))
    assert code == 0
    secret = out.rstrip("\n").splitlines()[-1]
    assert secret.startswith("vk_") and len(secret) == 46 and " " not in secret
    assert secret.encode() not in db.read_bytes()
    with Ledger.open(db) as ledger:
        key = KeyStore(ledger).authenticate(secret)
        assert key is not None and key.role is Role.SUBMIT and key.name == "compliance bot"
        row = ledger.db.execute("SELECT key_sha256 FROM api_keys WHERE id = ?", [key.id]).fetchone()
        assert row[0] == hashlib.sha256(secret.encode()).hexdigest() and key.id == key_id(secret)
    code, out = cli("keys", "list", "--db", str(db))
    assert code == 0 and key.id in out and "submit" in out and secret not in out


def test_keys_revoke_stops_the_key_and_is_recorded_append_only(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    secret = cli("keys", "create", "--role", "read", "--db", str(db))[1].splitlines()[-1]
    kid = key_id(secret)
    code, out = cli("keys", "revoke", kid, "--db", str(db))
    assert code == 0 and "revoked" in out
    with Ledger.open(db) as ledger:
        assert KeyStore(ledger).authenticate(secret) is None
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            ledger.db.execute("DELETE FROM api_key_revocations")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            ledger.db.execute("UPDATE api_keys SET role = 'admin'")
    code, out = cli("keys", "revoke", "0000000000000000", "--db", str(db))
    assert code == 1 and "no key" in out
    assert "revoked" in cli("keys", "list", "--db", str(db))[1]


def test_keys_create_rejects_a_role_it_does_not_know(tmp_path: Path) -> None:
    code, out = cli("keys", "create", "--role", "root", "--db", str(tmp_path / "l.db"))
    assert code != 0 and "root" in out


@pytest.mark.parametrize("secret", ["", "vk_unknown", "x" * 300, "vk_\u00e9", "Bearer vk_x", "vk_a\nb"])
def test_unknown_or_malformed_keys_do_not_authenticate(tmp_path: Path, secret: str) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        store = KeyStore(ledger)
        store.create(Role.ADMIN)
        assert store.authenticate(secret) is None


def test_a_key_whose_id_matches_but_hash_differs_does_not_authenticate(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        store = KeyStore(ledger)
        key, secret = store.create(Role.ADMIN)
        ledger.db.execute("DROP TRIGGER api_keys_no_update")
        ledger.db.execute("UPDATE api_keys SET key_sha256 = ? WHERE id = ?", ["00" * 32, key.id])
        assert store.authenticate(secret) is None  # the id is only the lookup; the full hash decides


def test_serve_with_an_empty_key_store_makes_an_admin_key_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "l.db"
    bootstrap_admin_key(str(db), None)
    secret = capsys.readouterr().out.splitlines()[-1]
    bootstrap_admin_key(str(db), None)  # a second start: keys exist, nothing is printed
    assert capsys.readouterr().out == ""
    with Ledger.open(db) as ledger:
        key = KeyStore(ledger).authenticate(secret)
        assert key is not None and key.role is Role.ADMIN


def test_serve_imports_the_first_admin_key_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = "vk_" + "k" * 40
    (tmp_path / "key").write_text(chosen + "\n")
    bootstrap_admin_key(str(tmp_path / "a.db"), tmp_path / "key")
    monkeypatch.setenv("VERIFIER_ADMIN_KEY", "e" * 40)
    bootstrap_admin_key(str(tmp_path / "b.db"), None)
    for db, secret in ((tmp_path / "a.db", chosen), (tmp_path / "b.db", "e" * 40)):
        with Ledger.open(db) as ledger:
            found = KeyStore(ledger).authenticate(secret)
            assert found is not None and found.role is Role.ADMIN
        assert secret.encode() not in db.read_bytes()


def test_an_imported_key_must_be_long_enough(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger, pytest.raises(ConfigError, match="32"):
        KeyStore(ledger).import_key("short", Role.ADMIN, "x")
