"""The ledger's schema as sqlite-utils migrations. Append-only: never edit one that has shipped, add 0002_..."""

from __future__ import annotations

import json

from sqlite_utils import Database, Migrations

MIGRATIONS = Migrations("verifier.adapters.ledger")

_SCHEMA_0001 = (
    """CREATE TABLE verdicts (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pass', 'fail', 'indeterminate')),
        model TEXT, signer TEXT, chat_id TEXT, gateway TEXT, trust_profile TEXT,
        policy_id TEXT, policy_sha256 TEXT, verified_at INTEGER,
        supersedes TEXT REFERENCES verdicts(id),
        nonce TEXT, nonce_origin TEXT,
        verdict_json TEXT NOT NULL
    ) STRICT""",
    "CREATE INDEX verdicts_status ON verdicts(status)",
    "CREATE INDEX verdicts_model ON verdicts(model)",
    "CREATE INDEX verdicts_signer ON verdicts(signer)",
    "CREATE INDEX verdicts_created_at ON verdicts(created_at)",
    "CREATE TRIGGER verdicts_no_update BEFORE UPDATE ON verdicts BEGIN SELECT RAISE(ABORT, 'verdicts are "
    "append-only'); END",
    "CREATE TRIGGER verdicts_no_delete BEFORE DELETE ON verdicts BEGIN SELECT RAISE(ABORT, 'verdicts are "
    "append-only'); END",
    """CREATE TABLE checks (
        verdict_id TEXT NOT NULL REFERENCES verdicts(id),
        check_id TEXT NOT NULL, status TEXT NOT NULL, severity TEXT, reason TEXT, message TEXT
    ) STRICT""",
    "CREATE INDEX checks_verdict ON checks(verdict_id)",
    "CREATE INDEX checks_facet ON checks(check_id, status)",
    """CREATE TABLE evidence (
        sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, encoding TEXT NOT NULL, data BLOB NOT NULL
    ) STRICT""",
    """CREATE TABLE verdict_evidence (
        verdict_id TEXT NOT NULL REFERENCES verdicts(id),
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL REFERENCES evidence(sha256),
        PRIMARY KEY (verdict_id, name)
    ) STRICT""",
    """CREATE TABLE attestations (
        verdict_id TEXT PRIMARY KEY REFERENCES verdicts(id),
        signer TEXT NOT NULL, signing_algo TEXT, model TEXT, trust_profile TEXT,
        captured_at INTEGER NOT NULL, report_sha256 TEXT NOT NULL, nonce TEXT
    ) STRICT""",
    "CREATE INDEX attestations_lookup ON attestations(signer, signing_algo, captured_at)",
    "CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at REAL NOT NULL) STRICT",
)


@MIGRATIONS(name="0001_initial")
def _m0001_initial(db: Database) -> None:
    for statement in _SCHEMA_0001:
        db.execute(statement)


# 0002: every ledger table is append-only; API keys (and their revocations, also append-only); per verdict a
# digest of its evidence manifest and a hash chain over all verdicts (``verifier ledger check`` re-derives both).
# The collateral cache is a cache (untrusted, refetched at will), not ledger evidence: it stays writable, and so
# does the one-row heartbeat the readiness probe writes.
_APPEND_ONLY_0002 = ("checks", "evidence", "verdict_evidence", "attestations", "api_keys", "api_key_revocations")
APPEND_ONLY_TABLES: tuple[str, ...] = ("verdicts", *_APPEND_ONLY_0002)

