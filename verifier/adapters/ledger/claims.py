"""Filters over the claim index (``verdict_claims``, migration 0004_jobs): one indexed sub-select per claim."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from verifier.adapters.ledger.schema import CLAIM_NAMES

__all__ = ["CLAIM_NAMES", "claim_clauses", "normalize_claim"]


def normalize_claim(name: str, value: str) -> str:
    """The form the index stores: FMSPC upper-case hex, app ids and compose hashes lower-case hex, the rest as given.
    ValueError for a claim name that is not indexed."""
    if name not in CLAIM_NAMES:
        raise ValueError(f"{name}: not an indexed claim (indexed: {', '.join(CLAIM_NAMES)})")
    if name == "fmspc":
        return value.upper()
    if name in ("app_id", "compose_hash"):
        return value.lower().removeprefix("0x")
    return value


def claim_clauses(claims: Mapping[str, str] | None, *, id_column: str = "id") -> tuple[list[str], list[Any]]:
    """WHERE clauses (and their parameters) keeping the verdicts whose claims include every ``name = value``."""
    where: list[str] = []
    params: list[Any] = []
    for name, value in sorted((claims or {}).items()):
        where.append(f"{id_column} IN (SELECT verdict_id FROM verdict_claims WHERE name = ? AND value = ?)")  # noqa: S608
        params += [name, normalize_claim(name, value)]
    return where, params
