"""Command line: `verifier verify-bundle`, `verifier policy check` (and the service commands).

Exit codes: 0 pass, 2 fail, 3 indeterminate, 1 usage or unreadable input.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from verifier import __version__
from verifier.bundle import MAX_UNIX_SECONDS, Bundle
from verifier.errors import ConfigError, VerifierError
from verifier.evaluation import Context, evaluate
from verifier.ledger import Ledger
from verifier.pipeline import Exchange, InputError, verify_exchange
from verifier.policy import Policy, default_policy, load_policy
from verifier.profiles import anchors_for
from verifier.services import open_services
from verifier.settings import Settings, normalize_gateway
from verifier.table import render
from verifier.tdx.pool import DcapPool
from verifier.trust import PRODUCTION, SIMULATOR, TrustAnchors

EXIT = {"pass": 0, "fail": 2, "indeterminate": 3}
AT_RANGE = click.IntRange(0, MAX_UNIX_SECONDS)


def _policy(path: str | None) -> Policy:
    return load_policy(path) if path else default_policy()


def emit(verdict: dict[str, Any], as_json: bool) -> None:
    click.echo(json.dumps(verdict, indent=2, sort_keys=True) if as_json else render(verdict))
    sys.exit(EXIT[verdict["status"]])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="verifier")
def main() -> None:
    """Verify that confidential-AI chat completions came from genuine TEE hardware."""


@main.command("verify-bundle")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--at", "at", type=AT_RANGE, default=None, help="Verification time, unix seconds (default: now).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None, help="Policy TOML file (default: the bundled default.toml).")
@click.option("--trust", type=click.Choice([PRODUCTION, SIMULATOR]), default=PRODUCTION, show_default=True, help="Trust anchors to verify against.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify_bundle(path: Path, at: int | None, policy_path: str | None, trust: str, as_json: bool) -> None:
    """Verify an evidence bundle (a directory or .zip) offline, using only what it holds."""
    try:
        policy = _policy(policy_path)
        bundle = Bundle.load(path)
    except VerifierError as exc:
        raise click.ClickException(exc.message) from None
    now = at if at is not None else int(time.time())
    verdict = asyncio.run(_verify_bundle(bundle, policy, now, anchors_for(trust)))
    emit(verdict, as_json)


async def _verify_bundle(bundle: Bundle, policy: Policy, now: int, anchors: TrustAnchors) -> dict[str, Any]:
    async with DcapPool(size=1) as pool:
        ctx = Context(policy=policy, now=now, anchors=anchors, quotes=pool, dcap_version=pool.version())
        return (await evaluate(bundle, ctx)).verdict


@main.group("policy")
def policy_group() -> None:
    """Policy files."""


@policy_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def policy_check(file: str) -> None:
    """Validate a policy file; print its id and sha256."""
    try:
        policy = load_policy(file)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"ok: policy {policy.id!r} sha256:{policy.sha256} ({file})")


_db_option = click.option("--db", "db_path", default="verifier.db", envvar="VERIFIER_DB", show_default=True, help="SQLite ledger file.")


def _settings(**kw: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in kw.items() if v is not None})
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@_db_option
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None, help="Policy TOML file.")
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
    settings = _settings(**kw)
    try:
        policy = _policy(settings.policy_path)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    click.echo(f"verifier {__version__}: policy {policy.id} sha256:{policy.sha256[:16]}…, trust {settings.trust_profile}, "
               f"db {settings.db_path}, gateways {', '.join(settings.allow_gateways)}")
    web.run_app(create_app(settings), host=host, port=port, shutdown_timeout=10, print=None)


@main.command()
@click.option("--request", "request_file", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Exact request bytes sent.")
@click.option("--response", "response_file", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Exact response bytes received.")
@click.option("--model", required=True)
@click.option("--gateway", default="https://api.redpill.ai", show_default=True)
@click.option("--chat-id", default=None, help="Default: the response's id.")
@click.option("--signing-algo", type=click.Choice(["ecdsa", "ed25519"]), default="ecdsa", show_default=True)
@click.option("--db", "db_path", default=None, envvar="VERIFIER_DB", help="Record the verdict in this SQLite ledger.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None)
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
    settings = _settings(**kw, dcap_workers=1, allow_gateways=(exchange.gateway,), default_gateway=exchange.gateway)
    api_key = os.environ.get(api_key_env) or None
    try:
        verdict = asyncio.run(_verify(settings, exchange, api_key, record))
    except (InputError, ConfigError) as exc:
        raise click.ClickException(exc.message) from None
    emit(verdict, as_json)


async def _verify(settings: Settings, exchange: Exchange, api_key: str | None, record: bool) -> dict[str, Any]:
    async with open_services(settings) as svc:
        evaluation = await verify_exchange(exchange, gateway=svc.gateway(exchange.gateway, api_key=api_key), ctx=svc.context(), prior=svc.recorder)
        if record:
            evaluation.verdict["id"] = await svc.recorder.save(evaluation.verdict, evaluation.bundle, secrets=(api_key,) if api_key and len(api_key) >= 8 else ())
        return evaluation.verdict


def _ledger(db_path: str) -> Ledger:
    if not Path(db_path).exists():
        raise click.ClickException(f"no ledger at {db_path} (use --db or VERIFIER_DB)")
    return Ledger.open(db_path)


@main.command()
@click.argument("verdict_id")
@_db_option
@click.option("--json", "as_json", is_flag=True)
def show(verdict_id: str, db_path: str, as_json: bool) -> None:
    """Show a recorded verdict."""
    verdict = _ledger(db_path).get(verdict_id)
    if verdict is None:
        raise click.ClickException(f"no verdict {verdict_id!r} in {db_path}")
    click.echo(json.dumps(verdict, indent=2, sort_keys=True) if as_json else render(verdict))


@main.command("list")
@_db_option
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
        items, cursor = _ledger(db_path).list(**filters)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"items": items, "next_cursor": cursor}, indent=2, sort_keys=True))
        return
    for item in items:
        click.echo(f"{item['id']}  {item['status']:<13}  {item.get('model') or '-':<32}  {item.get('signer') or '-'}")
    if cursor:
        click.echo(f"(more: --cursor {cursor})")


@main.command()
@click.argument("verdict_id")
@_db_option
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Zip file to write.")
def export(verdict_id: str, db_path: str, output: Path) -> None:
    """Export a verdict's evidence bundle (zip) for `verifier verify-bundle`."""
    try:
        files = _ledger(db_path).evidence(verdict_id)
    except KeyError:
        raise click.ClickException(f"no verdict {verdict_id!r} in {db_path}") from None
    output.write_bytes(Bundle.from_files(files).to_zip())
    verdict = _ledger(db_path).get(verdict_id) or {}
    click.echo(f"wrote {output}; reproduce with: verifier verify-bundle {output} --at {verdict.get('times', {}).get('verified_at')}"
               + (" --trust simulator" if verdict.get("simulator") else ""))