_SCHEMA_0002 = (
    "ALTER TABLE verdicts ADD COLUMN submitted_by TEXT",
    "ALTER TABLE verdicts ADD COLUMN evidence_sha256 TEXT",
    "ALTER TABLE verdicts ADD COLUMN chain_sha256 TEXT",
    "CREATE INDEX verdicts_submitted_by ON verdicts(submitted_by)",
    """CREATE TABLE api_keys (
        id TEXT PRIMARY KEY, key_sha256 TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL, created_at REAL NOT NULL
    ) STRICT""",
    """CREATE TABLE api_key_revocations (
        key_id TEXT PRIMARY KEY REFERENCES api_keys(id), revoked_at REAL NOT NULL
    ) STRICT""",
    """CREATE TABLE IF NOT EXISTS collateral_cache (
        kind TEXT, fmspc TEXT, ca TEXT, json_text TEXT, sha256 TEXT, fetched_at INTEGER, valid_from INTEGER,
        valid_until INTEGER, PRIMARY KEY (kind, fmspc, ca)
    )""",
)


def _append_only_triggers(table: str) -> tuple[str, ...]:
    return tuple(
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}"
        f" BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"
        for op in ("UPDATE", "DELETE")
    )


@MIGRATIONS(name="0002_append_only_keys_chain")
def _m0002_append_only_keys_chain(db: Database) -> None:
    for statement in _SCHEMA_0002:
        db.execute(statement)
    for table in _APPEND_ONLY_0002:
        for statement in _append_only_triggers(table):
            db.execute(statement)


@MIGRATIONS(name="0003_reuse_key_gateway")
def _m0003_reuse_key_gateway(db: Database) -> None:
    """The reuse key includes the gateway: an attestation fetched through one gateway is never cited for another."""
    db.execute("ALTER TABLE attestations ADD COLUMN gateway TEXT")
    db.execute("CREATE INDEX attestations_reuse ON attestations(signer, signing_algo, gateway, captured_at)")


# 0004: batch re-verification jobs (``verifier.adapters.ledger.jobs``), append-only like every ledger table: the
# job (its spec, policy, clock), its selection frozen at creation, its state changes as events, and one item per
# (job, verdict) naming the new verdict; that primary key is what makes a resumed job process each verdict once.
# Also the claim index (``verdict_claims``): per verdict the TCB statuses, advisories, FMSPCs, app ids, compose
# hashes and GPU drivers its claims name, filled by a trigger from the stored verdict JSON (and backfilled here), so
# "which verdicts rest on a platform affected by advisory X" is one indexed query.
_JOB_TABLES_0004 = ("jobs", "job_selection", "job_events", "job_items", "verdict_claims")
CLAIM_NAMES = ("tcb_status", "advisory", "fmspc", "app_id", "compose_hash", "driver")
APPEND_ONLY_TABLES = (*APPEND_ONLY_TABLES, *_JOB_TABLES_0004)

_SCHEMA_0004 = (
    """CREATE TABLE jobs (
        id TEXT PRIMARY KEY, created_at REAL NOT NULL, kind TEXT NOT NULL, spec_json TEXT NOT NULL,
        policy_text TEXT, policy_id TEXT NOT NULL, policy_sha256 TEXT NOT NULL, trust_profile TEXT NOT NULL,
        at INTEGER, collateral TEXT NOT NULL, total INTEGER NOT NULL, created_by TEXT
    ) STRICT""",
    """CREATE TABLE job_selection (
        job_id TEXT NOT NULL REFERENCES jobs(id), seq INTEGER NOT NULL, verdict_id TEXT NOT NULL REFERENCES
        verdicts(id),
        PRIMARY KEY (job_id, seq)
    ) STRICT""",
    """CREATE TABLE job_events (
        job_id TEXT NOT NULL REFERENCES jobs(id), at REAL NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'interrupted', 'cancelled', 'done')), owner TEXT
    ) STRICT""",
    "CREATE INDEX job_events_job ON job_events(job_id)",
    """CREATE TABLE job_items (
        job_id TEXT NOT NULL REFERENCES jobs(id), verdict_id TEXT NOT NULL REFERENCES verdicts(id),
        new_verdict_id TEXT REFERENCES verdicts(id), done_at REAL NOT NULL, old_status TEXT NOT NULL,
        captured_at INTEGER, captured_status TEXT, job_at INTEGER, job_status TEXT, reasons_json TEXT NOT NULL,
        error TEXT,
        PRIMARY KEY (job_id, verdict_id)
    ) STRICT""",
    "CREATE INDEX verdicts_supersedes ON verdicts(supersedes)",
    """CREATE TABLE verdict_claims (
        verdict_id TEXT NOT NULL REFERENCES verdicts(id), name TEXT NOT NULL, value TEXT NOT NULL
    ) STRICT""",
    "CREATE INDEX verdict_claims_lookup ON verdict_claims(name, value, verdict_id)",
)


