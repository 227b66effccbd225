"""``verifier ledger check``: re-derive everything the ledger can vouch for and report each mismatch.

Checked: SQLite's own ``PRAGMA integrity_check``; the ledger tables are exactly the migrations' (their SQL: a table
rebuilt without its primary key could hold two rows per key, one for the check and one for the reader, or without
its types or constraints); the triggers are exactly the migrations' (names and SQL); every
evidence blob decompresses to bytes of its size and sha256; for every verdict, in id order: its JSON names its own
id and is a verdict as the verifier writes it, its index columns, check rows and attestation row are the ones its
JSON and evidence give, its evidence references name stored blobs and hash to the manifest digest recorded with
it, and its link of the hash chain follows from the previous verdict's; the API-key log's chain, and the key
tables against it (``key_log``); the job tables against the verdicts (``job_check``). Rows that point at no
verdict are reported too. A verdict recorded before migration 0002 has no digest or link: it is counted as
unchained, a mismatch only once chained verdicts exist before it. A ledger too broken to check in part (a missing
table, a value of the wrong type) is reported, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

from sqlite_utils import Database

from verifier.adapters.ledger.job_check import check_jobs
from verifier.adapters.ledger.key_log import check_key_log
from verifier.adapters.ledger.ledger import Ledger
from verifier.adapters.ledger.rows import (
    attestation_row,
    chain_digest,
    check_rows,
    column_text,
    evidence_digest,
    verdict_row,
)
from verifier.adapters.ledger.schema import APPEND_ONLY_TABLES, MIGRATIONS, claims_select
from verifier.adapters.ledger.tlog_check import check_tlog
from verifier.core.checkpoint import NoteVerifier
from verifier.core.verdict import MalformedVerdict, Verdict

_VERDICT_COLUMNS = (
    "id",
    "created_at",
    "status",
    "model",
    "signer",
    "chat_id",
    "gateway",
    "trust_profile",
    "policy_id",
    "policy_sha256",
    "verified_at",
    "supersedes",
    "nonce",
    "nonce_origin",
    "verdict_json",
)

# every column of the reuse index (``gateway`` since migration 0003: a row repointed to another gateway would let
# that gateway's completions cite this attestation)
_REUSE_COLUMNS = (
    "signer",
    "signing_algo",
    "model",
    "gateway",
    "trust_profile",
    "captured_at",
    "report_sha256",
    "nonce",
)


@dataclass(slots=True)
class CheckReport:
    verdicts: int = 0
    blobs: int = 0
    unchained: int = 0
    problems: list[str] = field(default_factory=list)
    log_size: int = 0  # the transparency log, recomputed from the verdicts
    checkpoint_size: int | None = None  # the latest signed checkpoint's tree size (None: none issued)
    key_events: int = 0  # the API-key log: its events and the head of its chain (compare with a copy kept elsewhere)
    key_log_head: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def check_ledger(ledger: Ledger, *, log_key: NoteVerifier | None = None) -> CheckReport:
    """With ``log_key``, every stored checkpoint's signature is verified too (else only its size and root)."""
    report = CheckReport()
    db = ledger.db
    integrity = [row[0] for row in db.execute("PRAGMA integrity_check")]
    if integrity != ["ok"]:
        report.problems += [f"integrity_check: {line}" for line in integrity[:20]]
    report.problems += _check_tables(ledger)
    report.problems += _check_triggers(ledger)
    bad_blobs: set[str] = _guarded(report, "evidence blobs", lambda: _check_blobs(ledger, report), set())
    _guarded(report, "verdicts", lambda: _check_verdicts(ledger, report, bad_blobs), None)
    _guarded(report, "orphan rows", lambda: _check_orphans(ledger, report), None)

    def keys() -> None:
        key_log = check_key_log(ledger.db)
        report.problems.extend(key_log.problems)
        report.key_events, report.key_log_head = key_log.events, key_log.head

    _guarded(report, "key log", keys, None)
    _guarded(report, "jobs", lambda: report.problems.extend(check_jobs(ledger.db)), None)

    def transparency_log() -> None:
        tlog = check_tlog(ledger.db, log_key)
        report.problems.extend(tlog.problems)
        report.log_size, report.checkpoint_size = tlog.size, tlog.checkpoint_size

    _guarded(report, "transparency log", transparency_log, None)
    return report


# what a part of the check raises on a ledger edited into something the verifier never writes (a missing table, a
# value of another type in a table rebuilt without STRICT, a number out of range)
_BROKEN = (sqlite3.Error, TypeError, ValueError, KeyError, AttributeError, OverflowError, zlib.error)


T = TypeVar("T")


