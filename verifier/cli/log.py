"""`verifier log verify`: check, offline, that the log committed a verdict (and that an older checkpoint is a prefix).

Nothing but files: the verdict JSON (as `GET /v1/verifications/{id}` serves it), its inclusion proof
(`GET /v1/log/proof/{id}?size=N`), a signed checkpoint of size N (`GET /v1/log/checkpoint`) and the log's verifier
key (`GET /v1/log/key`); optionally an older checkpoint with the consistency proof between the two, and the EAR with
the JWKS. Exit 0 when everything verifies, 2 on any mismatch, 1 for unreadable input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"{what} {path}: cannot read: {exc}") from None


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(read_text(path, what))
    except ValueError as exc:
        raise click.UsageError(f"{what} {path}: not JSON: {exc}") from None


def log_verifier(value: str) -> Any:
    """A vkey given as text or as a file holding it."""
    from verifier.core.checkpoint import CheckpointError, NoteVerifier

    path = Path(value)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):
        is_file = False
    text = read_text(path, "--log-key") if is_file else value
    try:
        return NoteVerifier.from_vkey(text)
    except CheckpointError as exc:
        raise click.UsageError(f"--log-key: {exc}") from None


@click.group("log")
def log_group() -> None:
    """The transparency log of verdicts."""


@log_group.command("verify")
@click.option("--log-key", required=True, help="The log's verifier key (C2SP vkey) or a file holding it.")
@click.option(
    "--checkpoint", "checkpoint_file", required=True, type=_FILE, help="A signed checkpoint (C2SP tlog-checkpoint)."
)
@click.option(
    "--proof", "proof_file", type=_FILE, help="The verdict's inclusion proof (JSON) for the checkpoint's size."
)
@click.option("--verdict", "verdict_file", type=_FILE, help="The verdict JSON.")
@click.option("--old-checkpoint", "old_file", type=_FILE, help="An older checkpoint the new one must extend.")
@click.option(
    "--consistency", "consistency_file", type=_FILE, help="The consistency proof (JSON) from the old to the new size."
)
@click.option("--ear", "ear_file", type=_FILE, help="The verdict's EAR (JWT); needs --jwks.")
@click.option("--jwks", "jwks_file", type=_FILE, help="The verifier's JWKS (JSON).")
def verify(
    log_key: str,
    checkpoint_file: Path,
    proof_file: Path | None,
    verdict_file: Path | None,
    old_file: Path | None,
    consistency_file: Path | None,
    ear_file: Path | None,
    jwks_file: Path | None,
) -> None:
    """Verify inclusion (--proof --verdict) and/or consistency (--old-checkpoint --consistency), and an EAR."""
    from verifier.app.audit import AuditError, audit_consistency, audit_ear, audit_inclusion, open_checkpoint

    if (proof_file is None) != (verdict_file is None) or (old_file is None) != (consistency_file is None):
        raise click.UsageError("give --proof with --verdict, and --old-checkpoint with --consistency")
    if proof_file is None and old_file is None:
        raise click.UsageError("nothing to verify: give --proof and --verdict, or --old-checkpoint and --consistency")
    if (ear_file is None) != (jwks_file is None) or (ear_file is not None and verdict_file is None):
        raise click.UsageError("give --ear with --jwks and --verdict")
    vkey = log_verifier(log_key)
    note = read_text(checkpoint_file, "--checkpoint")
    try:
        checkpoint = open_checkpoint(note, vkey)
        click.echo(
            f"checkpoint: {checkpoint.origin}, {checkpoint.size} leaves, signed by {vkey.name} ({vkey.key_id.hex()})"
        )
        index = None
        if proof_file is not None and verdict_file is not None:
            verdict = read_json(verdict_file, "--verdict")
            got = audit_inclusion(verdict, read_json(proof_file, "--proof"), note, vkey)
            index = got.index
            click.echo(f"included: verdict {got.verdict_id} is leaf {got.index} of the signed tree")
        if old_file is not None and consistency_file is not None:
            old = audit_consistency(
                read_text(old_file, "--old-checkpoint"), checkpoint, read_json(consistency_file, "--consistency"), vkey
            )
            click.echo(f"consistent: the tree of {old.size} leaves is a prefix of the tree of {checkpoint.size}")
        if ear_file is not None and jwks_file is not None:
            claims = audit_ear(read_text(ear_file, "--ear").strip(), read_json(jwks_file, "--jwks"), verdict, index)
            click.echo(
                f"EAR: signed by the JWKS, verdict {claims['x-verifier-verdict-id']} "
                f"({claims['x-verifier-verdict-status']})"
            )
    except AuditError as exc:
        click.echo(f"FAIL: {exc}")
        sys.exit(2)
    click.echo("ok")