def _claims_select(vid: str, vjson: str, source: str = "") -> str:
    """(verdict id, claim name, value) rows read from a stored verdict's JSON (``source``: a table to read them
    from, e.g. ``"verdicts v, "``); anything not shaped as the engine writes it (a non-object entry, a non-text
    value) is not indexed."""

    def each(path: str, name: str, key: str) -> str:
        select = f"SELECT {vid}, '{name}', json_extract(e.value, '$.{key}')"
        return (
            f"{select} FROM {source}json_each({vjson}, '$.{path}') e"
            f" WHERE e.type = 'object' AND json_type(e.value, '$.{key}') = 'text'"
        )

    advisories = (
        f"SELECT {vid}, 'advisory', a.value FROM {source}json_each({vjson}, '$.claims.tdx') e,"  # noqa: S608
        f" json_each(e.value, '$.dcap.advisory_ids') a WHERE e.type = 'object'"
        f" AND json_type(e.value, '$.dcap.advisory_ids') = 'array' AND a.type = 'text'"
    )
    parts = [
        each("claims.tdx", "tcb_status", "dcap.status"),
        advisories,
        each("collateral", "fmspc", "fmspc"),
        each("claims.app", "app_id", "app_id"),
        each("claims.app", "compose_hash", "compose_hash"),
        each("claims.gpus", "driver", "driver_version"),
    ]
    return " UNION ".join(parts)


def claims_select(vid: str, vjson: str) -> str:
    """The claim rows of one verdict, as the 0004 trigger inserts them (``ledger check`` re-derives them)."""
    return _claims_select(vid, vjson)


_CLAIMS_TRIGGER_0004 = (
    "CREATE TRIGGER verdicts_claims_index AFTER INSERT ON verdicts BEGIN"
    " INSERT INTO verdict_claims (verdict_id, name, value) " + _claims_select("NEW.id", "NEW.verdict_json") + "; END"
)
_CLAIMS_BACKFILL_0004 = "INSERT INTO verdict_claims (verdict_id, name, value) " + _claims_select(
    "v.id", "v.verdict_json", "verdicts v, "
)


@MIGRATIONS(name="0004_jobs")
def _m0004_jobs(db: Database) -> None:
    for statement in _SCHEMA_0004:
        db.execute(statement)
    db.execute(_CLAIMS_TRIGGER_0004)
    db.execute(_CLAIMS_BACKFILL_0004)
    for table in _JOB_TABLES_0004:
        for statement in _append_only_triggers(table):
            db.execute(statement)


# 0005: the transparency log of verdicts (RFC 9162 Merkle tree). One leaf per verdict in id order, appended in the
# verdict's own transaction, with the tree's right frontier and root at that size (so an append costs O(log n));
# signed checkpoints (C2SP tlog-checkpoint notes) as they are issued. Both append-only. Verdicts recorded before
# this migration are logged by it, in id order. See ``verifier.adapters.ledger.tlog``.
_APPEND_ONLY_0005 = ("tlog", "tlog_checkpoints")
APPEND_ONLY_TABLES = (*APPEND_ONLY_TABLES, *_APPEND_ONLY_0005)