def _guarded(report: CheckReport, part: str, run: Callable[[], T], default: T) -> T:
    try:
        return run()
    except _BROKEN as exc:
        report.problems.append(f"{part}: could not be checked, the ledger is broken ({type(exc).__name__}: {exc})")
        return default


@cache
def _migrated_schema() -> dict[str, dict[str, str]]:
    """Each table's and trigger's SQL (white space folded) as the migrations leave an empty database, by type."""
    db = Database(memory=True)
    MIGRATIONS.apply(db)
    out: dict[str, dict[str, str]] = {"table": {}, "trigger": {}}
    for kind, name, sql in db.execute("SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'trigger')"):
        out[kind][name] = " ".join(sql.split())
    return out


def _expected_tables() -> dict[str, str]:
    return {name: sql for name, sql in _migrated_schema()["table"].items() if name in APPEND_ONLY_TABLES}


def _check_tables(ledger: Ledger) -> list[str]:
    stored = dict(ledger.db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
    problems = []
    for name, sql in sorted(_expected_tables().items()):
        if name not in stored:
            problems.append(f"table {name} is missing")
        elif " ".join(str(stored[name]).split()) != sql:
            problems.append(
                f"table {name} is not the one the migrations create (its keys, types or constraints differ: two "
                "rows may share a key, one read by the check and one by the service)"
            )
    return problems


def _check_triggers(ledger: Ledger) -> list[str]:
    problems = []
    stored = dict(ledger.db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall())
    expected = _migrated_schema()["trigger"]
    for name, sql in sorted(expected.items()):
        if name not in stored:
            problems.append(f"trigger {name} is missing: that table can be edited in place")
        elif " ".join(str(stored[name]).split()) != sql:
            problems.append(f"trigger {name} is not the one the migrations create: that table may be editable")
    for name in sorted(set(stored) - set(expected)):
        problems.append(f"trigger {name} is not one the migrations create (a ledger write may run it)")
    return problems


def _check_blobs(ledger: Ledger, report: CheckReport) -> set[str]:
    bad: set[str] = set()
    for sha, size, encoding, blob in ledger.db.execute(
        "SELECT sha256, size, encoding, data FROM evidence ORDER BY sha256"
    ):
        report.blobs += 1
        try:
            data = zlib.decompress(blob) if encoding == "zlib" else None
        except (zlib.error, TypeError) as exc:
            report.problems.append(f"evidence blob {sha}: does not decompress ({exc})")
            bad.add(sha)
            continue
        if data is None:
            report.problems.append(f"evidence blob {sha}: unknown encoding {encoding!r}")
            bad.add(sha)
        elif len(data) != size or hashlib.sha256(data).hexdigest() != sha:
            report.problems.append(
                f"evidence blob {sha}: stored bytes hash to {hashlib.sha256(data).hexdigest()} "
                f"({len(data)} bytes, recorded {size})"
            )
            bad.add(sha)
    return bad


def _check_verdicts(ledger: Ledger, report: CheckReport, bad_blobs: set[str]) -> None:
    db = ledger.db
    columns = {row[1] for row in db.execute("PRAGMA table_info(verdicts)")}
    chained = {"submitted_by", "evidence_sha256", "chain_sha256"} <= columns
    extra = ", submitted_by, evidence_sha256, chain_sha256" if chained else ""
    previous: str | None = None
    seen_chained = False
    cursor = db.execute(f"SELECT {', '.join(_VERDICT_COLUMNS)}{extra} FROM verdicts ORDER BY id")  # noqa: S608 - constants
    for values in cursor:
        report.verdicts += 1
        row = dict(zip((*_VERDICT_COLUMNS, "submitted_by", "evidence_sha256", "chain_sha256"), values, strict=False))
        vid = row["id"]
        try:
            problems = _check_one(ledger, row, bad_blobs)
        except _BROKEN as exc:
            problems = [f"could not be checked, the row is broken ({type(exc).__name__}: {exc})"]
        if not chained or row["chain_sha256"] is None:
            report.unchained += 1
            if seen_chained:
                problems.append(
                    "has no chain link although earlier verdicts have one (recorded or edited outside the ledger)"
                )
        else:
            link = chain_digest(
                previous,
                verdict_id=vid,
                created_at=row["created_at"],
                verdict_json=row["verdict_json"],
                evidence_sha256=row["evidence_sha256"] or "",
                submitted_by=row["submitted_by"],
            )
            if link != row["chain_sha256"]:
                problems.append(
                    "hash chain broken: its link does not follow from the previous verdict's "
                    "(a verdict was edited, inserted or removed)"
                )
            seen_chained = True
        previous = row["chain_sha256"] if chained else None
        report.problems += [f"verdict {vid}: {p}" for p in problems]


def _check_one(ledger: Ledger, row: dict[str, object], bad_blobs: set[str]) -> list[str]:
    db, vid, problems = ledger.db, str(row["id"]), []
    try:
        verdict = json.loads(str(row["verdict_json"]))
    except ValueError:
        return ["verdict_json is not JSON"]
    if not isinstance(verdict, dict) or verdict.get("id") != vid:
        return [f"verdict_json names id {verdict.get('id') if isinstance(verdict, dict) else None!r}, not its own"]
    try:
        Verdict.from_json(verdict)
    except MalformedVerdict as exc:
        return [f"verdict_json is not one the verifier wrote: {exc}"]
    expected = verdict_row(verdict, str(row["verdict_json"]), float(row["created_at"]))  # type: ignore[arg-type]
    differ = [k for k in _VERDICT_COLUMNS if expected.get(k) != row.get(k)]
    if differ:
        problems.append(f"columns {', '.join(differ)} differ from its verdict_json")
    stored_checks = Counter(
        tuple(r)
        for r in db.execute(
            "SELECT check_id, status, severity, reason, message FROM checks WHERE verdict_id = ?", [vid]
        )
    )
    want_checks = Counter(
        (c["check_id"], c["status"], c["severity"], c["reason"], c["message"]) for c in check_rows(verdict)
    )
    if stored_checks != want_checks:
        problems.append("its check rows differ from the checks in its verdict_json")
    manifest = dict(db.execute("SELECT name, sha256 FROM verdict_evidence WHERE verdict_id = ?", [vid]).fetchall())
    stored_blobs = {
        r[0]
        for r in db.execute(
            "SELECT sha256 FROM evidence WHERE sha256 IN (SELECT sha256 FROM verdict_evidence WHERE verdict_id = ?)",
            [vid],
        )
    }
    for name, sha in sorted(manifest.items()):
        if sha not in stored_blobs:
            problems.append(f"evidence {name!r} points at blob {sha}, which is not stored")
        elif sha in bad_blobs:
            problems.append(f"evidence {name!r} points at blob {sha}, whose bytes do not match it")
    if row.get("evidence_sha256") is not None and evidence_digest(manifest) != row["evidence_sha256"]:
        problems.append(
            "its evidence references do not hash to the manifest digest recorded with it "
            "(a reference was added, removed or repointed)"
        )
    problems += _check_attestation(ledger, verdict, manifest, bad_blobs)
    problems += _check_claims(ledger, vid, str(row["verdict_json"]))
    return problems


def _check_claims(ledger: Ledger, vid: str, verdict_json: str) -> list[str]:
    """The claim index rows (what job filters and ``?advisory=`` select by) are the ones the trigger derives."""
    if ledger.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'verdict_claims'").fetchone():
        want = Counter(tuple(r) for r in ledger.db.execute(CLAIMS_SQL, {"vid": vid, "vjson": verdict_json}))
        stored = ledger.db.execute("SELECT verdict_id, name, value FROM verdict_claims WHERE verdict_id = ?", [vid])
        if Counter(tuple(r) for r in stored) != want:
            return ["its claim index rows (verdict_claims) differ from the claims in its verdict_json"]
    return []


CLAIMS_SQL = claims_select(":vid", ":vjson")


def _check_attestation(
    ledger: Ledger, verdict: dict[str, object], manifest: dict[str, str], bad_blobs: set[str]
) -> list[str]:
    vid = str(verdict["id"])
    stored = ledger.db.execute(
        f"SELECT {', '.join(_REUSE_COLUMNS)} FROM attestations WHERE verdict_id = ?",  # noqa: S608 - constants
        [vid],
    ).fetchone()
    report_sha = manifest.get("report.json")
    evidence: dict[str, bytes] = {}
    if report_sha is not None and report_sha not in bad_blobs:
        blob = ledger.db.execute("SELECT data FROM evidence WHERE sha256 = ?", [report_sha]).fetchone()
        if blob is not None:
            try:
                evidence["report.json"] = zlib.decompress(blob[0])
            except (zlib.error, sqlite3.Error):
                return []  # reported with the blob
    want = attestation_row(verdict, evidence)
    want_tuple = None if want is None else tuple(column_text(want[k]) for k in _REUSE_COLUMNS)
    if (None if stored is None else tuple(stored)) != want_tuple:
        return ["its attestation row (the reuse index) differs from the one its verdict and evidence give"]
    return []


def _check_orphans(ledger: Ledger, report: CheckReport) -> None:
    for table in ("checks", "verdict_evidence", "attestations", "verdict_claims"):
        n = ledger.db.execute(
            f"SELECT count(*) FROM {table} WHERE verdict_id NOT IN (SELECT id FROM verdicts)"  # noqa: S608 - constant names
        ).fetchone()[0]
        if n:
            report.problems.append(f"{table}: {n} row(s) point at no verdict")
