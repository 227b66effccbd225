"""Options and output shared by the commands: exit codes, the verdict emitter, settings, ledger opening."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from verifier.adapters.ledger import Ledger, LedgerError
from verifier.app.settings import Settings
from verifier.appraise.policy import Policy, default_policy, load_policy
from verifier.core.errors import ConfigError
from verifier.evidence.bundle import MAX_UNIX_SECONDS
from verifier.table import render

EXIT = {"pass": 0, "fail": 2, "indeterminate": 3}
AT_RANGE = click.IntRange(0, MAX_UNIX_SECONDS)


def load_policy_option(path: str | None) -> Policy:
    return load_policy(path) if path else default_policy()


def emit(verdict: dict[str, Any], as_json: bool) -> None:
    click.echo(json.dumps(verdict, indent=2, sort_keys=True) if as_json else render(verdict))
    sys.exit(EXIT[verdict["status"]])


db_option = click.option(
    "--db", "db_path", default="verifier.db", envvar="VERIFIER_DB", show_default=True, help="SQLite ledger file."
)
ca_file_option = click.option(
    "--ca-file",
    "ca_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    envvar="VERIFIER_CA_FILE",
    help="PEM file of the CA certificates upstream TLS is verified against, instead of the system store "
    "(e.g. the one `verifier simulator --tls` writes); verification is never switched off.",
)


def settings_from(**kw: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in kw.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None


def open_ledger(db_path: str) -> Ledger:
    """The ledger, read-only: a read command never creates, migrates or writes anything."""
    if not Path(db_path).exists():
        raise click.ClickException(f"no ledger at {db_path} (use --db or VERIFIER_DB)")
    try:
        return Ledger.open_readonly(db_path)
    except LedgerError as exc:
        raise click.ClickException(exc.message) from None


def open_ledger_rw(db_path: str) -> Ledger:
    """The ledger for writing (created and migrated if needed); a usage error naming the path if it cannot be."""
    try:
        return Ledger.open(db_path)
    except LedgerError as exc:
        raise click.ClickException(exc.message) from None
