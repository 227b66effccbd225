"""API keys with roles: made once, shown once, stored only as a hash.

A key is ``vk_`` + 43 url-safe base64 characters (32 random bytes). Its public id is the first 16 hex digits
of its sha256 (shown by ``keys list``, written in logs and in the verdicts it submits); the stored row holds
the full sha256. Lookup is keyed by the id, then the full hash is compared in constant time. Roles:

- ``submit``: create verifications; read back only the verdicts this key submitted
- ``read``: every verdict, bundle and list, and ``/metrics``
- ``metrics``: ``/metrics`` only (a scraper's key)
- ``admin``: everything, including re-verification and key management
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from verifier.adapters.ledger import Ledger
from verifier.adapters.ledger.keys import KeyRow, count_active_keys, find_key, insert_key, list_keys, revoke_key
from verifier.core.errors import ConfigError

PREFIX = "vk_"
MIN_IMPORTED_LENGTH = 32  # a key brought in from the environment or a file must be at least this long
MAX_KEY_LENGTH = 256


class Role(enum.StrEnum):
    SUBMIT = "submit"
    READ = "read"
    METRICS = "metrics"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    role: Role
    name: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "role": str(self.role),
            "name": self.name,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def key_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def well_formed(secret: str) -> bool:
    """Visible ASCII only, bounded: anything else cannot be a key (and is never looked up)."""
    return 0 < len(secret) <= MAX_KEY_LENGTH and all(33 <= ord(c) <= 126 for c in secret)


def _api_key(row: KeyRow) -> ApiKey:
    return ApiKey(id=row.id, role=Role(row.role), name=row.name, created_at=row.created_at, revoked_at=row.revoked_at)


class KeyStore:
    """Synchronous key operations over one ledger connection (run them on the ledger's threads)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def create(self, role: Role | str, name: str = "") -> tuple[ApiKey, str]:
        """A new key: (its record, the key itself — shown once, never stored)."""
        secret = new_secret()
        return self._insert(secret, Role(role), name), secret

    def import_key(self, secret: str, role: Role | str, name: str) -> ApiKey:
        """Store a key chosen elsewhere (the Docker image's environment or key file)."""
        secret = secret.strip()
        if not well_formed(secret) or len(secret) < MIN_IMPORTED_LENGTH:
            raise ConfigError(
                f"{name}: a key must be {MIN_IMPORTED_LENGTH}..{MAX_KEY_LENGTH} visible ASCII characters "
                "(make one with `verifier keys create`)"
            )
        existing = find_key(self.ledger, key_id(secret))
        if existing is not None and hmac.compare_digest(existing.key_sha256, _sha(secret)):
            return _api_key(existing)
        return self._insert(secret, Role(role), name)

    def _insert(self, secret: str, role: Role, name: str) -> ApiKey:
        if len(name) > 200 or any(ord(c) < 32 for c in name):
            raise ConfigError("key name: at most 200 characters, no control characters")
        return _api_key(
            insert_key(self.ledger, key_id=key_id(secret), key_sha256=_sha(secret), role=str(role), name=name)
        )

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key this secret is, or None (unknown, revoked, or malformed)."""
        if not well_formed(secret):
            return None
        row = find_key(self.ledger, key_id(secret))
        if row is None or not hmac.compare_digest(row.key_sha256, _sha(secret)) or row.revoked_at is not None:
            return None
        return _api_key(row)

    def list(self) -> list[ApiKey]:
        return [_api_key(row) for row in list_keys(self.ledger)]

    def revoke(self, key_id: str) -> ApiKey:
        """KeyError if there is no such key."""
        return _api_key(revoke_key(self.ledger, key_id))

    def active_count(self) -> int:
        return count_active_keys(self.ledger)


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
