"""`verifier ledger check`: re-hash every evidence blob and every verdict↔evidence reference; exit 2 on a mismatch."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from verifier.adapters.ledger import check_ledger
from verifier.cli.options import db_option, open_ledger


@click.group("ledger")
def ledger_group() -> None:
    """The ledger file itself."""


@ledger_group.command("check")
@db_option
@click.option(
    "--log-key",
    "log_key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The log's verifier key (C2SP vkey, as `GET /v1/log/key` serves it): also verify every checkpoint's "
    "signature.",
)
def check(db_path: str, log_key_file: Path | None) -> None:
    """Re-derive every hash, reference and index row and the transparency log; print each mismatch (exit 2) or ok
    (exit 0)."""
    from verifier.core.checkpoint import CheckpointError, NoteVerifier

    try:
        log_key = None if log_key_file is None else NoteVerifier.from_vkey(log_key_file.read_text())
    except (CheckpointError, OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"--log-key {log_key_file}: {exc}") from None
    with open_ledger(db_path) as ledger:
        report = check_ledger(ledger, log_key=log_key)
    for problem in report.problems:
        click.echo(f"MISMATCH {problem}")
    summary = f"{report.verdicts} verdicts, {report.blobs} evidence blobs"
    summary += f", log of {report.log_size} leaves" + (
        "" if report.checkpoint_size is None else f" (latest checkpoint: size {report.checkpoint_size})"
    )
    summary += f", key log of {report.key_events} events" + (
        "" if report.key_log_head is None else f" (head {report.key_log_head})"
    )
    if report.unchained:
        summary += f" ({report.unchained} recorded before the hash chain existed)"
    if report.problems:
        click.echo(f"ledger {db_path}: {len(report.problems)} mismatch(es) over {summary}")
        sys.exit(2)
    click.echo(f"ok: ledger {db_path}: {summary} verified")
