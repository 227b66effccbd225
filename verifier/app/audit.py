"""Offline audit of a verdict with nothing but files: the verdict JSON, its inclusion proof, a signed checkpoint, the
log's verifier key (and optionally an older checkpoint with a consistency proof, the EAR and the JWKS).

What passes: the checkpoint is signed by the log key and names its origin; the proof is for exactly the
checkpoint's tree size and this verdict; the verdict's RFC 8785 leaf hash with the proof leads to the signed root;
an older checkpoint (same key) is a prefix of the newer one; the EAR is signed by a JWKS key and names this verdict,
its status and its log index. Any mismatch raises ``AuditError`` naming what differs.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from verifier.app.ear import EXT_LOG_INDEX, EXT_STATUS, EXT_VERDICT_ID, EarError, verify_ear
from verifier.core.checkpoint import Checkpoint, CheckpointError, NoteVerifier, verify_checkpoint
from verifier.core.merkle import ProofError, leaf_hash, verdict_entry, verify_consistency, verify_inclusion


class AuditError(ValueError):
    """The files do not prove what they claim."""


@dataclass(frozen=True, slots=True)
class InclusionAudit:
    verdict_id: str
    index: int
    checkpoint: Checkpoint


def _hashes(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise AuditError(f"{what}: expected a list of base64 hashes")
    try:
        return [base64.b64decode(v, validate=True) for v in values]
    except binascii.Error:
        raise AuditError(f"{what}: not base64") from None


def _int(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise AuditError(f"proof: {name} must be a non-negative integer")
    return value


def open_checkpoint(note: str | bytes, vkey: NoteVerifier) -> Checkpoint:
    try:
        return verify_checkpoint(note, vkey, origin=vkey.name)
    except CheckpointError as exc:
        raise AuditError(f"checkpoint: {exc}") from None


def audit_inclusion(verdict: Any, proof: Any, checkpoint_note: str | bytes, vkey: NoteVerifier) -> InclusionAudit:
    checkpoint = open_checkpoint(checkpoint_note, vkey)
    if not isinstance(proof, dict) or not isinstance(verdict, dict):
        raise AuditError("the proof and the verdict must be JSON objects")
    index, size = _int(proof, "log_index"), _int(proof, "tree_size")
    if size != checkpoint.size:
        raise AuditError(
            f"stale proof: it is for a tree of {size} leaves, the checkpoint signs {checkpoint.size} "
            f"(fetch /v1/log/proof/<id>?size={checkpoint.size})"
        )
    if proof.get("verdict_id") != verdict.get("id"):
        raise AuditError(
            f"the proof is for verdict {str(proof.get('verdict_id'))[:40]!r}, the verdict is "
            f"{str(verdict.get('id'))[:40]!r}"
        )
    leaf = leaf_hash(verdict_entry(verdict))
    try:
        verify_inclusion(index, size, leaf, _hashes(proof.get("inclusion_path"), "inclusion_path"), checkpoint.root)
    except ProofError as exc:
        raise AuditError(
            f"the verdict is not leaf {index} of the signed tree: {exc} (the verdict or the proof was altered)"
        ) from None
    return InclusionAudit(verdict_id=str(verdict["id"]), index=index, checkpoint=checkpoint)


def audit_consistency(old_note: str | bytes, new: Checkpoint, proof: Any, vkey: NoteVerifier) -> Checkpoint:
    old = open_checkpoint(old_note, vkey)
    if not isinstance(proof, dict) or (proof.get("from"), proof.get("to")) != (old.size, new.size):
        raise AuditError(f"the consistency proof must be from {old.size} to {new.size} (the two checkpoints' sizes)")
    try:
        verify_consistency(
            old.size, new.size, old.root, new.root, _hashes(proof.get("consistency_path"), "consistency_path")
        )
    except ProofError as exc:
        raise AuditError(
            f"the older checkpoint is not a prefix of the newer one: {exc} (the log was rewritten)"
        ) from None
    return old


def audit_ear(token: str, jwks_doc: dict[str, Any], verdict: dict[str, Any], index: int | None) -> dict[str, Any]:
    try:
        claims = verify_ear(token, jwks_doc)
    except EarError as exc:
        raise AuditError(f"EAR: {exc}") from None
    want = {EXT_VERDICT_ID: verdict.get("id"), EXT_STATUS: verdict.get("status")}
    if index is not None:
        want[EXT_LOG_INDEX] = index
    for claim, value in want.items():
        if claims.get(claim) != value:
            raise AuditError(f"EAR: {claim} is {str(claims.get(claim))[:40]!r}, expected {value!r}")
    return claims
