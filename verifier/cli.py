"""Command line: `verifier verify-bundle`, `verifier policy check` (and the service commands).

Exit codes: 0 pass, 2 fail, 3 indeterminate, 1 usage or unreadable input.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from verifier import __version__
from verifier.bundle import Bundle
from verifier.errors import ConfigError, VerifierError
from verifier.evaluation import Context, evaluate
from verifier.policy import Policy, default_policy, load_policy
from verifier.table import render
from verifier.tdx.pool import DcapPool
from verifier.trust import PRODUCTION, SIMULATOR, TrustAnchors, production_anchors

EXIT = {"pass": 0, "fail": 2, "indeterminate": 3}


def _policy(path: str | None) -> Policy:
    return load_policy(path) if path else default_policy()


def anchors_for(profile: str) -> TrustAnchors:
    if profile == SIMULATOR:
        from verifier.simulator.anchors import simulator_anchors  # the edge may wire the simulator; the core never does

        return simulator_anchors()
    return production_anchors()


def emit(verdict: dict[str, Any], as_json: bool) -> None:
    click.echo(json.dumps(verdict, indent=2, sort_keys=True) if as_json else render(verdict))
    sys.exit(EXIT[verdict["status"]])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="verifier")
def main() -> None:
    """Verify that confidential-AI chat completions came from genuine TEE hardware."""


@main.command("verify-bundle")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--at", "at", type=int, default=None, help="Verification time, unix seconds (default: now).")
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
