"""`verifier refs`: reference values — pull a gateway's app ids, pin a reviewed verdict, detect drift, show.

Every command reads ``--refs FILE`` (default ``refs.toml``, env ``VERIFIER_REFS``); ``pull`` and ``add``
create it when it does not exist and rewrite it whole (atomically), so comments in it are not kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from verifier.adapters.ledger import Ledger
from verifier.adapters.model_list import ModelList, fetch_model_lists
from verifier.appraise.drift import DriftReport, attested_identities, blocking_checks, drift_report, unverified_identity
from verifier.appraise.refs import (
    ModelEntry,
    Provenance,
    Refs,
    dump_refs,
    empty_refs,
    load_refs,
    parse_refs,
    refs_document,
    with_model,
)
from verifier.appraise.refs_pull import Published, PullChange, PullPlan, iso, plan_pull
from verifier.cli.options import AT_RANGE, db_option, open_ledger
from verifier.core.errors import ConfigError, Indeterminate

TOFU = (
    "Trust on first use (like an SSH known_hosts file): these app ids are what the gateway says its models run, "
    "not something an attestation has shown. Review them before accepting; every verification still checks the "
    "attested app id against them, and `verifier refs check` reports verdicts that differ."
)

refs_option = click.option(
    "--refs",
    "refs_path",
    default="refs.toml",
    envvar="VERIFIER_REFS",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Reference values file (TOML).",
)


@click.group("refs")
def refs_group() -> None:
    """Reference values: the software identities accepted per model, with their provenance."""


def _load(path: Path, *, create: bool = False) -> Refs:
    if create and not path.exists():
        return empty_refs(path.stem or "refs", source=str(path))
    try:
        return load_refs(path)
    except ConfigError as exc:
        raise click.ClickException(exc.message) from None


def _write(path: Path, refs: Refs, *, err: bool = False) -> Refs:
    """Write ``refs`` atomically; report on stdout (stderr when ``err``, so --json output stays JSON)."""
    text = dump_refs(refs)
    if path.exists() and any(line.lstrip().startswith("#") for line in path.read_text("utf-8", "replace").splitlines()):
        click.echo(f"note: the comments in {path} are not kept (notes belong in `description` and `note`)", err=err)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None
    written = parse_refs(text.encode(), source=str(path))
    click.echo(f"wrote {path} (refs {written.id!r}, sha256:{written.sha256})", err=err)
    return written


# ---------------------------------------------------------------------------------------------- pull


def _interactive() -> bool:
    return sys.stdin.isatty()


def _gateway_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise click.ClickException(f"--gateway {url!r}: expected an http(s) base URL such as https://api.redpill.ai")
    return url.rstrip("/")


def _describe(change: PullChange) -> list[str]:
    if change.kind == "unchanged":
        first = {a.app_id: iso(a.provenance.added_at) for a in change.kept}
        return [
            f"  = {change.model}: app id {i.hex()} "
            + (f"(unchanged, first trusted {first[i]})" if i in first else "(already pinned by another entry)")
            for i in change.listed
        ]
    mark = {"new": "+", "changed": "~", "removed": "-"}[change.kind]
    lines = [f"  {mark} {change.model}: {change.kind.upper()}"]
    lines += [f"      + app id {i.hex()}" for i in change.added]
    lines += [
        f"      - app id {a.app_id.hex() if a.app_id else None} (first trusted {iso(a.provenance.added_at)}, "
        f"{a.provenance.source})"
        for a in change.removed
    ]
    if change.kind == "changed" and change.removed:
        lines.append(
            "      the gateway now names another app for this model than the one first trusted: review before accepting"
        )
    return lines


@refs_group.command("pull")
@refs_option
@click.option("--gateway", required=True, help="Gateway base URL; GET {URL}/v1/models and {URL}/v1/models/phala.")
@click.option("--yes", is_flag=True, help="Write the changes without asking.")
@click.option(
    "--timeout", type=click.FloatRange(0.1, 300), default=15.0, show_default=True, help="Seconds per request."
)
@click.option("--json", "as_json", is_flag=True)
def pull(refs_path: Path, gateway: str, yes: bool, timeout: float, as_json: bool) -> None:
    """Record the app ids a gateway publishes for its models (trust on first use); shows the diff first."""
    base = _gateway_url(gateway)
    refs = _load(refs_path, create=True)
    key = os.environ.get("VERIFIER_UPSTREAM_KEY") or None
    try:
        lists = asyncio.run(fetch_model_lists(base, api_key=key, timeout=timeout))
    except Indeterminate as exc:
        message = exc.message.replace(key, "<VERIFIER_UPSTREAM_KEY>") if key else exc.message
        raise click.ClickException(message) from None
    published = [
        Published(model=m.id, app_id=m.app_id, url=lst.url)
        for lst in reversed(lists)
        for m in lst.models
        if m.app_id is not None
    ]  # /v1/models/phala first: the list of Phala's own models
    plan = plan_pull(refs, published, gateway=base, now=int(time.time()))
    without = sorted({m.id for lst in lists for m in lst.models} - {p.model for p in published})
    if as_json:
        written = _write(refs_path, plan.refs, err=True) if plan.pending and yes else None
        click.echo(json.dumps(_pull_json(base, lists, plan, without, written, refs_path), indent=2, sort_keys=True))
        return
    _print_pull(base, lists, plan, without, refs_path)
    if not plan.pending:
        click.echo(f"{refs_path} already holds every app id {base} publishes; nothing to write")
    elif yes or (
        _interactive() and click.confirm(f"Write {len(plan.pending)} change(s) to {refs_path}?", default=False)
    ):
        _write(refs_path, plan.refs)
    else:
        click.echo(
            f"not written: {len(plan.pending)} change(s) pending; rerun with --yes to write them to {refs_path}"
            + ("" if _interactive() else " (stdin is not a terminal, so nothing was asked)")
        )


def _print_pull(base: str, lists: tuple[ModelList, ...], plan: PullPlan, without: list[str], refs_path: Path) -> None:
    click.echo(
        f"gateway {base}: "
        + ", ".join(f"{lst.url} ({len(lst.models)} model(s))" for lst in lists)
        + ("" if len(lists) > 1 else "; /v1/models/phala not published (404)")
    )
    click.echo(TOFU)
    click.echo(f"changes to {refs_path}:" if plan.pending else f"no changes to {refs_path}:")
    for change in plan.changes:
        for line in _describe(change):
            click.echo(line)
    for name in without:
        click.echo(f"  ! {name}: no app id published (metadata.appid); not pinned by pull")
    for name in plan.ignored:
        click.echo(f"  ! {name!r}: a listed model named like the wildcard is never pinned")


def _pull_json(
    base: str, lists: tuple[ModelList, ...], plan: PullPlan, without: list[str], written: Refs | None, refs_path: Path
) -> dict[str, Any]:
    return {
        "gateway": base,
        "lists": [{"url": lst.url, "models": len(lst.models)} for lst in lists],
        "trust_on_first_use": TOFU,
        "changes": [
            {
                "model": c.model,
                "kind": c.kind,
                "added": [i.hex() for i in c.added],
                "removed": [a.app_id.hex() for a in c.removed if a.app_id],
                "kept": [a.app_id.hex() for a in c.kept if a.app_id],
            }
            for c in plan.changes
        ],
        "without_app_id": without,
        "ignored": list(plan.ignored),
        "refs": str(refs_path),
        "written": written is not None,
        "sha256": written.sha256 if written else None,
    }


# ---------------------------------------------------------------------------------------------- add


@refs_group.command("add")
@refs_option
@click.option("--from-verdict", "verdict_id", required=True, help="Id of a recorded verdict you reviewed.")
@click.option("--model", default=None, help="Pin under this model (default: the verdict's model; '*' = every model).")
@db_option
@click.option("--force", is_flag=True, help="Pin a verdict that is not `pass` for other reasons than its pins.")
@click.option("--note", default="", help="Note recorded with each entry.")
def add(refs_path: Path, verdict_id: str, model: str | None, db_path: str, force: bool, note: str) -> None:
    """Pin the identity a reviewed verdict attests: app id, compose hash, OS image, boot chain (MRTD, RTMR0-2,
    MRSEAM)."""
    refs = _load(refs_path, create=True)
    verdict = open_ledger(db_path).get(verdict_id)
    if verdict is None:
        raise click.ClickException(f"no verdict {verdict_id!r} in {db_path}")
    why = unverified_identity(verdict)
    if why is not None:
        raise click.ClickException(f"refusing to pin verdict {verdict_id}: {why}, so its measurements prove nothing")
    try:
        identities = attested_identities(verdict)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not identities:
        raise click.ClickException(f"verdict {verdict_id} records no attested identity")
    status = str(verdict.get("status"))
    blockers = blocking_checks(verdict) if status != "pass" else []
    if blockers and not force:
        raise click.ClickException(
            f"refusing to pin verdict {verdict_id}: it is {status} because of {'; '.join(blockers)} "
            "(pass --force if you reviewed it and still accept its software)"
        )
    subject = verdict.get("subject") or {}
    target = model or subject.get("model")
    if not target:
        raise click.ClickException(f"verdict {verdict_id} names no model; pass --model")
    if status != "pass":
        click.echo(
            f"note: verdict {verdict_id} is {status}: "
            + ("; ".join(blockers) + " (--force)" if blockers else "only because its identity is not pinned")
        )
    provenance = Provenance(
        source=f"verdict {verdict_id}",
        added_at=int(time.time()),
        note=note or f"{status} verdict of {subject.get('model')} signed by {subject.get('signer')}",
    )
    key = refs.group_key(target) or target
    entry = refs.entry(key) or ModelEntry(name=key)
    apps, images, chains = list(entry.apps), list(entry.os_images), list(entry.boot_chains)
    for ident in identities:
        app, image, chain = ident.app_ref(provenance), ident.os_image_ref(provenance), ident.boot_chain_ref(provenance)
        _add(
            apps,
            app,
            f"app {_kv(app_id=ident.app_id, compose_hash=ident.compose_hash)}",
            missing="app identity not recorded (tdx.event_log did not pass)",
        )
        _add(
            images,
            image,
            f"os_image {ident.os_image_hash.hex() if ident.os_image_hash else ''}",
            missing="OS image hash not recorded in this verdict",
        )
        _add(
            chains,
            chain,
            "boot_chain "
            + _kv(mrtd=ident.mrtd, rtmr0=ident.rtmr0, rtmr1=ident.rtmr1, rtmr2=ident.rtmr2, mrseam=ident.mrseam),
            missing="",
        )
    updated = with_model(refs, replace(entry, apps=tuple(apps), os_images=tuple(images), boot_chains=tuple(chains)))
    if updated == refs:
        click.echo(f"{refs_path} already pins everything verdict {verdict_id} attests for {key!r}; nothing to write")
        return
    click.echo(f"pinned for model {key!r} (source: verdict {verdict_id})")
    _write(refs_path, updated)


def _kv(**values: bytes | None) -> str:
    return " ".join(f"{k}={v.hex() if v else 'any'}" for k, v in values.items())


def _add(items: list[Any], item: Any, label: str, *, missing: str) -> None:
    if item is None:
        click.echo(f"  ! {missing}")
    elif any(x.value == item.value for x in items):
        click.echo(f"  = {label} (already pinned)")
    else:
        items.append(item)
        click.echo(f"  + {label}")


# ---------------------------------------------------------------------------------------------- diff / check


def _verdicts(ledger: Ledger, model: str | None, since: int | None) -> Iterator[dict[str, Any]]:
    cursor = None
    while True:
        rows, cursor = ledger.list(model=model, since=since, limit=500, cursor=cursor)
        for row in rows:
            verdict = ledger.get(str(row["id"]))
            if verdict is not None:
                yield verdict
        if cursor is None:
            return


def _drift(refs_path: Path, db_path: str, model: str | None, since: int | None) -> tuple[Refs, DriftReport]:
    refs = _load(refs_path)
    ledger = open_ledger(db_path)
    try:
        return refs, drift_report(refs, _verdicts(ledger, model, since))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _summary(refs: Refs, refs_path: Path, report: DriftReport) -> str:
    drifting = sum(len(g.verdict_ids) for g in report.groups)
    head = (
        f"refs {refs.id!r} ({refs_path}, sha256:{refs.sha256}): {report.considered} verdict(s) with a verified identity"
    )
    skipped = f"; {len(report.skipped)} skipped (no verified identity)" if report.skipped else ""
    if not report.drift:
        return f"{head}{skipped}; no drift"
    return (
        f"{head}{skipped}; DRIFT: {drifting} run software not in the refs ({len(report.groups)} model/signer group(s))"
    )


drift_options = [
    refs_option,
    db_option,
    click.option("--model", default=None, help="Only verdicts of this model."),
    click.option("--since", type=AT_RANGE, default=None, help="Only verdicts created at or after (unix seconds)."),
    click.option("--json", "as_json", is_flag=True),
]


def _with(options: list[Any]) -> Any:
    def wrap(f: Any) -> Any:
        for option in reversed(options):
            f = option(f)
        return f

    return wrap


@refs_group.command("diff")
@_with(drift_options)
def diff(refs_path: Path, db_path: str, model: str | None, since: int | None, as_json: bool) -> None:
    """Recorded verdicts (by model and signer) whose app, OS image or boot chain is not in the refs."""
    refs, report = _drift(refs_path, db_path, model, since)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
        return
    click.echo(_summary(refs, refs_path, report))
    for g in report.groups:
        click.echo(f"{g.model}  signer {g.signer}: {len(g.verdict_ids)} of {g.considered} verdict(s)")
        for kind, values in g.unpinned.items():
            for value in values:
                click.echo(f"  {kind} {value}")
        shown = ", ".join(g.verdict_ids[:10]) + (
            f", … ({len(g.verdict_ids) - 10} more)" if len(g.verdict_ids) > 10 else ""
        )
        click.echo(f"  verdicts (newest first): {shown}")


@refs_group.command("check")
@_with(drift_options)
def check(refs_path: Path, db_path: str, model: str | None, since: int | None, as_json: bool) -> None:
    """Exit 2 when a recorded verdict runs software that is not in the refs (drift), 0 when none does."""
    refs, report = _drift(refs_path, db_path, model, since)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        click.echo(_summary(refs, refs_path, report))
        for g in report.groups:
            click.echo(
                f"  {g.model}  signer {g.signer}: {len(g.verdict_ids)} verdict(s); not pinned: {', '.join(g.unpinned)}"
                " (see `verifier refs diff`)"
            )
    sys.exit(2 if report.drift else 0)


# ---------------------------------------------------------------------------------------------- show


@refs_group.command("show")
@refs_option
@click.option("--json", "as_json", is_flag=True)
def show(refs_path: Path, as_json: bool) -> None:
    """The reference values with their provenance."""
    refs = _load(refs_path)
    if as_json:
        click.echo(json.dumps({"sha256": refs.sha256, "source": refs.source, **refs_document(refs)}, indent=2))
        return
    click.echo(
        f"refs {refs.id!r} ({refs_path}, sha256:{refs.sha256})" + (f": {refs.description}" if refs.description else "")
    )
    if not refs.models:
        click.echo("  (no models: nothing is pinned)")
    for e in refs.models:
        click.echo(
            f"models.{e.name!r}"
            + (" (every model)" if e.name == "*" else "")
            + (f"  aliases: {', '.join(e.aliases)}" if e.aliases else "")
        )
        for a in e.apps:
            click.echo(f"  app         {_kv(app_id=a.app_id, compose_hash=a.compose_hash)}")
            click.echo(_from(a.provenance))
        for o in e.os_images:
            click.echo(f"  os_image    {o.hash.hex()}")
            click.echo(_from(o.provenance))
        for b in e.boot_chains:
            click.echo(
                f"  boot_chain  {_kv(mrtd=b.mrtd, rtmr0=b.rtmr0, rtmr1=b.rtmr1, rtmr2=b.rtmr2, mrseam=b.mrseam)}"
            )
            click.echo(_from(b.provenance))


def _from(p: Provenance) -> str:
    return f"              from {p.source}, added {iso(p.added_at)}" + (f" — {p.note}" if p.note else "")
