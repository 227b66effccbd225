"""Ledger commands: `show`, `list`, `export`, `reverify`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import click

from verifier.adapters.ledger import Ledger
from verifier.app.services import open_services
from verifier.cli.options import AT_RANGE, db_option, emit, open_ledger, settings_from
from verifier.core.trust import PRODUCTION
from verifier.engine.evaluate import evaluate
from verifier.evidence.bundle import Bundle
from verifier.table import render


@click.command()
@click.argument("verdict_id")
@db_option
@click.option("--json", "as_json", is_flag=True)
def show(verdict_id: str, db_path: str, as_json: bool) -> None:
    """Show a recorded verdict."""
    verdict = open_ledger(db_path).get(verdict_id)
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
@click.option("--json", "as_json", is_flag=True)
def list_cmd(db_path: str, as_json: bool, **filters: Any) -> None:
    """List recorded verdicts, newest first."""
    try:
        items, cursor = open_ledger(db_path).list(**filters)
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
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Zip file to write.")
def export(verdict_id: str, db_path: str, output: Path) -> None:
    """Export a verdict's evidence bundle (zip) for `verifier verify-bundle`."""
    try:
        files = open_ledger(db_path).evidence(verdict_id)
    except KeyError:
        raise click.ClickException(f"no verdict {verdict_id!r} in {db_path}") from None
    output.write_bytes(Bundle.from_files(files).to_zip())
    verdict = open_ledger(db_path).get(verdict_id) or {}
    click.echo(f"wrote {output}; reproduce with: verifier verify-bundle {output} --at {verdict.get('times', {}).get('verified_at')}"
               + (" --trust simulator" if verdict.get("simulator") else ""))


@click.command()
@click.argument("verdict_id")
@db_option
@click.option("--at", type=AT_RANGE, default=None, help="Verification time, unix seconds (default: now).")
@click.option("--json", "as_json", is_flag=True)
def reverify(verdict_id: str, db_path: str, at: int | None, as_json: bool) -> None:
    """Re-evaluate a recorded verdict's evidence offline; the new verdict supersedes the old."""
    open_ledger(db_path)
    verdict = asyncio.run(_reverify(verdict_id, db_path, at))
    emit(verdict, as_json)


async def _reverify(verdict_id: str, db_path: str, at: int | None) -> dict[str, Any]:
    old = Ledger.open(db_path).get(verdict_id)
    if old is None:
        raise click.ClickException(f"no verdict {verdict_id!r} in {db_path}")
    settings = settings_from(db_path=db_path, offline=True, dcap_workers=1, trust_profile=old.get("trust_profile", PRODUCTION))
    async with open_services(settings) as svc:
        bundle = await svc.recorder.bundle(verdict_id)
        assert bundle is not None
        evaluation = await evaluate(bundle, svc.offline_context(now=at if at is not None else int(time.time())),
                                    supersedes=verdict_id)
        new_id = await svc.recorder.save(evaluation.verdict.to_json(), evaluation.bundle)
        return evaluation.verdict.with_id(new_id).to_json()
