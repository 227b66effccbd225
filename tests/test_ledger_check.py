"""`verifier ledger check`: every ledger table is append-only, and an edit made around the triggers (a repointed
evidence reference, an edited check row or attestation, a removed verdict, a corrupted blob) is reported, exit 2."""

from __future__ import annotations

import sqlite3
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests_support import EVIDENCE, REPORT, save_one

from verifier.adapters.ledger import Ledger, check_ledger
from verifier.adapters.ledger.schema import APPEND_ONLY_TABLES, KEYED_TABLES
from verifier.cli import main


def check(db: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["ledger", "check", "--db", str(db)])
    return result.exit_code, result.output


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "l.db"
    for i in range(3):
        save_one(
            path,
            {**EVIDENCE, "response.body": f'{{"id": "c{i}"}}'.encode()},
            subject={"model": f"m{i}", "signer": "0xabc"},
        )
    return path


def edit(db: Path, *statements: str) -> None:
    """What someone with the file can do: drop the triggers, edit, (not) put them back."""
    conn = sqlite3.connect(db, isolation_level=None)
    for table in APPEND_ONLY_TABLES:
        for op in ("update", "delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}")
    for statement in statements:
        conn.execute(statement)
    conn.close()


def test_an_untouched_ledger_checks_ok(db: Path) -> None:
    code, out = check(db)
    assert code == 0 and out.startswith("ok:") and "3 verdicts" in out


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_every_ledger_table_refuses_updates_and_deletes(db: Path, table: str) -> None:
    with Ledger.open(db) as ledger:
        if table in ("api_keys", "api_key_revocations", "key_log"):
            from verifier.app.keys import KeyStore

            store = KeyStore(ledger)
            key, _ = store.create("read")
            store.revoke(key.id)
        if table == "tlog_checkpoints":  # the transparency log (0005): a signed checkpoint to try to edit
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            from verifier.adapters.ledger.tlog import sign_head
            from verifier.core.checkpoint import NoteSigner

            with ledger.transaction():
                sign_head(ledger.db, NoteSigner("test/log", Ed25519PrivateKey.generate()), 0.0)
        if table == "verdict_claims":  # a verdict whose claims name a TCB status: the index has a row
            ledger.save(
                {
                    "id": None,
                    "status": "fail",
                    "checks": [],
                    "claims": {"tdx": {"$": {"dcap": {"status": "OutOfDate"}}}},
                },
                {},
            )
        if table.startswith("job"):  # one job over one verdict, with an item: every job table has a row
            from verifier.adapters.ledger.jobs import Item, JobStore

            jobs = JobStore(ledger)
            newest = ledger.list(limit=1)[0][0]
            (head,) = jobs.select(trust_profile=newest["trust_profile"], ids=[newest["id"]])
            job_id = jobs.create(
                spec={},
                selection=[head],
                policy_text=None,
                policy_id="p",
                policy_sha256="0" * 64,
                trust_profile=newest["trust_profile"],
                at=None,
                collateral="recorded",
            )
            jobs.commit(job_id, [Item(head, "pass", None, error="test")])
        statements = [f"DELETE FROM {table}", f"UPDATE {table} SET rowid = rowid"]
        if table in KEYED_TABLES:  # a REPLACE would delete the row without firing the DELETE trigger
            statements.append(f"INSERT OR REPLACE INTO {table} SELECT * FROM {table}")
        assert ledger.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0
        for statement in statements:
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                ledger.db.execute(statement)


def test_a_repointed_response_body_is_detected(db: Path) -> None:
    edit(
        db,
        "UPDATE verdict_evidence SET sha256 = (SELECT sha256 FROM verdict_evidence WHERE name = 'response.body'"
        " ORDER BY verdict_id DESC LIMIT 1) WHERE name = 'response.body' AND verdict_id = (SELECT min(id) FROM "
        "verdicts)",
    )
    code, out = check(db)
    assert code == 2 and "repointed" in out and "MISMATCH verdict v_" in out


@pytest.mark.parametrize(
    ("statement", "needle"),
    [
        ("UPDATE checks SET status = 'fail' WHERE rowid = 1", "check rows"),
        ("UPDATE attestations SET signer = '0xevil'", "attestation row"),
        ("UPDATE verdicts SET status = 'fail' WHERE id = (SELECT min(id) FROM verdicts)", "columns status"),
        (
            "DELETE FROM verdict_evidence WHERE name = 'report.json' AND verdict_id = (SELECT max(id) FROM verdicts)",
            "manifest",
        ),
        ("INSERT INTO checks (verdict_id, check_id, status) VALUES ('v_nobody', 'x', 'pass')", "point at no verdict"),
    ],
)
def test_edits_around_the_triggers_are_reported(db: Path, statement: str, needle: str) -> None:
    edit(db, statement)
    code, out = check(db)
    assert code == 2 and needle in out, out
    assert "trigger" in out  # the missing triggers are reported too


