"""Trust on first use of a gateway's published app ids: what `verifier refs pull` would change, and the result.

Like an SSH known_hosts file: the first time a model's app id is seen it is recorded with where and when
(``source = "gateway <model-list url> at <time>"``); later pulls keep that provenance while the gateway
publishes the same id, and report a *changed* id (the gateway now names another app) or a *removed*
one. Accepting a pull makes this gateway's entries mirror its list; entries from other sources (a
reviewed verdict, a manual pin) and other gateways are never touched. Removing a pin never widens
what passes; adding one does, which is why the operator reviews the diff first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from verifier.appraise.refs import WILDCARD, AppRef, ModelEntry, Provenance, Refs, with_model

TOFU_NOTE = "trust on first use: published by the gateway, not proven by an attestation"


@dataclass(frozen=True, slots=True)
class Published:
    """A model list entry with an app id: ``model`` as listed, from the list at ``url``."""

    model: str
    app_id: bytes
    url: str


@dataclass(frozen=True, slots=True)
class PullChange:
    model: str  # the refs key: the group the listed name belongs to, or the listed name
    kind: str  # "new" | "changed" | "removed" | "unchanged"
    listed: tuple[bytes, ...] = ()  # the app ids the gateway lists for it now
    added: tuple[bytes, ...] = ()
    removed: tuple[AppRef, ...] = ()  # this gateway's entries the list no longer names (with their provenance)
    kept: tuple[AppRef, ...] = ()


@dataclass(frozen=True, slots=True)
class PullPlan:
    changes: tuple[PullChange, ...]
    refs: Refs  # the refs after accepting every change
    ignored: tuple[str, ...] = ()  # listed names that are never pinned from a gateway (e.g. "*")

    @property
    def pending(self) -> tuple[PullChange, ...]:
        return tuple(c for c in self.changes if c.kind != "unchanged")


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _from_gateway(app: AppRef, base: str) -> bool:
    url = app.provenance.gateway_url
    return (
        app.compose_hash is None
        and app.app_id is not None
        and url is not None
        and (url == base + "/v1/models" or url.startswith(base + "/v1/models/"))
    )


def plan_pull(refs: Refs, published: Iterable[Published], *, gateway: str, now: int) -> PullPlan:
    """Compare the app ids ``gateway`` publishes with its entries in ``refs``; the first list naming an id is its
    source."""
    base = gateway.rstrip("/")
    listed: dict[str, tuple[str, dict[bytes, str]]] = {}  # lowercased key -> (key, {app id: list url})
    ignored: list[str] = []
    for p in published:
        if p.model.strip() == WILDCARD:
            ignored.append(p.model)
            continue
        key = refs.group_key(p.model) or p.model
        listed.setdefault(key.lower(), (key, {}))[1].setdefault(p.app_id, p.url)
    current: dict[str, tuple[str, list[AppRef]]] = {}
    for entry in refs.models:
        mine = [a for a in entry.apps if _from_gateway(a, base)]
        if mine and entry.name != WILDCARD:
            current[entry.name.lower()] = (entry.name, mine)

    changes: list[PullChange] = []
    out = refs
    for lower in [*listed, *(k for k in current if k not in listed)]:
        if lower in listed:
            key, ids = listed[lower]
        else:
            key, ids = current[lower][0], {}
        have = current.get(lower, (key, []))[1]
        entry = out.entry(key) or ModelEntry(name=key)
        # an app id another source already pins on its own (a manual pin, another gateway) needs no gateway entry
        elsewhere = {a.app_id for a in entry.apps if a.compose_hash is None and not _from_gateway(a, base)}
        added = tuple(i for i in ids if i not in {a.app_id for a in have} | elsewhere)
        removed = tuple(a for a in have if a.app_id not in ids)
        kept = tuple(a for a in have if a.app_id in ids)
        kind = "unchanged" if not (added or removed) else "new" if not have else "removed" if not ids else "changed"
        changes.append(PullChange(model=key, kind=kind, listed=tuple(ids), added=added, removed=removed, kept=kept))
        if added or removed:
            apps = [a for a in entry.apps if a not in removed]
            apps += [
                AppRef(
                    app_id=i,
                    compose_hash=None,
                    provenance=Provenance(source=f"gateway {ids[i]} at {iso(now)}", added_at=now, note=TOFU_NOTE),
                )
                for i in added
            ]
            out = with_model(out, replace(entry, apps=tuple(apps)))
    return PullPlan(changes=tuple(changes), refs=out, ignored=tuple(ignored))
