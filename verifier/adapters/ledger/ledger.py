"""The verdict ledger: an append-only SQLite store of verdicts and their evidence (sqlite-utils).

Threading: one ``Ledger`` owns one connection, opened with ``check_same_thread=False`` so the web
layer can hand it to a single dedicated writer thread (``ThreadPoolExecutor(max_workers=1)`` +
``loop.run_in_executor``). Calls must come from one thread at a time; the class does no locking.
Every write runs in ``BEGIN IMMEDIATE`` so a second process (the CLI) serialises behind it.

Verdicts are never updated or deleted (triggers enforce it); a re-verification is a new verdict
whose ``supersedes`` names the earlier one. Evidence files are stored once per sha256, zlib-compressed,
and checked against that hash on every read.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import re
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from verifier.adapters.ledger.claims import claim_clauses
from verifier.adapters.ledger.rows import (
    JSON,
    LedgerBusy,
    LedgerCorruptionError,
    LedgerError,
    attestation_row,
    chain_digest,
    check_evidence_name,
    check_new_verdict,
    check_rows,
    column_text,
    decode_cursor,
    decode_id,
    encode_cursor,
    encode_id,
    evidence_digest,
    filters,
    refuse_secrets,
    unpack,
    verdict_json_text,
    verdict_row,
)
from verifier.adapters.ledger.schema import MIGRATIONS
from verifier.adapters.ledger.tlog import append_leaf, sign_head
from verifier.core.checkpoint import NoteSigner
from verifier.core.verdict import MalformedVerdict, Verdict

MAX_LIMIT = 500


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TABLE = re.compile(r"[a-z_][a-z0-9_]*")


def insert_rows(db: Database, table: str, rows: builtins.list[dict[str, Any]], *, ignore: bool = False) -> None:
    """``INSERT`` rows that share their keys (plain column values: text, numbers, bytes, None) into ``table``: what
    ``sqlite_utils``' ``insert_all`` does for an existing table, without its per-call schema look-ups."""
    if not rows:
        return
    columns = list(rows[0])
    if not _TABLE.fullmatch(table) or not all(_TABLE.fullmatch(c) for c in columns):
        raise ValueError(f"not a plain table or column name: {table!r} {columns!r}")
    for row in rows:
        if list(row) != columns:
            raise ValueError(f"rows for {table} do not share their columns")
        for value in row.values():
            if value is not None and not isinstance(value, str | int | float | bytes):
                raise TypeError(f"{table}: a column value must be text, a number, bytes or null, got {type(value)}")
    sql = (
        f"INSERT {'OR IGNORE ' if ignore else ''}INTO [{table}] ({', '.join(f'[{c}]' for c in columns)})"  # noqa: S608
        f" VALUES ({', '.join('?' * len(columns))})"
    )
    db.conn.executemany(sql, [list(row.values()) for row in rows])


SUMMARY_COLUMNS = ("id", "status", "model", "signer", "created_at", "verified_at", "trust_profile", "supersedes")


