"""Small builders shared by tests: a recorded verdict in a ledger file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from verifier.adapters.ledger import Ledger

REPORT = b'{"signing_address": "0xabc", "intel_quote": "04000200"}'
EVIDENCE = {
    "meta.json": b'{"model": "m1"}',
    "request.body": b'{"messages": []}',
    "response.body": b'{"id": "c1"}',
    "report.json": REPORT,
}


def verdict(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": None,
        "status": "pass",
        "trust_profile": "production",
        "simulator": False,
        "subject": {
            "model": "m1",
            "chat_id": "c1",
            "gateway": "https://gw.example",
            "signing_algo": "ecdsa",
            "signer": "0xabc",
        },
        "nonce": {"value": "11" * 32, "origin": "minted"},
        "times": {"verified_at": 1_700_000_000, "captured_at": 1_700_000_000},
        "policy": {"id": "default", "sha256": "cc" * 32},
        "checks": [
            {"id": c, "status": "pass", "severity": "required", "reason": None, "message": "", "details": {}}
            for c in ("tdx.quote", "tdx.binds_signer", "tdx.binds_nonce", "report.signer", "nonce.fresh")
        ],
        "notes": [],
        "attestation": {"reused_from": None, "origin": "fetched", "fetched_at": 1_700_000_000},
        "supersedes": None,
    }
    base.update(overrides)
    return base


def save_one(path: Path, evidence: dict[str, bytes] | None = None, **overrides: Any) -> str:
    with Ledger.open(path) as ledger:
        return ledger.save(verdict(**overrides), EVIDENCE if evidence is None else evidence)


def reverified(
    job_id: str, old_id: str, *, old_status: str = "pass", status: str = "fail", at: int = 1_700_000_000
) -> Any:
    """The job item the job code commits for one re-verification: its new verdict supersedes ``old_id`` and carries
    ``claims.reverification`` (the job, the previous status, both clocks) as ``app.jobs`` writes it."""
    from verifier.adapters.ledger.jobs import Item

    clock = {"at": at, "status": status, "reasons": ["r"], "collateral": "recorded"}
    claims = {
        "reverification": {
            "job": job_id,
            "previous": {"id": old_id, "status": old_status},
            "clocks": {"captured": clock, "job": clock},
        }
    }
    new = verdict(status=status, supersedes=old_id, claims=claims)
    return Item(
        old_id,
        old_status,
        new,
        EVIDENCE,
        captured_at=at,
        captured_status=status,
        job_at=at,
        job_status=status,
        reasons=("r",),
    )
