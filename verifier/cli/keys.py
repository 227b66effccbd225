"""`verifier keys create|list|revoke`: API keys for the HTTP API. A new key is printed once, alone on the last
line of stdout; the ledger keeps only its hash."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from verifier.app.keys import KeyStore, Role
from verifier.cli.options import db_option, open_ledger, open_ledger_rw
from verifier.core.errors import ConfigError

ADMIN_KEY_ENV = "VERIFIER_ADMIN_KEY"


@click.group("keys")
def keys_group() -> None:
    """API keys for the HTTP API (roles: submit, read, metrics, admin)."""


@keys_group.command("create")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", default="", help="What the key is for (shown by `keys list`).")
@db_option
def create(role: str, name: str, db_path: str) -> None:
    """Create an API key and print it once (the last line of the output is the key alone)."""
    with open_ledger_rw(db_path) as ledger:
        try:
            key, secret = KeyStore(ledger).create(role, name)
        except ConfigError as exc:
            raise click.ClickException(exc.message) from None
    click.echo(f"created {key.role} key {key.id} ({key.name or 'unnamed'}) in {db_path}; it is shown only now:")
    click.echo(secret)


@keys_group.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True)
def list_keys(db_path: str, as_json: bool) -> None:
    """List API keys (ids, roles, names, revocations; never the keys)."""
    with open_ledger(db_path) as ledger:
        keys = KeyStore(ledger).list()
    if as_json:
        click.echo(json.dumps([k.to_json() for k in keys], indent=2))
        return
    for k in keys:
        click.echo(f"{k.id}  {k.role:<8} {'revoked' if k.revoked_at else 'active ':<8} {k.name}")


@keys_group.command("revoke")
@click.argument("key_id")
@db_option
def revoke(key_id: str, db_path: str) -> None:
    """Revoke an API key: it stops working at once."""
    open_ledger(db_path).close()  # exists and is a ledger
    with open_ledger_rw(db_path) as ledger:
        try:
            key = KeyStore(ledger).revoke(key_id)
        except KeyError:
            raise click.ClickException(f"no key {key_id!r} in {db_path} (see `verifier keys list`)") from None
    click.echo(f"revoked {key.role} key {key.id} ({key.name or 'unnamed'})")


def bootstrap_admin_key(db_path: str, key_file: Path | None, *, create: bool = True) -> None:
    """`serve` with an empty key store: the admin key from the key file or $VERIFIER_ADMIN_KEY, else a new one,
    printed once (like a notebook server's token). Also proves the database opens, before anything starts."""
    with open_ledger_rw(db_path) as ledger:
        store = KeyStore(ledger)
        if not create or store.active_count() > 0:
            return
        try:
            if key_file is not None:
                try:
                    secret = key_file.read_text().strip()
                except (OSError, UnicodeDecodeError) as exc:
                    raise click.ClickException(f"--admin-key-file {key_file}: cannot read: {exc}") from None
                key = store.import_key(secret, Role.ADMIN, f"bootstrap ({key_file})")
                click.echo(f"admin key {key.id} taken from {key_file}")
            elif os.environ.get(ADMIN_KEY_ENV):
                key = store.import_key(os.environ[ADMIN_KEY_ENV], Role.ADMIN, f"bootstrap (${ADMIN_KEY_ENV})")
                click.echo(f"admin key {key.id} taken from ${ADMIN_KEY_ENV}")
            else:
                key, secret = store.create(Role.ADMIN, "bootstrap (first start)")
                click.echo(
                    f"no API keys yet: created admin key {key.id}; it is shown only now (make more with "
                    "`verifier keys create`):"
                )
                click.echo(secret)
        except ConfigError as exc:
            raise click.ClickException(exc.message) from None
