"""The verdict ledger: an append-only SQLite store of verdicts and their evidence. See ``ledger.Ledger``."""

from verifier.adapters.ledger.check import CheckReport, check_ledger
from verifier.adapters.ledger.ledger import MAX_LIMIT, Ledger
from verifier.adapters.ledger.rows import REUSE_REQUIRES, LedgerBusy, LedgerCorruptionError, LedgerError
from verifier.adapters.ledger.schema import MIGRATIONS

__all__ = [
    "MAX_LIMIT",
    "MIGRATIONS",
    "REUSE_REQUIRES",
    "CheckReport",
    "Ledger",
    "LedgerBusy",
    "LedgerCorruptionError",
    "LedgerError",
    "check_ledger",
]