@MIGRATIONS(name="0005_tlog")
def _m0005_tlog(db: Database) -> None:
    from verifier.adapters.ledger.tlog import append_leaf

    db.execute("""CREATE TABLE tlog (
        idx INTEGER PRIMARY KEY, verdict_id TEXT NOT NULL UNIQUE REFERENCES verdicts(id),
        leaf_sha256 TEXT NOT NULL, frontier TEXT NOT NULL, root_sha256 TEXT NOT NULL
    ) STRICT""")
    db.execute("""CREATE TABLE tlog_checkpoints (
        size INTEGER PRIMARY KEY, root_sha256 TEXT NOT NULL, note TEXT NOT NULL, created_at REAL NOT NULL
    ) STRICT""")
    for table in _APPEND_ONLY_0005:
        for statement in _append_only_triggers(table):
            db.execute(statement)
    for verdict_id, verdict_json in db.execute("SELECT id, verdict_json FROM verdicts ORDER BY id").fetchall():
        append_leaf(db, verdict_id, json.loads(verdict_json))


# 0006: the API-key log (``verifier.adapters.ledger.key_log``): every key creation and revocation as a hash chain,
# appended with its row, so ``ledger check`` vouches for the key tables too. Keys made before it are logged by it
# (creations by time, then revocations by time).
APPEND_ONLY_TABLES = (*APPEND_ONLY_TABLES, "key_log")


@MIGRATIONS(name="0006_key_log")
def _m0006_key_log(db: Database) -> None:
    from verifier.adapters.ledger.key_log import append_key_event

    db.execute("""CREATE TABLE key_log (
        seq INTEGER PRIMARY KEY, at REAL NOT NULL, event TEXT NOT NULL CHECK (event IN ('create', 'revoke')),
        key_id TEXT NOT NULL, key_sha256 TEXT, role TEXT, name TEXT, chain_sha256 TEXT NOT NULL
    ) STRICT""")
    for statement in _append_only_triggers("key_log"):
        db.execute(statement)
    keys = db.execute("SELECT id, key_sha256, role, name, created_at FROM api_keys ORDER BY created_at, id")
    for key_id, sha, role, name, at in keys.fetchall():
        append_key_event(db, "create", key_id, at, key_sha256=sha, role=role, name=name)
    revocations = db.execute("SELECT key_id, revoked_at FROM api_key_revocations ORDER BY revoked_at, key_id")
    for key_id, at in revocations.fetchall():
        append_key_event(db, "revoke", key_id, at)


# 0007: an INSERT OR REPLACE over an existing key deletes the old row without firing the DELETE triggers (SQLite
# runs them for REPLACE only with recursive_triggers on, a per-connection setting): each append-only table with a
# key refuses an insert whose key is taken, whatever the conflict clause, so a row is never rewritten in place.
_KEYS_0007 = {
    "verdicts": ("id",),
    "evidence": ("sha256",),
    "verdict_evidence": ("verdict_id", "name"),
    "attestations": ("verdict_id",),
    "api_keys": ("id",),
    "api_key_revocations": ("key_id",),
    "jobs": ("id",),
    "job_selection": ("job_id", "seq"),
    "job_items": ("job_id", "verdict_id"),
    "tlog": ("idx",),
    "tlog_checkpoints": ("size",),
    "key_log": ("seq",),
}


def _no_replace_trigger(table: str, key: tuple[str, ...]) -> str:
    taken = " AND ".join(f"{c} = NEW.{c}" for c in key)
    if table == "tlog":  # verdict_id is UNIQUE too
        taken = f"({taken}) OR verdict_id = NEW.verdict_id"
    head = f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} WHEN EXISTS"
    body = f"SELECT 1 FROM {table} WHERE {taken}"  # noqa: S608 - constant table and column names
    return f"{head} ({body}) BEGIN SELECT RAISE(ABORT, '{table} are append-only'); END"


KEYED_TABLES = frozenset(_KEYS_0007)


@MIGRATIONS(name="0007_no_replace")
def _m0007_no_replace(db: Database) -> None:
    for table, key in _KEYS_0007.items():
        db.execute(_no_replace_trigger(table, key))
