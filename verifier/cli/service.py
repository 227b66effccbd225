"""`verifier serve` (the HTTP API) and `verifier verify` (one completion against its gateway)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import click

from verifier import __version__
from verifier.app.services import open_services
from verifier.app.settings import Settings, normalize_gateway
from verifier.cli.options import db_option, emit, load_policy_option, settings_from
from verifier.core.errors import ConfigError
from verifier.core.trust import PRODUCTION, SIMULATOR
from verifier.engine.pipeline import Exchange, InputError, verify_exchange


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@db_option
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None, help="Policy TOML file.")
@click.option("--refs", "refs_path", type=click.Path(dir_okay=False), default=None, envvar="VERIFIER_REFS",
              help="Reference values (refs TOML): the software identities a pass requires per model.")
@click.option("--allow-gateway", "allow_gateways", multiple=True, help="Gateway base URL callers may name (repeatable; default https://api.redpill.ai).")
@click.option("--trust", "trust_profile", type=click.Choice([PRODUCTION, SIMULATOR]), default=PRODUCTION, show_default=True)
@click.option("--pcs-url", default=None, help="Intel PCS or PCCS base URL for collateral.")
@click.option("--pccs", is_flag=True, default=None, help="--pcs-url is a PCCS (root CA CRL served as hex).")
@click.option("--nras-url", default=None, help="NVIDIA NRAS base URL.")
@click.option("--offline", is_flag=True, default=None, help="Never fetch collateral or NRAS answers.")
@click.option("--workers", "dcap_workers", type=int, default=None, help="dcap-qvl worker processes (default: cores).")
@click.option("--signature-deadline", type=float, default=None,
              help="Seconds to keep retrying the signature fetch (404/5xx/429/timeouts; default 20).")
def serve(host: str, port: int, allow_gateways: tuple[str, ...], **kw: Any) -> None:
    """Run the HTTP API."""
    from aiohttp import web

    from verifier.web import create_app

    if allow_gateways:
        kw["allow_gateways"] = allow_gateways
        kw["default_gateway"] = allow_gateways[0]
    settings = settings_from(**kw)
    try:
        policy = load_policy_option(settings.policy_path)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    click.echo(f"verifier {__version__}: policy {policy.id} sha256:{policy.sha256[:16]}…, trust {settings.trust_profile}, "
               f"db {settings.db_path}, gateways {', '.join(settings.allow_gateways)}")
    web.run_app(create_app(settings), host=host, port=port, shutdown_timeout=10, print=None)


@click.command()
@click.option("--request", "request_file", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Exact request bytes sent.")
@click.option("--response", "response_file", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Exact response bytes received.")
@click.option("--model", required=True)
@click.option("--gateway", default="https://api.redpill.ai", show_default=True)
@click.option("--chat-id", default=None, help="Default: the response's id.")
@click.option("--signing-algo", type=click.Choice(["ecdsa", "ed25519"]), default="ecdsa", show_default=True)
@click.option("--db", "db_path", default=None, envvar="VERIFIER_DB", help="Record the verdict in this SQLite ledger.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None)
@click.option("--refs", "refs_path", type=click.Path(dir_okay=False), default=None, envvar="VERIFIER_REFS",
              help="Reference values (refs TOML): the software identities a pass requires per model.")
@click.option("--trust", "trust_profile", type=click.Choice([PRODUCTION, SIMULATOR]), default=PRODUCTION, show_default=True)
@click.option("--pcs-url", default=None)
@click.option("--pccs", is_flag=True, default=None)
@click.option("--nras-url", default=None)
@click.option("--offline", is_flag=True, default=None)
@click.option("--signature-deadline", type=float, default=None,
              help="Seconds to keep retrying the signature fetch (404/5xx/429/timeouts; default 20).")
@click.option("--api-key-env", default="VERIFIER_UPSTREAM_KEY", show_default=True, help="Environment variable holding the gateway API key.")
@click.option("--json", "as_json", is_flag=True)
def verify(request_file: Path, response_file: Path, model: str, gateway: str, chat_id: str | None, signing_algo: str,
           api_key_env: str, as_json: bool, **kw: Any) -> None:
    """Verify one completion against its gateway: signature, fresh-nonce report, TDX, GPU."""
    try:
        exchange = Exchange(request=request_file.read_bytes(), response=response_file.read_bytes(), model=model,
                            gateway=normalize_gateway(gateway), chat_id=chat_id, signing_algo=signing_algo)
    except OSError as exc:
        raise click.ClickException(f"cannot read {exc.filename}: {exc.strerror}") from None
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None
    record = kw.get("db_path") is not None
    kw["db_path"] = kw.get("db_path") or ":memory:"
    settings = settings_from(**kw, dcap_workers=1, allow_gateways=(exchange.gateway,), default_gateway=exchange.gateway)
    api_key = os.environ.get(api_key_env) or None
    try:
        verdict = asyncio.run(_verify(settings, exchange, api_key, record))
    except (InputError, ConfigError) as exc:
        raise click.ClickException(exc.message) from None
    emit(verdict, as_json)


async def _verify(settings: Settings, exchange: Exchange, api_key: str | None, record: bool) -> dict[str, Any]:
    async with open_services(settings) as svc:
        evaluation = await verify_exchange(exchange, gateway=svc.gateway(exchange.gateway, api_key=api_key), ctx=svc.context(), prior=svc.recorder)
        verdict = evaluation.verdict
        if record:
            verdict = verdict.with_id(await svc.recorder.save(verdict.to_json(), evaluation.bundle,
                                                              secrets=(api_key,) if api_key and len(api_key) >= 8 else ()))
        return verdict.to_json()