@main.command()
@click.argument("verdict_id")
@_db_option
@click.option("--at", type=AT_RANGE, default=None, help="Verification time, unix seconds (default: now).")
@click.option("--json", "as_json", is_flag=True)
def reverify(verdict_id: str, db_path: str, at: int | None, as_json: bool) -> None:
    """Re-evaluate a recorded verdict's evidence offline; the new verdict supersedes the old."""
    _ledger(db_path)
    verdict = asyncio.run(_reverify(verdict_id, db_path, at))
    emit(verdict, as_json)


async def _reverify(verdict_id: str, db_path: str, at: int | None) -> dict[str, Any]:
    old = Ledger.open(db_path).get(verdict_id)
    if old is None:
        raise click.ClickException(f"no verdict {verdict_id!r} in {db_path}")
    settings = _settings(db_path=db_path, offline=True, dcap_workers=1, trust_profile=old.get("trust_profile", PRODUCTION))
    async with open_services(settings) as svc:
        bundle = await svc.recorder.bundle(verdict_id)
        assert bundle is not None
        evaluation = await evaluate(bundle, svc.offline_context(now=at if at is not None else int(time.time())))
        evaluation.verdict["supersedes"] = verdict_id
        evaluation.verdict["id"] = await svc.recorder.save(evaluation.verdict, evaluation.bundle)
        return evaluation.verdict


@main.command()
@click.option("--format", "report_format", type=click.Choice(["phala_flat", "near_two_layer", "aci_legacy"]), default="phala_flat",
              show_default=True, help="Report format the simulated gateway serves.")
@click.option("--signing-algo", type=click.Choice(["ecdsa", "ed25519"]), default="ecdsa", show_default=True)
@click.option("--stream/--no-stream", default=True, show_default=True, help="Stream the completion (SSE).")
@click.option("--json", "as_json", is_flag=True)
def demo(report_format: str, signing_algo: str, stream: bool, as_json: bool) -> None:
    """Start the simulator and the service on loopback and verify one completion end to end."""
    from verifier.demo import run_demo  # the demo wires the simulator: an edge, never the core

    (result,) = asyncio.run(run_demo(report_format=report_format, signing_algo=signing_algo, stream=stream))
    if result.http_status != 201:
        raise click.ClickException(f"the verifier answered {result.http_status}: {result.verdict}")
    if not as_json:
        click.echo(f"simulated gateway {result.gateway_url}; verifier service {result.service_url}")
        click.echo(f"verdict recorded in {result.db_path} — try: verifier show {result.verdict.get('id')} --db {result.db_path}")
    emit(result.verdict, as_json)


def run() -> None:
    """Console entry point: usage errors exit 1 (click's default 2 would read as a `fail` verdict)."""
    try:
        main.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
