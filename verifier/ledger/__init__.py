"""The verdict ledger: an append-only SQLite store of verdicts and their evidence. See ``ledger.Ledger``."""

from verifier.ledger.ledger import MAX_LIMIT, Ledger
from verifier.ledger.rows import REUSE_REQUIRES, LedgerCorruptionError
from verifier.ledger.schema import MIGRATIONS

__all__ = ["MAX_LIMIT", "MIGRATIONS", "REUSE_REQUIRES", "Ledger", "LedgerCorruptionError"]
