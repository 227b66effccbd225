"""Pure helpers for the ledger: ids, row shapes, input guards, blob decoding. No database access."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import Any

from verifier.appraise.catalog import REUSE_REQUIRES  # derived from the check registry
from verifier.core.errors import VerifierError

JSON = Any
VERDICT_STATUSES = frozenset({"pass", "fail", "indeterminate"})
# A verdict's attestation may be reused only if all of these passed on a nonce we minted.

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # ascending ASCII, so encoded ids sort like the integers
_ID_RE = re.compile(r"v_[0-9A-HJKMNP-TV-Z]{26}")


class LedgerError(VerifierError):
    """The ledger cannot be opened or used as asked (missing file, not SQLite, not a ledger)."""

    reason = "ledger_error"


class LedgerBusy(LedgerError):
    """Another writer held the SQLite write lock past the busy timeout; nothing was written. Retry later."""

    reason = "ledger_busy"


class LedgerCorruptionError(VerifierError):
    """Stored data no longer matches its hash (or does not decompress)."""


def _section(verdict: dict[str, JSON], key: str) -> dict[str, JSON]:
    value = verdict.get(key)
    return value if isinstance(value, dict) else {}


def check_new_verdict(verdict: dict[str, JSON]) -> None:
    """ValueError unless this looks like a verdict the pipeline built and nobody has saved yet."""
    if verdict.get("id") is not None:
        raise ValueError(f"verdict already has id {verdict['id']!r}; save a new verdict that supersedes it")
    if verdict.get("status") not in VERDICT_STATUSES:
        raise ValueError(f"verdict status must be one of {sorted(VERDICT_STATUSES)}, got {verdict.get('status')!r}")
    checks = verdict.get("checks") or []
    if not isinstance(checks, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in checks):
        raise ValueError("verdict checks must be a list of objects, each with a string id")


def column_text(value: JSON) -> JSON:
    """A string SQLite can store as UTF-8: lone surrogates (from untrusted JSON) become ``\\udXXX`` escapes."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def verdict_json_text(verdict: dict[str, JSON]) -> str:
    """The stored text of a verdict: ASCII JSON, so any string (a lone surrogate too) round-trips exactly."""
    return json.dumps(verdict, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def evidence_digest(manifest: dict[str, str]) -> str:
    """sha256 over a verdict's evidence manifest {name: blob sha256}, in name order."""
    return hashlib.sha256(json.dumps(sorted(manifest.items()), separators=(",", ":")).encode()).hexdigest()


def chain_digest(
    previous: str | None,
    *,
    verdict_id: str,
    created_at: float,
    verdict_json: str,
    evidence_sha256: str,
    submitted_by: str | None,
) -> str:
    """Link of the verdict hash chain: commits to the previous link, the verdict text and its evidence manifest."""
    verdict_sha = hashlib.sha256(verdict_json.encode()).hexdigest()
    text = "\n".join(
        (previous or "", verdict_id, repr(float(created_at)), verdict_sha, evidence_sha256, submitted_by or "")
    )
    return hashlib.sha256(text.encode()).hexdigest()


def verdict_row(verdict: dict[str, JSON], verdict_json: str, created_at: float) -> dict[str, JSON]:
    subject, nonce, times, policy = (_section(verdict, k) for k in ("subject", "nonce", "times", "policy"))
    row = {
        "id": verdict["id"],
        "created_at": created_at,
        "status": verdict["status"],
        **{k: subject.get(k) for k in ("model", "signer", "chat_id", "gateway")},
        "trust_profile": verdict.get("trust_profile"),
        "policy_id": policy.get("id"),
        "policy_sha256": policy.get("sha256"),
        "verified_at": times.get("verified_at"),
        "supersedes": verdict.get("supersedes"),
        "nonce": nonce.get("value"),
        "nonce_origin": nonce.get("origin"),
        "verdict_json": verdict_json,
    }
    return {k: column_text(v) for k, v in row.items()}


def check_rows(verdict: dict[str, JSON]) -> Iterator[dict[str, JSON]]:
    for check in verdict.get("checks") or ():
        row = {
            "verdict_id": verdict["id"],
            "check_id": check["id"],
            **{k: check.get(k) for k in ("status", "severity", "reason", "message")},
        }
        yield {k: column_text(v) for k, v in row.items()}


def attestation_row(verdict: dict[str, JSON], evidence: dict[str, bytes]) -> dict[str, JSON] | None:
    """A row for ``attestations`` if this verdict holds a fresh, passing attestation we can reuse; else None.

    Only an attestation this verifier fetched itself with its freshly minted nonce (``attestation.origin`` =
    ``fetched``), in a verdict that neither reused one nor re-verifies another: a reused or re-verified verdict
    never becomes a reuse source, so one report cannot be stretched past its window.
    """
    subject, nonce = _section(verdict, "subject"), _section(verdict, "nonce")
    attestation = _section(verdict, "attestation")
    passed = {c.get("id") for c in verdict.get("checks") or () if c.get("status") == "pass"}
    if (
        nonce.get("origin") != "minted"
        or not passed.issuperset(REUSE_REQUIRES)
        or attestation.get("origin") != "fetched"
        or attestation.get("reused_from") is not None
        or verdict.get("supersedes") is not None
        or any(isinstance(n, dict) and n.get("code") == "upstream_key_redacted" for n in verdict.get("notes") or ())
        or attestation.get("fetched_at") is None
        or subject.get("signer") is None
        or "report.json" not in evidence
    ):
        return None
    return {
        "verdict_id": verdict["id"],
        "signer": subject["signer"],
        "signing_algo": subject.get("signing_algo"),
        "model": subject.get("model"),
        "gateway": subject.get("gateway"),
        "trust_profile": verdict.get("trust_profile"),
        "captured_at": attestation["fetched_at"],
        "report_sha256": hashlib.sha256(evidence["report.json"]).hexdigest(),
        "nonce": nonce.get("value"),
    }


def filters(
    *, status: str | None, model: str | None, signer: str | None, since: float | None, until: float | None
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("status", status), ("model", model), ("signer", signer)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("created_at >= ?")
        params.append(since)
    if until is not None:
        where.append("created_at < ?")
        params.append(until)
    return where, params


def encode_id(value: int) -> str:
    """ "v_" + 26 Crockford base32 digits of a 128-bit value (48-bit ms time, 80 random bits)."""
    return "v_" + "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def decode_id(verdict_id: str) -> int:
    value = 0
    for char in verdict_id[2:]:
        value = value * 32 + _CROCKFORD.index(char)
    return value


def encode_cursor(verdict_id: str) -> str:
    return base64.urlsafe_b64encode(verdict_id.encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        verdict_id = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (ValueError, UnicodeError):
        verdict_id = ""
    if not _ID_RE.fullmatch(verdict_id):
        raise ValueError("invalid cursor")
    return verdict_id


def check_evidence_name(name: object) -> None:
    ok = isinstance(name, str) and name != "" and not any(c in name for c in "\\\0")
    if not ok or PurePosixPath(str(name)).is_absolute() or ".." in PurePosixPath(str(name)).parts:
        raise ValueError(f"evidence name must be a relative path inside the bundle, got {name!r}")


def refuse_secrets(verdict: dict[str, JSON], evidence: dict[str, bytes], secrets: Iterable[str]) -> None:
    """Raise ValueError if any secret (or its bare token after an auth scheme) appears anywhere we would store."""
    needles: set[str] = set()
    for secret in secrets:
        for candidate in (secret.strip(), *secret.split()[-1:]):  # "Bearer sk-..." -> also "sk-..."
            if candidate:
                needles |= {candidate, json.dumps(candidate)[1:-1], json.dumps(candidate, ensure_ascii=False)[1:-1]}
    if not needles:
        return
    text = json.dumps(verdict, ensure_ascii=False)
    places = [("the verdict", text.encode()), ("an evidence file name", "\0".join(evidence).encode())]
    places += [(f"evidence {name!r}", data) for name, data in evidence.items()]  # names are clean by now
    for where, haystack in places:
        if any(needle.encode() in haystack for needle in needles):
            raise ValueError(f"refusing to store {where}: it contains a secret credential")


def unpack(verdict_id: str, name: str, sha: str, size: int, encoding: str, blob: bytes) -> bytes:
    where = f"evidence {name!r} of verdict {verdict_id} (blob {sha})"
    if encoding != "zlib":
        raise LedgerCorruptionError(f"{where}: unknown encoding {encoding!r}")
    try:
        data = zlib.decompress(blob)
    except zlib.error as exc:
        raise LedgerCorruptionError(f"{where}: stored blob does not decompress: {exc}") from exc
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
        raise LedgerCorruptionError(f"{where}: stored bytes do not match their sha256; the ledger is corrupt")
    return data
