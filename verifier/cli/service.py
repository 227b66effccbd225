"""`verifier serve` (the HTTP API) and `verifier verify` (one completion against its gateway)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
from pathlib import Path
from typing import Any

import click

from verifier import __version__
from verifier.app.services import open_services
from verifier.app.settings import Settings, normalize_gateway
from verifier.cli.keys import bootstrap_admin_key
from verifier.cli.options import ca_file_option, db_option, emit, load_policy_option, settings_from
from verifier.core.errors import ConfigError
from verifier.core.trust import PRODUCTION, SIMULATOR
from verifier.engine.pipeline import Exchange, InputError

log = logging.getLogger("verifier.cli")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so a port in use is one clear error (not a traceback after start-up)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host.strip("[]"), port), family=family, reuse_port=False, backlog=512)
    except (OSError, OverflowError, ValueError) as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@db_option
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None, help="Policy TOML file.")
@click.option(
    "--refs",
    "refs_path",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="VERIFIER_REFS",
    help="Reference values (refs TOML): the software identities a pass requires per model.",
)
@click.option(
    "--allow-gateway",
    "allow_gateways",
    multiple=True,
    help="Gateway base URL callers may name (repeatable; default https://api.redpill.ai).",
)
@click.option(
    "--trust", "trust_profile", type=click.Choice([PRODUCTION, SIMULATOR]), default=PRODUCTION, show_default=True
)
@click.option("--pcs-url", default=None, help="Intel PCS or PCCS base URL for collateral.")
@click.option("--pccs", is_flag=True, default=None, help="--pcs-url is a PCCS (root CA CRL served as hex).")
@click.option("--nras-url", default=None, help="NVIDIA NRAS base URL.")
@ca_file_option
@click.option("--offline", is_flag=True, default=None, help="Never fetch collateral or NRAS answers.")
@click.option(
    "--workers",
    "dcap_workers",
    type=click.IntRange(1, 256),
    default=None,
    help="dcap-qvl worker processes (default: cores).",
)
@click.option(
    "--signature-deadline",
    type=click.FloatRange(0, 600),
    default=None,
    help="Seconds to keep retrying the signature fetch (404/5xx/429/timeouts; default 20).",
)
@click.option(
    "--retain-bodies",
    type=click.Choice(["full", "hashes"]),
    default=None,
    help="full (default): keep the exact request/response bytes; hashes: keep only their sha256.",
)
@click.option(
    "--rate-limit",
    "rate_per_minute",
    type=click.FloatRange(0),
    default=None,
    help="Requests per minute per API key (default 600; 0 = no limit).",
)
@click.option(
    "--rate-burst", type=click.IntRange(1), default=None, help="Burst size of the per-key rate limit (default 60)."
)
@click.option(
    "--upstream-budget",
    "upstream_per_minute",
    type=click.FloatRange(0),
    default=None,
    help="Gateway calls per minute per gateway (default 60; a verification needs up to 2; 0 = no limit).",
)
@click.option(
    "--max-inflight-mib",
    type=click.IntRange(16),
    default=None,
    help="MiB of request bodies and upstream answers held at once (default 256); beyond: wait, then 503.",
)
@click.option(
    "--db-busy-timeout",
    "db_busy_timeout",
    type=click.FloatRange(0, 600),
    default=None,
    help="Seconds a write waits for another process's lock before answering 503 ledger_busy (default 5).",
)
@click.option(
    "--admin-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="VERIFIER_ADMIN_KEY_FILE",
    help="With an empty key store: read the first admin key from this file (else $VERIFIER_ADMIN_KEY, else one is "
    "made and printed).",
)
@click.option(
    "--insecure-no-auth", is_flag=True, help="No API keys at all (every caller is admin); only with a loopback --host."
)
@click.option(
    "--log-key-file",
    "log_key_path",
    default=None,
    envvar="VERIFIER_LOG_KEY_FILE",
    help="Ed25519 PEM key that signs the verdict log's checkpoints (default: <db>.log-key.pem; made if absent).",
)
@click.option(
    "--ear-key-file",
    "ear_key_path",
    default=None,
    envvar="VERIFIER_EAR_KEY_FILE",
    help="Ed25519 PEM key file that signs EARs; the last key signs, earlier ones stay in the JWKS "
    "(default: <db>.ear-key.pem; made if absent; `verifier ear rotate-key` adds one).",
)
def serve(
    host: str,
    port: int,
    allow_gateways: tuple[str, ...],
    max_inflight_mib: int | None,
    admin_key_file: Path | None,
    insecure_no_auth: bool,
    **kw: Any,
) -> None:
    """Run the HTTP API."""
    from aiohttp import web

    from verifier.app.logs import configure_json_logging
    from verifier.web import create_app

    if allow_gateways:
        kw["allow_gateways"] = allow_gateways
        kw["default_gateway"] = allow_gateways[0]
    if max_inflight_mib is not None:
        kw["max_inflight_bytes"] = max_inflight_mib * 1024 * 1024
    if insecure_no_auth:
        if not is_loopback(host):
            raise click.ClickException(f"--insecure-no-auth needs a loopback --host (127.0.0.1, ::1), not {host!r}")
        kw["auth"] = False
    db_path = kw.get("db_path") or "verifier.db"
    for name, suffix in (("log_key_path", ".log-key.pem"), ("ear_key_path", ".ear-key.pem")):
        if kw.get(name) is None and db_path != ":memory:":
            kw[name] = db_path + suffix  # generated on first serve, like the admin key
    settings = settings_from(**kw)
    try:
        policy = load_policy_option(settings.policy_path)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None
    bootstrap_admin_key(settings.db_path, admin_key_file, create=settings.auth)  # also: the database opens
    sock = listen(host, port)
    configure_json_logging()  # from here on, every log line is one JSON object
    if not settings.auth:
        log.warning("authentication is OFF (--insecure-no-auth on %s): every caller is an admin", host)
    bound = sock.getsockname()
    click.echo(
        f"verifier {__version__}: policy {policy.id} sha256:{policy.sha256[:16]}…, trust {settings.trust_profile}, "
        f"db {settings.db_path}, gateways {', '.join(settings.allow_gateways)}, retain bodies {settings.retain_bodies}"
    )
    click.echo(
        f"verdict log {settings.log_origin}: checkpoint key {settings.log_key_path}, EAR keys {settings.ear_key_path}"
    )
    click.echo(f"listening on http://{f'[{host}]' if ':' in host else host}:{bound[1]}")
    web.run_app(create_app(settings), sock=sock, shutdown_timeout=10, print=None, access_log=None)


@click.command()
@click.option(
    "--request",
    "request_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Exact request bytes sent.",
)
@click.option(
    "--response",
    "response_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Exact response bytes received.",
)
@click.option("--model", required=True)
@click.option("--gateway", default="https://api.redpill.ai", show_default=True)
@click.option("--chat-id", default=None, help="Default: the response's id.")
@click.option("--signing-algo", type=click.Choice(["ecdsa", "ed25519"]), default="ecdsa", show_default=True)
@click.option("--db", "db_path", default=None, envvar="VERIFIER_DB", help="Record the verdict in this SQLite ledger.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None)
@click.option(
    "--refs",
    "refs_path",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="VERIFIER_REFS",
    help="Reference values (refs TOML): the software identities a pass requires per model.",
)
@click.option(
    "--trust", "trust_profile", type=click.Choice([PRODUCTION, SIMULATOR]), default=PRODUCTION, show_default=True
)
@click.option("--pcs-url", default=None)
@click.option("--pccs", is_flag=True, default=None)
@click.option("--nras-url", default=None)
@ca_file_option
@click.option("--offline", is_flag=True, default=None)
@click.option(
    "--signature-deadline",
    type=click.FloatRange(0, 600),
    default=None,
    help="Seconds to keep retrying the signature fetch (404/5xx/429/timeouts; default 20).",
)
@click.option(
    "--retain-bodies", type=click.Choice(["full", "hashes"]), default=None, help="What --db keeps of the bodies."
)
@click.option(
    "--api-key-env",
    default="VERIFIER_UPSTREAM_KEY",
    show_default=True,
    help="Environment variable holding the gateway API key.",
)
@click.option("--json", "as_json", is_flag=True)
def verify(
    request_file: Path,
    response_file: Path,
    model: str,
    gateway: str,
    chat_id: str | None,
    signing_algo: str,
    api_key_env: str,
    as_json: bool,
    **kw: Any,
) -> None:
    """Verify one completion against its gateway: signature, fresh-nonce report, TDX, GPU."""
    try:
        exchange = Exchange(
            request=request_file.read_bytes(),
            response=response_file.read_bytes(),
            model=model,
            gateway=normalize_gateway(gateway),
            chat_id=chat_id,
            signing_algo=signing_algo,
        )
    except OSError as exc:
        raise click.ClickException(f"cannot read {exc.filename}: {exc.strerror}") from None
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None
    record = kw.get("db_path") is not None
    kw["db_path"] = kw.get("db_path") or ":memory:"
    settings = settings_from(
        **kw,
        dcap_workers=1,
        allow_gateways=(exchange.gateway,),
        default_gateway=exchange.gateway,
        upstream_per_minute=0,
    )
    api_key = os.environ.get(api_key_env) or None
    from verifier.adapters.ledger import LedgerError

    try:
        verdict = asyncio.run(_verify(settings, exchange, api_key, record))
    except (InputError, ConfigError, LedgerError) as exc:
        raise click.ClickException(exc.message) from None
    emit(verdict, as_json)


async def _verify(settings: Settings, exchange: Exchange, api_key: str | None, record: bool) -> dict[str, Any]:
    async with open_services(settings) as svc:
        return await svc.records.verify(exchange, api_key=api_key, record=record)
