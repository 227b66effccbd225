"""`verifier verify-bundle` and `verifier policy check`: offline commands over files."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import click

from verifier.adapters.dcap.pool import DcapPool
from verifier.app.profiles import anchors_for, refs_for
from verifier.appraise.policy import Policy, load_policy
from verifier.appraise.refs import Refs
from verifier.cli.options import AT_RANGE, emit, load_policy_option
from verifier.core.errors import ConfigError, VerifierError
from verifier.core.model import CheckResult
from verifier.core.trust import PRODUCTION, SIMULATOR, TrustAnchors
from verifier.engine.ceiling import prior_checks
from verifier.engine.evaluate import Context, evaluate
from verifier.evidence.bundle import Bundle


@click.command("verify-bundle")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--at", "at", type=AT_RANGE, default=None, help="Verification time, unix seconds (default: now).")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Policy TOML file (default: the bundled default.toml).",
)
@click.option(
    "--trust",
    type=click.Choice([PRODUCTION, SIMULATOR]),
    default=PRODUCTION,
    show_default=True,
    help="Trust anchors to verify against.",
)
@click.option(
    "--refs",
    "refs_path",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="VERIFIER_REFS",
    help="Reference values (refs TOML) to appraise software identity against "
    "(default: none; the shipped simulator refs with --trust simulator).",
)
@click.option(
    "--prior",
    "prior_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The verdict recorded for this bundle (JSON, e.g. `verifier show ID --json`): observer checks "
    "(tls.binds_peer, from the bundle's unauthenticated tls.json) are never upgraded over it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify_bundle(
    path: Path,
    at: int | None,
    policy_path: str | None,
    trust: str,
    refs_path: str | None,
    prior_file: Path | None,
    as_json: bool,
) -> None:
    """Verify an evidence bundle (a directory or .zip) offline, using only what it holds."""
    try:
        policy = load_policy_option(policy_path)
        refs = refs_for(trust, refs_path)
        bundle = Bundle.load(path)
    except VerifierError as exc:
        raise click.ClickException(exc.message) from None
    prior = _prior(prior_file, bundle) if prior_file is not None else None
    now = at if at is not None else int(time.time())
    verdict = asyncio.run(_verify_bundle(bundle, policy, now, anchors_for(trust), refs, prior))
    emit(verdict, as_json)


def _prior(path: Path, bundle: Bundle) -> tuple[str | None, dict[str, CheckResult]]:
    """(its id, its check rows) of the recorded verdict, which must be this bundle's (same nonce)."""
    try:
        doc = json.loads(path.read_bytes())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        rows = prior_checks(doc)
    except (OSError, ValueError, RecursionError) as exc:
        raise click.ClickException(f"--prior {path}: not a recorded verdict ({str(exc)[:200]})") from None
    recorded = (doc.get("nonce") or {}).get("value") if isinstance(doc.get("nonce"), dict) else None
    ours = bundle.meta.nonce.hex() if bundle.meta.nonce is not None else None
    if recorded != ours:
        raise click.ClickException(f"--prior {path}: the verdict is for nonce {recorded}, the bundle's is {ours}")
    verdict_id = doc.get("id")
    return (verdict_id if isinstance(verdict_id, str) else None), rows


async def _verify_bundle(
    bundle: Bundle,
    policy: Policy,
    now: int,
    anchors: TrustAnchors,
    refs: Refs | None,
    prior: tuple[str | None, dict[str, CheckResult]] | None = None,
) -> dict[str, Any]:
    async with DcapPool(size=1) as pool:
        ctx = Context(policy=policy, now=now, anchors=anchors, quotes=pool, dcap_version=pool.version(), refs=refs)
        supersedes, rows = prior if prior is not None else (None, None)
        return (await evaluate(bundle, ctx, supersedes=supersedes, prior=rows)).verdict.to_json()


@click.group("policy")
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
