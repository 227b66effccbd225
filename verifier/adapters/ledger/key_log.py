"""The API-key log: every key created and revoked, in order, as a hash chain (migration 0006).

``api_keys`` and ``api_key_revocations`` are what authentication reads; the log is what ``ledger check`` vouches
with. Each event is appended in the same transaction as its row, and its link commits to the previous link, so
an edit of the key tables made around the append-only triggers (a submit key turned into an admin key, a
revocation removed, a key inserted) no longer matches the log. What the chain cannot show by itself is a rewrite
of the log *and* the key tables with every later link recomputed: ``ledger check`` prints the log's head so it can
be compared with a copy kept elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from sqlite_utils import Database

EVENTS = ("create", "revoke")
_FIELDS = ("seq", "at", "event", "key_id", "key_sha256", "role", "name")


def key_link(previous: str | None, event: dict[str, object]) -> str:
    """The chain link of one event: sha256 over the previous link and the event's fields as canonical JSON."""
    text = (previous or "") + "\n" + json.dumps([event[k] for k in _FIELDS], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def append_key_event(
    db: Database,
    event: str,
    key_id: str,
    at: float,
    *,
    key_sha256: str | None = None,
    role: str | None = None,
    name: str | None = None,
) -> None:
    """Append one event (inside the caller's transaction, with the row it describes)."""
    last = db.execute("SELECT seq, chain_sha256 FROM key_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, previous = (1, None) if last is None else (last[0] + 1, last[1])
    row = {"seq": seq, "at": float(at), "event": event, "key_id": key_id, "key_sha256": key_sha256}
    row |= {"role": role, "name": name}
    db.execute(
        "INSERT INTO key_log (seq, at, event, key_id, key_sha256, role, name, chain_sha256)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [*(row[k] for k in _FIELDS), key_link(previous, row)],
    )


@dataclass(slots=True)
class KeyLogCheck:
    events: int = 0
    head: str | None = None
    problems: list[str] = field(default_factory=list)


def check_key_log(db: Database) -> KeyLogCheck:
    """Replay the log: its links, and the key tables it implies against the ones authentication reads."""
    out = KeyLogCheck()
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'key_log'").fetchone() is None:
        out.problems.append("key log: the table is missing (dropped, or the ledger predates migration 0006)")
        return out
    keys: dict[str, tuple[object, ...]] = {}
    revoked: dict[str, float] = {}
    previous: str | None = None
    cursor = db.execute(f"SELECT {', '.join(_FIELDS)}, chain_sha256 FROM key_log ORDER BY seq")  # noqa: S608 - constants
    for values in cursor:
        row = dict(zip(_FIELDS, values[:-1], strict=True))
        out.events += 1
        if row["seq"] != out.events:
            out.problems.append(f"key log: event {row['seq']} is out of sequence (expected {out.events})")
        if key_link(previous, row) != values[-1]:
            out.problems.append(f"key log: event {row['seq']}'s link does not follow from the previous one")
        previous = values[-1]
        key_id = str(row["key_id"])
        if row["event"] == "create":
            if key_id in keys:  # the verifier never creates a key twice: a later create would rewrite its role
                out.problems.append(f"key log: event {row['seq']} creates key {key_id} a second time")
            keys[key_id] = (row["key_sha256"], row["role"], row["name"], row["at"])
        elif row["event"] == "revoke":
            if key_id not in keys or key_id in revoked:
                out.problems.append(f"key log: event {row['seq']} revokes key {key_id}, which is not a live key")
            revoked.setdefault(key_id, float(row["at"]))
    out.head = previous
    rows = db.execute("SELECT id, key_sha256, role, name, created_at FROM api_keys")
    stored_keys = {r[0]: tuple(r[1:]) for r in rows}
    stored_revoked = dict(db.execute("SELECT key_id, revoked_at FROM api_key_revocations").fetchall())
    for key_id in sorted(set(keys) | set(stored_keys)):
        if key_id not in keys:
            out.problems.append(f"api key {key_id}: not in the key log (inserted outside the verifier)")
        elif key_id not in stored_keys:
            out.problems.append(f"api key {key_id}: in the key log but not in api_keys (removed)")
        elif keys[key_id] != stored_keys[key_id]:
            out.problems.append(f"api key {key_id}: its row (hash, role, name or time) differs from the key log")
    for key_id in sorted(set(revoked) | set(stored_revoked)):
        if revoked.get(key_id) != stored_revoked.get(key_id):
            out.problems.append(f"api key {key_id}: its revocation differs from the key log (added, removed or moved)")
    return out
