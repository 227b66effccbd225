"""`verifier proxy`: the OpenAI-compatible verifying proxy in front of one gateway (``verifier.web.proxy``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from verifier import __version__
from verifier.cli.keys import bootstrap_admin_key
from verifier.cli.options import ca_file_option, db_option, load_policy_option, settings_from
from verifier.cli.service import is_loopback, listen
from verifier.core.errors import ConfigError
from verifier.core.trust import PRODUCTION, SIMULATOR

log = logging.getLogger("verifier.cli")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8081, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--gateway",
    default="https://api.redpill.ai",
    show_default=True,
    help="The gateway base URL every request is relayed to (and verified against).",
)
@click.option(
    "--mode",
    type=click.Choice(["sync", "async"]),
    default="sync",
    show_default=True,
    help="sync: a JSON completion waits for its verdict (X-Verification-Status); async: relay at once, "
    "verify after. Streams are always relayed at once.",
)
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
    "--trust", "trust_profile", type=click.Choice([PRODUCTION, SIMULATOR]), default=PRODUCTION, show_default=True
)
@click.option("--pcs-url", default=None, help="Intel PCS or PCCS base URL for collateral.")
@click.option("--pccs", is_flag=True, default=None, help="--pcs-url is a PCCS (root CA CRL served as hex).")
@click.option("--nras-url", default=None, help="NVIDIA NRAS base URL.")
@ca_file_option
@click.option(
    "--workers",
    "dcap_workers",
    type=click.IntRange(1, 256),
    default=None,
    help="dcap-qvl worker processes (default: cores).",
)
@click.option(
    "--verify-workers",
    type=click.IntRange(0, 64),
    default=None,
    help="Verifier worker processes (default: half the cores, at least 1); 0 = verify in the relaying process.",
)
@click.option(
    "--verify-nice",
    type=click.IntRange(0, 19),
    default=10,
    show_default=True,
    help="CPU niceness of the verifier workers (and their dcap-qvl processes): relaying always comes first.",
)
@click.option(
    "--verify-backlog",
    type=click.IntRange(1, 1_000_000),
    default=1000,
    show_default=True,
    help="Completions accepted and not yet verified; beyond it a completion request is a 503 "
    "verification_backlog_full and nothing is sent to the gateway.",
)
@click.option(
    "--upstream-timeout",
    type=click.FloatRange(0, 3600),
    default=None,
    help="Seconds without a byte from the gateway before giving up (default 30).",
)
@click.option(
    "--signature-deadline",
    type=click.FloatRange(0, 600),
    default=None,
    help="Seconds to keep retrying the signature fetch (default 20).",
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
    help="Requests per minute per verifier key (default 600; 0 = no limit).",
)
@click.option(
    "--upstream-budget",
    "upstream_per_minute",
    type=click.FloatRange(0),
    default=None,
    help="Signature/report calls per minute (default 60; each completion needs 2; 0 = no limit).",
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
    "--insecure-no-auth",
    is_flag=True,
    help="No verifier keys at all (X-Verifier-Key not needed); only with a loopback --host.",
)
def proxy(
    host: str,
    port: int,
    gateway: str,
    mode: str,
    admin_key_file: Path | None,
    insecure_no_auth: bool,
    verify_workers: int | None,
    verify_nice: int,
    verify_backlog: int,
    **kw: Any,
) -> None:
    """Relay OpenAI-style chat completions to one gateway and verify every one.

    Clients change only their base URL (http://HOST:PORT/v1) and add the header `X-Verifier-Key: <submit key>`;
    their `Authorization` (the gateway API key) is forwarded, never stored. Each answer carries
    `X-Verification-Id`; read the verdict at GET /v1/verifications/{id} (same header).
    """
    from aiohttp import web

    from verifier.app.logs import configure_json_logging
    from verifier.web.proxy import create_proxy_app

    kw["allow_gateways"] = (gateway,)
    kw["default_gateway"] = gateway
    if insecure_no_auth:
        if not is_loopback(host):
            raise click.ClickException(f"--insecure-no-auth needs a loopback --host (127.0.0.1, ::1), not {host!r}")
        kw["auth"] = False
    settings = settings_from(**kw)
    try:
        policy = load_policy_option(settings.policy_path)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None
    if verify_workers is None:
        verify_workers = max(1, (os.cpu_count() or 2) // 2)
    if verify_workers > 0 and settings.db_path == ":memory:":
        raise click.ClickException("--verify-workers needs a ledger file (--db), not :memory: (or --verify-workers 0)")
    bootstrap_admin_key(settings.db_path, admin_key_file, create=settings.auth)
    sock = listen(host, port)
    configure_json_logging()
    bound = sock.getsockname()
    click.echo(
        f"verifier {__version__} proxy ({mode}): gateway {settings.default_gateway}, policy {policy.id} "
        f"sha256:{policy.sha256[:16]}…, trust {settings.trust_profile}, db {settings.db_path}, "
        + (
            f"{verify_workers} verifier worker(s) at nice {verify_nice}"
            if verify_workers
            else "verifying in this process"
        )
        + f", backlog {verify_backlog}"
    )
    click.echo(
        f"listening on http://{f'[{host}]' if ':' in host else host}:{bound[1]} "
        f"(OpenAI base_url http://{f'[{host}]' if ':' in host else host}:{bound[1]}/v1)"
    )
    app = create_proxy_app(
        settings, mode=mode, verify_workers=verify_workers, verify_nice=verify_nice, backlog=verify_backlog
    )
    web.run_app(app, sock=sock, shutdown_timeout=40, print=None, access_log=None)
