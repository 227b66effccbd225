"""`verifier ear verify TOKEN --jwks FILE|URL`: check an EAR (the verdict as a signed JWT) offline; `ear rotate-key`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from verifier.cli.log import read_json, read_text

JWKS_TIMEOUT = 30.0


def _fetch_jwks(url: str) -> Any:
    import asyncio

    import aiohttp

    async def get() -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=JWKS_TIMEOUT)) as session,
            session.get(url, allow_redirects=False) as resp,
        ):
            if resp.status != 200:
                raise click.UsageError(f"--jwks {url}: HTTP {resp.status}")
            return await resp.json(content_type=None)

    try:
        return asyncio.run(get())
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise click.UsageError(f"--jwks {url}: {exc}") from None


def _is_file(value: str) -> bool:
    try:
        return Path(value).is_file()
    except (OSError, ValueError):  # a JWT is no file name (too long, NUL)
        return False


@click.group("ear")
def ear_group() -> None:
    """EAT Attestation Results (draft-ietf-rats-ear-04) of verdicts."""


@ear_group.command("verify")
@click.argument("token")
@click.option(
    "--jwks",
    "jwks_source",
    required=True,
    help="The verifier's JWKS: a file, or an http(s) URL (/.well-known/jwks.json).",
)
def verify(token: str, jwks_source: str) -> None:
    """Verify TOKEN (the JWT, a file holding it, or - for stdin) and print its claims; exit 0, or 2 if it fails."""
    from verifier.app.ear import EarError, verify_ear

    if token == "-":
        token = sys.stdin.read()
    elif _is_file(token):
        token = read_text(Path(token), "TOKEN")
    if jwks_source.startswith(("http://", "https://")):
        doc = _fetch_jwks(jwks_source)
    else:
        doc = read_json(Path(jwks_source), "--jwks")
    try:
        claims = verify_ear(token.strip(), doc)
    except EarError as exc:
        click.echo(f"FAIL: {exc}")
        sys.exit(2)
    click.echo(json.dumps(claims, indent=2, sort_keys=True))


@ear_group.command("rotate-key")
@click.option(
    "--key-file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The EAR key file of `serve --ear-key-file` (restart the service to sign with the new key).",
)
def rotate_key(key_file: Path) -> None:
    """Append a new signing key; the old public keys stay in the JWKS, so earlier EARs keep verifying."""
    from verifier.app.ear import public_jwk
    from verifier.app.signing_keys import rotate
    from verifier.core.errors import ConfigError

    try:
        key = rotate(key_file)
    except (ConfigError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"new EAR signing key {public_jwk(key.public_key())['kid']} appended to {key_file}")
