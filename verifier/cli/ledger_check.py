"""`verifier ledger check`: re-hash every evidence blob and every verdict↔evidence reference; exit 2 on a mismatch."""

from __future__ import annotations

import sys

import click

from verifier.adapters.ledger import check_ledger
from verifier.cli.options import db_option, open_ledger


@click.group("ledger")
def ledger_group() -> None:
    """The ledger file itself."""


@ledger_group.command("check")
@db_option
def check(db_path: str) -> None:
    """Re-derive every hash, reference and index row; print each mismatch (exit 2) or ok (exit 0)."""
    with open_ledger(db_path) as ledger:
        report = check_ledger(ledger)
    for problem in report.problems:
        click.echo(f"MISMATCH {problem}")
    summary = f"{report.verdicts} verdicts, {report.blobs} evidence blobs"
    if report.unchained:
        summary += f" ({report.unchained} recorded before the hash chain existed)"
    if report.problems:
        click.echo(f"ledger {db_path}: {len(report.problems)} mismatch(es) over {summary}")
        sys.exit(2)
    click.echo(f"ok: ledger {db_path}: {summary} verified")
