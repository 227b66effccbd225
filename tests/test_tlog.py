"""The ledger's transparency log: a leaf per verdict in its own transaction, roots, proofs, checkpoints, backfill."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests_support import EVIDENCE, verdict

from verifier.adapters.ledger import Ledger
from verifier.adapters.ledger.tlog import consistency, inclusion, index_of, root_at, stored_checkpoint, tree_size
from verifier.core.checkpoint import NoteSigner, verify_checkpoint
from verifier.core.merkle import leaf_hash, root_hash, verdict_entry, verify_consistency, verify_inclusion

SIGNER = NoteSigner("verifier.test/log", Ed25519PrivateKey.generate())


def fill(ledger: Ledger, n: int) -> list[str]:
    return [ledger.save(verdict(subject={"model": f"m{i}", "signer": "0xabc"}), EVIDENCE) for i in range(n)]


def test_every_saved_verdict_is_a_leaf_of_its_stored_json_in_id_order(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        ids = fill(ledger, 7)
        assert tree_size(ledger.db) == 7
        leaves = [leaf_hash(verdict_entry(ledger.get(i) or {})) for i in ids]
        assert [index_of(ledger.db, i) for i in ids] == list(range(7))
        for n in range(8):
            assert root_at(ledger.db, n) == root_hash(leaves[:n])


def test_inclusion_and_consistency_proofs_from_the_ledger_verify(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        ids = fill(ledger, 6)
        for size in range(1, 7):
            for i, vid in enumerate(ids[:size]):
                proof = inclusion(ledger.db, vid, size)
                assert proof.index == i and proof.size == size
                verify_inclusion(
                    i, size, leaf_hash(verdict_entry(ledger.get(vid) or {})), proof.path, root_at(ledger.db, size)
                )
        for old in range(0, 7):
            for new in range(old, 7):
                c = consistency(ledger.db, old, new)
                verify_consistency(
                    old,
                    new,
                    base64.b64decode(c["old_root"]),
                    base64.b64decode(c["new_root"]),
                    [base64.b64decode(p) for p in c["consistency_path"]],
                )
        with pytest.raises(ValueError):
            inclusion(ledger.db, ids[3], 3)  # the tree of 3 does not hold leaf 3
        with pytest.raises(ValueError):
            inclusion(ledger.db, ids[0], 7)
        with pytest.raises(KeyError):
            inclusion(ledger.db, "nope")
        with pytest.raises(ValueError):
            consistency(ledger.db, 4, 3)


def test_with_a_log_key_every_save_stores_the_signed_checkpoint_of_the_new_head(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.log_signer = SIGNER
        fill(ledger, 3)
        for size in (1, 2, 3):
            stored = stored_checkpoint(ledger.db, size)
            assert stored is not None
            cp = verify_checkpoint(stored[1], SIGNER.verifier, origin="verifier.test/log")
            assert (cp.size, cp.root) == (size, root_at(ledger.db, size))
        assert stored_checkpoint(ledger.db) == stored_checkpoint(ledger.db, 3)


def test_a_verdict_that_fails_to_log_is_not_saved_either(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        fill(ledger, 1)
        ledger.db.execute("CREATE TRIGGER tlog_refuse BEFORE INSERT ON tlog BEGIN SELECT RAISE(ABORT, 'no'); END")
        with pytest.raises(sqlite3.IntegrityError):
            fill(ledger, 1)
        assert ledger.db.execute("SELECT count(*) FROM verdicts").fetchone()[0] == 1


def test_migration_0005_logs_the_verdicts_recorded_before_it(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    with Ledger.open(path) as ledger:
        ids = fill(ledger, 5)
        expected = root_at(ledger.db, 5)
    conn = sqlite3.connect(path, isolation_level=None)  # as if recorded by a verifier before 0005
    for statement in (
        "DROP TABLE tlog",
        "DROP TABLE tlog_checkpoints",
        "DELETE FROM _sqlite_migrations WHERE name = '0005_tlog'",
    ):
        conn.execute(statement)
    conn.close()
    with Ledger.open(path) as ledger:
        assert tree_size(ledger.db) == 5 and root_at(ledger.db, 5) == expected
        assert [index_of(ledger.db, i) for i in ids] == list(range(5))


def _signed_ledger(path: Path, n: int) -> list[str]:
    with Ledger.open(path) as ledger:
        ledger.log_signer = SIGNER
        return fill(ledger, n)


def _raw(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {row[0]}")
    for statement in statements:
        conn.execute(statement)
    conn.close()


def _check(path: Path, *extra: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from verifier.cli import main

    result = CliRunner().invoke(main, ["ledger", "check", "--db", str(path), *extra])
    return result.exit_code, result.output


def test_ledger_check_recomputes_the_tree_and_the_latest_checkpoint_matches(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    _signed_ledger(path, 4)
    vkey = tmp_path / "log.vkey"
    vkey.write_text(SIGNER.verifier.vkey() + "\n")
    code, out = _check(path, "--log-key", str(vkey))
    assert code == 0 and "log of 4 leaves (latest checkpoint: size 4)" in out


def test_ledger_check_detects_a_tampered_verdict_even_with_the_log_rows_rewritten_to_match(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ids = _signed_ledger(path, 3)
    with Ledger.open(path) as ledger:
        edited = {**(ledger.get(ids[1]) or {}), "status": "fail"}
    import json as _json

    text = _json.dumps(edited, separators=(",", ":"))
    new_leaf = leaf_hash(verdict_entry(edited)).hex()
    _raw(
        path,
        f"UPDATE verdicts SET verdict_json = '{text}', status = 'fail' WHERE id = '{ids[1]}'",
        f"UPDATE tlog SET leaf_sha256 = '{new_leaf}' WHERE idx = 1",
    )
    code, out = _check(path)
    assert code == 2
    assert "checkpoint of size 3: its signed root is not the recomputed root" in out
    assert "leaf 1: its stored frontier or root is not the recomputed one" in out


def test_ledger_check_detects_a_reordered_log(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ids = _signed_ledger(path, 3)
    _raw(
        path,
        "UPDATE tlog SET idx = idx + 10",
        f"UPDATE tlog SET idx = 0 WHERE verdict_id = '{ids[1]}'",
        f"UPDATE tlog SET idx = 1 WHERE verdict_id = '{ids[0]}'",
        f"UPDATE tlog SET idx = 2 WHERE verdict_id = '{ids[2]}'",
    )
    code, out = _check(path)
    assert code == 2 and f"leaf 0 is verdict {ids[1]}, expected {ids[0]}" in out


def test_ledger_check_with_the_log_key_detects_a_forged_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    _signed_ledger(path, 2)
    forger = NoteSigner(SIGNER.name, Ed25519PrivateKey.generate())
    with Ledger.open(path) as ledger:
        forged_root = root_at(ledger.db, 2)
    from verifier.core.checkpoint import Checkpoint

    note = forger.sign_checkpoint(Checkpoint(SIGNER.name, 2, forged_root)).replace("'", "''")
    _raw(path, f"UPDATE tlog_checkpoints SET note = '{note}' WHERE size = 2")
    assert "checkpoint of size 2" not in _check(path)[1]  # without the key only size and root compare, and they match
    vkey = tmp_path / "log.vkey"
    vkey.write_text(SIGNER.verifier.vkey())
    code, out = _check(path, "--log-key", str(vkey))
    assert code == 2 and "checkpoint of size 2: the note carries no signature by" in out


def test_ledger_check_detects_verdicts_removed_after_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ids = _signed_ledger(path, 3)
    _raw(
        path,
        *(
            f"DELETE FROM {t} WHERE verdict_id = '{ids[2]}'"
            for t in ("checks", "verdict_evidence", "attestations", "tlog")
        ),
        f"DELETE FROM verdicts WHERE id = '{ids[2]}'",
    )
    code, out = _check(path)
    assert code == 2 and "checkpoint of size 3: the log has only 2 verdicts" in out
