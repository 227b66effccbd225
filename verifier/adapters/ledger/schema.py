"""The ledger's schema as sqlite-utils migrations. Append-only: never edit one that has shipped, add 0002_..."""

from __future__ import annotations

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
    "CREATE TRIGGER verdicts_no_update BEFORE UPDATE ON verdicts BEGIN SELECT RAISE(ABORT, 'verdicts are append-only'); END",
    "CREATE TRIGGER verdicts_no_delete BEFORE DELETE ON verdicts BEGIN SELECT RAISE(ABORT, 'verdicts are append-only'); END",
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


@MIGRATIONS(name="0002_reuse_key_gateway")
def _m0002_reuse_key_gateway(db: Database) -> None:
    """The reuse key includes the gateway: an attestation fetched through one gateway is never cited for another."""
    db.execute("ALTER TABLE attestations ADD COLUMN gateway TEXT")
    db.execute("CREATE INDEX attestations_reuse ON attestations(signer, signing_algo, gateway, captured_at)")
