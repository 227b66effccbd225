"""Ledger commands: `show`, `list`, `export` (read-only); ``_reverify`` runs one re-verification (`cli.jobs`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from verifier.adapters.ledger import LedgerCorruptionError, LedgerError
from verifier.app.records import UnknownVerdict, export_bundle, reproduce_command
from verifier.app.services import open_services
from verifier.cli.options import AT_RANGE, db_option, open_ledger
from verifier.table import render


@click.command()
@click.argument("verdict_id")
@db_option
@click.option("--json", "as_json", is_flag=True)
def show(verdict_id: str, db_path: str, as_json: bool) -> None:
    """Show a recorded verdict."""
    with open_ledger(db_path) as ledger:
        try:
            verdict = ledger.get(verdict_id)
        except LedgerCorruptionError as exc:
            raise click.ClickException(f"{db_path}: {exc}") from None
    if verdict is None:
        raise click.ClickException(f"no verdict {verdict_id!r} in {db_path}")
    click.echo(json.dumps(verdict, indent=2, sort_keys=True) if as_json else render(verdict))


@click.command("list")
@db_option
@click.option("--status", type=click.Choice(["pass", "fail", "indeterminate"]), default=None)
@click.option("--model", default=None)
@click.option("--signer", default=None)
@click.option("--since", type=AT_RANGE, default=None, help="Created at or after (unix seconds).")
@click.option("--until", type=AT_RANGE, default=None, help="Created before (unix seconds).")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--cursor", default=None)
@click.option(
    "--claim",
    "claims",
    multiple=True,
    metavar="NAME=VALUE",
    help="Verdicts whose claims include it: tcb_status, advisory, fmspc, app_id, compose_hash, driver (repeatable).",
)
@click.option("--json", "as_json", is_flag=True)
def list_cmd(db_path: str, as_json: bool, claims: tuple[str, ...], **filters: Any) -> None:
    """List recorded verdicts, newest first."""
    wanted = dict(c.partition("=")[::2] for c in claims)
    try:
        with open_ledger(db_path) as ledger:
            items, cursor = ledger.list(**filters, claims=wanted or None)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"items": items, "next_cursor": cursor}, indent=2, sort_keys=True))
        return
    for item in items:
        click.echo(f"{item['id']}  {item['status']:<13}  {item.get('model') or '-':<32}  {item.get('signer') or '-'}")
    if cursor:
        click.echo(f"(more: --cursor {cursor})")


@click.command()
@click.argument("verdict_id")
@db_option
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Zip file to write.",
)
def export(verdict_id: str, db_path: str, output: Path) -> None:
    """Export a verdict's evidence bundle (zip) for `verifier verify-bundle`."""
    try:
        with open_ledger(db_path) as ledger:
            bundle, verdict = export_bundle(ledger, verdict_id)
    except UnknownVerdict:
        raise click.ClickException(f"no verdict {verdict_id!r} in {db_path}") from None
    except LedgerError as exc:
        raise click.ClickException(exc.message) from None
    try:
        output.write_bytes(bundle.to_zip())
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"wrote {output}; reproduce with: {reproduce_command(str(output), verdict)}")


async def _reverify(settings: Any, verdict_id: str, at: int | None) -> dict[str, Any]:
    async with open_services(settings) as svc:
        return await svc.records.reverify(verdict_id, at=at)
