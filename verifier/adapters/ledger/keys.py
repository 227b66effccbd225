"""API-key rows in the ledger database: insert, find by id, list, revoke. Append-only like every ledger table:
a revocation is a row of its own, and both are logged in the key log (``key_log``). Only hashes are stored
(``verifier.app.keys`` makes and checks keys)."""

from __future__ import annotations

from dataclasses import dataclass

from verifier.adapters.ledger.key_log import append_key_event
from verifier.adapters.ledger.ledger import Ledger


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: str
    key_sha256: str
    role: str
    name: str
    created_at: float
    revoked_at: float | None


_SELECT = (
    "SELECT k.id, k.key_sha256, k.role, k.name, k.created_at, r.revoked_at FROM api_keys k"
    " LEFT JOIN api_key_revocations r ON r.key_id = k.id"
)


def insert_key(ledger: Ledger, *, key_id: str, key_sha256: str, role: str, name: str) -> KeyRow:
    """A new key row; ValueError if the id exists (a duplicate key)."""
    with ledger.transaction():
        if ledger.db.execute("SELECT 1 FROM api_keys WHERE id = ?", [key_id]).fetchone() is not None:
            raise ValueError(f"key {key_id} exists already")
        now = ledger.now()
        ledger.db.execute(
            "INSERT INTO api_keys (id, key_sha256, role, name, created_at) VALUES (?, ?, ?, ?, ?)",
            [key_id, key_sha256, role, name, now],
        )
        append_key_event(ledger.db, "create", key_id, now, key_sha256=key_sha256, role=role, name=name)
    return KeyRow(key_id, key_sha256, role, name, now, None)


def find_key(ledger: Ledger, key_id: str) -> KeyRow | None:
    row = ledger.db.execute(_SELECT + " WHERE k.id = ?", [key_id]).fetchone()
    return None if row is None else KeyRow(*row)


def list_keys(ledger: Ledger) -> list[KeyRow]:
    return [KeyRow(*row) for row in ledger.db.execute(_SELECT + " ORDER BY k.created_at, k.id")]


def count_active_keys(ledger: Ledger) -> int:
    row = ledger.db.execute(
        "SELECT count(*) FROM api_keys WHERE id NOT IN (SELECT key_id FROM api_key_revocations)"
    ).fetchone()
    return int(row[0])


def revoke_key(ledger: Ledger, key_id: str) -> KeyRow:
    """Revoke a key (idempotent: revoking twice keeps the first time). KeyError if there is no such key."""
    with ledger.transaction():
        if find_key(ledger, key_id) is None:
            raise KeyError(key_id)
        if ledger.db.execute("SELECT 1 FROM api_key_revocations WHERE key_id = ?", [key_id]).fetchone() is None:
            now = ledger.now()
            ledger.db.execute("INSERT INTO api_key_revocations (key_id, revoked_at) VALUES (?, ?)", [key_id, now])
            append_key_event(ledger.db, "revoke", key_id, now)
    found = find_key(ledger, key_id)
    assert found is not None
    return found
