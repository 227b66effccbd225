"""The dashboard's session cookie: an HMAC-SHA256-signed (``cryptography``) key id and expiry, never the key.

Cookie value ``<key id>.<expires unix s>.<random nonce>.<mac hex>`` (each login its own session); the cookie is
HttpOnly, SameSite=Strict, Path=/ui (and Secure when the request came over TLS). A valid signature only says
*which* key logged in: every request looks the key up again (a revoked key's session ends at once, and its role is
the key's current role). The signing secret is random per process, so a restart ends every session. CSRF tokens
are a second HMAC of the cookie value under a distinct label: a form posted from another site cannot know it.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

COOKIE = "verifier_ui"
LIFETIME_S = 8 * 3600
_VALUE = re.compile(r"([0-9a-f]{16})\.([0-9]{1,12})\.([0-9a-f]{32})\.([0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    expires: int
    value: str  # the signed cookie value


class Signer:
    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def _mac(self, label: str, text: str) -> str:
        mac = crypto_hmac.HMAC(self._secret, hashes.SHA256())
        mac.update(f"{label}\n{text}".encode())
        return mac.finalize().hex()

    def issue(self, key_id: str, *, now: float) -> Session:
        expires = int(now) + LIFETIME_S
        body = f"{key_id}.{expires}.{secrets.token_hex(16)}"
        return Session(key_id, expires, f"{body}.{self._mac('session', body)}")

    def verify(self, value: str | None, *, now: float) -> Session | None:
        """The session this cookie value is, or None (absent, malformed, forged or expired)."""
        match = _VALUE.fullmatch(value or "")
        if match is None:
            return None
        key_id, expires, nonce, mac = match.group(1), int(match.group(2)), match.group(3), match.group(4)
        if not hmac.compare_digest(mac, self._mac("session", f"{key_id}.{expires}.{nonce}")) or expires <= now:
            return None
        return Session(key_id, expires, match.group(0))

    def csrf(self, session: Session) -> str:
        return self._mac("csrf", session.value)

    def csrf_ok(self, session: Session, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self.csrf(session).encode())