def test_a_trigger_the_migrations_do_not_create_is_reported(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TRIGGER rewrite_checks AFTER INSERT ON checks BEGIN UPDATE verdicts SET status = 'pass'; END")
    conn.close()
    code, out = check(db)
    assert code == 2 and "trigger rewrite_checks is not one the migrations create" in out, out


def test_a_trigger_with_the_right_name_and_other_sql_is_reported(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER checks_no_delete")
    conn.execute("CREATE TRIGGER checks_no_delete BEFORE DELETE ON checks WHEN 0 BEGIN SELECT RAISE(ABORT, 'x'); END")
    conn.close()
    code, out = check(db)
    assert code == 2 and "trigger checks_no_delete is not the one the migrations create" in out, out


def test_a_removed_verdict_breaks_the_hash_chain(db: Path) -> None:
    with Ledger.open(db) as ledger:
        middle = ledger.list()[0][1]["id"]
    edit(
        db,
        f"DELETE FROM attestations WHERE verdict_id = '{middle}'",
        f"DELETE FROM checks WHERE verdict_id = '{middle}'",
        f"DELETE FROM verdict_evidence WHERE verdict_id = '{middle}'",
        f"DELETE FROM verdicts WHERE id = '{middle}'",
    )
    code, out = check(db)
    assert code == 2 and "hash chain broken" in out


def test_a_corrupted_blob_is_reported(db: Path) -> None:
    edit(
        db,
        f"UPDATE evidence SET data = X'{zlib.compress(REPORT.replace(b'abc', b'abd')).hex()}' WHERE size = "
        f"{len(REPORT)}",
    )
    with Ledger.open_readonly(db) as ledger:
        report = check_ledger(ledger)
    assert not report.ok and any("evidence blob" in p for p in report.problems)
    assert any("whose bytes do not match" in p for p in report.problems)


def test_a_ledger_from_before_the_chain_checks_ok_and_says_so(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    save_one(db)
    edit(db, "UPDATE verdicts SET chain_sha256 = NULL, evidence_sha256 = NULL, submitted_by = NULL")
    with Ledger.open_readonly(db) as ledger:
        report = check_ledger(ledger)
    assert report.unchained == 1
    assert [p for p in report.problems if "trigger" not in p] == []


def test_a_key_inserted_outside_the_verifier_is_reported(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(
        "INSERT INTO api_keys (id, key_sha256, role, name, created_at) VALUES ('vk_evil', ?, 'admin', 'x', 1.0)",
        ["0" * 64],
    )
    conn.close()
    code, out = check(db)
    assert code == 2 and "api key vk_evil: not in the key log" in out, out


def test_an_edited_key_log_link_is_reported(db: Path) -> None:
    from verifier.app.keys import KeyStore

    with Ledger.open(db) as ledger:
        KeyStore(ledger).create("read", "a")
        KeyStore(ledger).create("read", "b")
    edit(db, "UPDATE key_log SET role = 'admin' WHERE seq = 1", "UPDATE api_keys SET role = 'admin'")
    code, out = check(db)
    assert code == 2 and "key log: event 1's link does not follow" in out, out


def test_keys_made_before_the_key_log_are_logged_by_its_migration(db: Path) -> None:
    from verifier.app.keys import KeyStore

    with Ledger.open(db) as ledger:
        store = KeyStore(ledger)
        kept, _ = store.create("submit", "kept")
        gone, _ = store.create("admin", "gone")
        store.revoke(gone.id)
    conn = sqlite3.connect(db, isolation_level=None)  # the ledger as migration 0005 left it
    conn.execute("DROP TABLE key_log")
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE '%_no_replace'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")  # and as it was before 0007
    conn.execute("DELETE FROM _sqlite_migrations WHERE name IN ('0006_key_log', '0007_no_replace')")
    conn.close()
    with Ledger.open(db) as ledger:
        events = ledger.db.execute("SELECT event, key_id, role FROM key_log ORDER BY seq").fetchall()
    assert events == [("create", kept.id, "submit"), ("create", gone.id, "admin"), ("revoke", gone.id, None)]
    code, out = check(db)
    assert code == 0 and "key log of 3 events (head " in out, out