class Ledger:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._clock = clock
        # The transparency log's key: with one, every save also stores the signed checkpoint of the new tree head
        self.log_signer: NoteSigner | None = None
        self._depth = 0  # nesting of _write(): an inner one joins the outer transaction (jobs commit in batches)

    @classmethod
    def open(cls, path: str | Path, *, clock: Callable[[], float] = time.time, busy_timeout_ms: int = 5000) -> Ledger:
        """Open (or create) the ledger at ``path`` (":memory:" works), in WAL mode, fully migrated.

        ``LedgerError`` (naming the path) if the file cannot be opened or is not SQLite; ``LedgerBusy`` if
        another process holds the write lock past the busy timeout while we migrate.
        """
        try:
            conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {path}: {exc}") from None
        try:
            db = Database(conn, execute_plugins=False, strict=True)
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            db.execute("PRAGMA foreign_keys = ON")
            db.enable_wal()  # an in-memory database stays in "memory" mode
            ledger = cls(db, clock=clock)
            with ledger._write():  # under the write lock, so two processes never both migrate
                MIGRATIONS.apply(db)
        except sqlite3.OperationalError as exc:
            conn.close()
            if _is_busy(exc):
                raise LedgerBusy(f"ledger {path} is locked by another writer: {exc}") from None
            raise LedgerError(f"cannot open ledger {path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise LedgerError(f"{path} is not a verifier ledger (SQLite says: {exc})") from None
        except BaseException:
            conn.close()
            raise
        return ledger

    @classmethod
    def open_readonly(cls, path: str | Path, *, busy_timeout_ms: int = 5000) -> Ledger:
        """Open an existing ledger read-only (``mode=ro``): read commands never create or migrate anything."""
        p = Path(path)
        if not p.is_file():
            raise LedgerError(f"no ledger at {path}" + (" (it is a directory)" if p.is_dir() else ""))
        try:
            conn = sqlite3.connect(
                f"{p.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot open ledger {path}: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise LedgerError(f"{path} is not a verifier ledger (SQLite says: {exc})") from None
        if "verdicts" not in tables or "_sqlite_migrations" not in tables:
            conn.close()
            raise LedgerError(f"{path} is not a verifier ledger (no verdicts table)")
        return cls(Database(conn, execute_plugins=False, strict=True))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> float:
        return self._clock()

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction (``BEGIN IMMEDIATE``) for the ledger's companion tables (API keys)."""
        return self._write()

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction; ``LedgerBusy`` (nothing written) if the lock is not had within the busy timeout."""
        if self._depth:  # inside another write transaction: part of it (committed or rolled back with it)
            yield
            return
        conn = self.db.conn
        self._depth += 1
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise LedgerBusy(f"the ledger is locked by another writer: {exc}") from None
            raise
        finally:
            self._depth -= 1

    # --- writes -----------------------------------------------------------------------------

    def save(
        self,
        verdict: dict[str, JSON],
        evidence: dict[str, bytes],
        *,
        secrets: Iterable[str] = (),
        submitted_by: str | None = None,
        stored_evidence: Mapping[str, str] | None = None,
    ) -> str:
        """Store a new verdict and its evidence bundle in one transaction; return the new id.

        ``verdict["id"]`` must be None: ids are assigned here. The caller's dict is not modified.
        ``stored_evidence``: more evidence of this verdict that the ledger already holds, name -> sha256 of its
        bytes (a re-verification keeps the evidence it read; its bytes need not travel back); each blob must exist.
        Raises ValueError for an unknown ``supersedes``, a bad evidence name, a ``stored_evidence`` blob the ledger
        does not hold, or any of ``secrets`` appearing in the verdict or the evidence (stored evidence cannot be
        searched for secrets, so the two do not combine); ``LedgerBusy`` when another writer holds the lock past
        the busy timeout (nothing is written).
        """
        check_new_verdict(verdict)
        for name, data in evidence.items():
            check_evidence_name(name)
            if not isinstance(data, bytes):
                raise TypeError(f"evidence {name!r} must be bytes, got {type(data).__name__}")
        known = dict(stored_evidence or {})
        for name, sha in known.items():
            check_evidence_name(name)
            if name in evidence:
                raise ValueError(f"evidence {name!r} is given both as bytes and as stored")
            if not _SHA256_HEX.fullmatch(str(sha)):
                raise ValueError(f"stored evidence {name!r}: expected a sha256 (64 lower-case hex digits), got {sha!r}")
        secrets = tuple(secrets)
        if known and secrets:
            raise ValueError("stored evidence cannot be searched for secrets: pass its bytes")
        refuse_secrets(verdict, evidence, secrets)
        manifest = {name: hashlib.sha256(data).hexdigest() for name, data in evidence.items()}
        manifest.update(known)
        evidence_sha = evidence_digest(manifest)

        supersedes = verdict.get("supersedes")
        with self._write():
            if supersedes is not None and not self._exists(supersedes):
                raise ValueError(f"supersedes: no verdict with id {supersedes!r}")
            for name, sha in known.items():
                if self.db.execute("SELECT 1 FROM evidence WHERE sha256 = ?", [sha]).fetchone() is None:
                    raise ValueError(f"stored evidence {name!r}: the ledger holds no blob {sha}")
            now = self._clock()
            verdict_id, previous_link = self._next_id(now)
            stored = {**verdict, "id": verdict_id}
            verdict_json = verdict_json_text(stored)
            row = verdict_row(stored, verdict_json, now)
            row.update(
                submitted_by=column_text(submitted_by),
                evidence_sha256=evidence_sha,
                chain_sha256=chain_digest(
                    previous_link,
                    verdict_id=verdict_id,
                    created_at=now,
                    verdict_json=verdict_json,
                    evidence_sha256=evidence_sha,
                    submitted_by=column_text(submitted_by),
                ),
            )
            insert_rows(self.db, "verdicts", [row])
            insert_rows(self.db, "checks", list(check_rows(stored)))
            for name, data in evidence.items():
                sha = manifest[name]
                if self.db.execute("SELECT 1 FROM evidence WHERE sha256 = ?", [sha]).fetchone() is None:  # stored once:
                    insert_rows(  # compressed only when new (re-verifications share their evidence)
                        self.db,
                        "evidence",
                        [{"sha256": sha, "size": len(data), "encoding": "zlib", "data": zlib.compress(data)}],
                        ignore=True,
                    )
            links = [{"verdict_id": verdict_id, "name": name, "sha256": manifest[name]} for name in evidence]
            links += [{"verdict_id": verdict_id, "name": name, "sha256": sha} for name, sha in known.items()]
            insert_rows(self.db, "verdict_evidence", links)
            attestation = attestation_row(stored, evidence)
            if attestation is not None:
                self.db.table("attestations").insert({k: column_text(v) for k, v in attestation.items()})
            # the transparency log: the leaf is the verdict exactly as a reader gets it back (same transaction)
            append_leaf(self.db, verdict_id, json.loads(verdict_json))
            if self.log_signer is not None:
                sign_head(self.db, self.log_signer, now)
        return verdict_id

    def _next_id(self, now: float) -> tuple[str, str | None]:
        """ULID-like: 48-bit ms time + 80 random bits, strictly above the newest id (read under the write lock).

        Also returns the newest verdict's chain link, the previous link of the new verdict."""
        value = (int(now * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
        last = self.db.execute("SELECT id, chain_sha256 FROM verdicts ORDER BY id DESC LIMIT 1").fetchone()
        if last is not None:
            value = max(value, decode_id(last[0]) + 1)
        return encode_id(value), None if last is None else last[1]

    def healthy(self) -> bool:
        """True if the ledger can take a write transaction and write to disk right now."""
        try:
            with self._write():
                self.db.execute("INSERT OR REPLACE INTO heartbeat (id, at) VALUES (1, ?)", [self._clock()])
        except (sqlite3.Error, LedgerError):
            return False
        return True

    # --- reads ------------------------------------------------------------------------------

    def _exists(self, verdict_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM verdicts WHERE id = ?", [verdict_id]).fetchone() is not None

    def get(self, verdict_id: str, *, submitted_by: str | None = None) -> dict[str, JSON] | None:
        """The verdict, or None; with ``submitted_by``, only a verdict that key submitted."""
        sql, params = "SELECT verdict_json FROM verdicts WHERE id = ?", [verdict_id]
        if submitted_by is not None:
            sql, params = sql + " AND submitted_by = ?", [*params, submitted_by]
        row = self.db.execute(sql, params).fetchone()
        if row is None:
            return None
        verdict = json.loads(row[0])
        try:
            Verdict.from_json(verdict)
        except MalformedVerdict as exc:
            raise LedgerCorruptionError(
                f"verdict {verdict_id}: the stored verdict is not one the verifier wrote ({exc}); it was edited "
                "outside the verifier (`verifier ledger check` lists every such edit)"
            ) from None
        return dict(verdict)

    def evidence(self, verdict_id: str, *, submitted_by: str | None = None) -> dict[str, bytes]:
        """The verdict's evidence bundle, each file checked against its sha256. KeyError if no such verdict
        (with ``submitted_by``: none that key submitted)."""
        if not self._exists(verdict_id) or (
            submitted_by is not None and self.get(verdict_id, submitted_by=submitted_by) is None
        ):
            raise KeyError(verdict_id)
        return {name: data for name, (_, data) in self.evidence_with_digests(verdict_id).items()}

    def evidence_with_digests(self, verdict_id: str) -> dict[str, tuple[str, bytes]]:
        """The verdict's evidence as name -> (sha256, bytes), each file checked against its sha256; KeyError if
        no such verdict."""
        if not self._exists(verdict_id):
            raise KeyError(verdict_id)
        rows = self.db.execute(
            "SELECT ve.name, e.sha256, e.size, e.encoding, e.data FROM verdict_evidence ve"
            " JOIN evidence e ON e.sha256 = ve.sha256 WHERE ve.verdict_id = ? ORDER BY ve.name",
            [verdict_id],
        ).fetchall()
        return {
            name: (sha, unpack(verdict_id, name, sha, size, encoding, blob)) for name, sha, size, encoding, blob in rows
        }

    def list(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        signer: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
        submitted_by: str | None = None,
        claims: dict[str, str] | None = None,
    ) -> tuple[builtins.list[dict[str, JSON]], str | None]:
        """Verdict summaries, newest first; ``since <= created_at < until``; ``claims``: {indexed claim: value}, each
        one the verdict's claims include (``ledger.claims``). Returns (rows, next cursor or None)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        limit = min(limit, MAX_LIMIT)
        where, params = filters(status=status, model=model, signer=signer, since=since, until=until)
        claim_where, claim_params = claim_clauses(claims)  # the claim index (migration 0004_jobs)
        where, params = where + claim_where, params + claim_params
        if submitted_by is not None:
            where.append("submitted_by = ?")
            params.append(submitted_by)
        if cursor is not None:
            where.append("id < ?")
            params.append(decode_cursor(cursor))
        sql = f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM verdicts"  # noqa: S608 - constant column names
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = builtins.list(self.db.query(sql + " ORDER BY id DESC LIMIT ?", [*params, limit + 1]))
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1]["id"])

    def check_counts(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        signer: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> dict[str, dict[str, int]]:
        """Facet: {check_id: {check status: number of verdicts}} over the verdicts matching the filters."""
        where, params = filters(status=status, model=model, signer=signer, since=since, until=until)
        sql = "SELECT c.check_id, c.status, count(*) AS n FROM checks c JOIN verdicts v ON v.id = c.verdict_id"
        if where:
            sql += " WHERE " + " AND ".join(f"v.{clause}" for clause in where)
        counts: dict[str, dict[str, int]] = {}
        for check_id, check_status, n in self.db.execute(sql + " GROUP BY 1, 2 ORDER BY 1, 2", params):
            counts.setdefault(check_id, {})[check_status] = n
        return counts

    def find_reusable_attestation(
        self,
        *,
        signer: str,
        signing_algo: str,
        model: str | None,
        gateway: str | None,
        now: float,
        max_age: int,
        trust_profile: str | None = None,
    ) -> dict[str, JSON] | None:
        """The newest reusable attestation for exactly this signer/algo/model/gateway fetched in [now - max_age, now].

        Pass ``trust_profile`` to refuse attestations recorded under another trust profile.
        """
        sql = (
            "SELECT verdict_id, captured_at, report_sha256, nonce FROM attestations"
            " WHERE signer = ? AND signing_algo = ? AND model IS ? AND gateway IS ? AND captured_at >= ? AND "
            "captured_at <= ?"
        )
        params: builtins.list[Any] = [signer, signing_algo, model, gateway, now - max_age, now]
        if trust_profile is not None:
            sql += " AND trust_profile = ?"
            params.append(trust_profile)
        rows = builtins.list(self.db.query(sql + " ORDER BY captured_at DESC, verdict_id DESC LIMIT 1", params))
        if not rows:
            return None
        row = rows[0]
        return {**row, "age_s": int(now - row["captured_at"])}
