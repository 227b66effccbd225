"""Reference values: the software identities an operator accepts, per model, each with its provenance.

A refs file is TOML, validated once at load like the policy (unknown keys, bad hex, wrong lengths →
``ConfigError`` naming the key and the file) and identified by its ``refs.id`` and the sha256 of its
exact bytes::

    [refs]
    id = "redpill-2026-12"
    [models."phala/qwen3.5-27b"]                 # a model name as requested; "*" = every model
    aliases = ["Qwen/Qwen3.5-27B"]               # other names the gateway may sign/attest for it
    [[models."phala/qwen3.5-27b".app]]           # app_id (20 bytes) and/or compose_hash (32 bytes)
    app_id = "..."
    source = "gateway <model-list url> at <ISO time>"   # or "verdict <id>", "manual", "manual: <text>"
    added_at = 1796000000                        # unix seconds, or a date-time with an offset
    note = "..."                                 # optional
    [[models."*".os_image]]                      # hash (32 bytes) + source, added_at, note
    [[models."*".boot_chain]]                    # mrtd, rtmr0-2 (48 bytes), mrseam optional + provenance

Names compare case-insensitively. A model and its aliases form one group; an alias belongs to one
model only and is never itself a model key, so every name resolves to at most one group.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import replace
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from verifier.appraise.refs_model import (
    _BOOT_FIELDS,
    _MAX_UNIX,
    _SOURCE,
    SOURCE_KINDS,
    WILDCARD,
    AppRef,
    BootChainRef,
    ModelEntry,
    ModelRefs,
    OsImageRef,
    Provenance,
    Refs,
)
from verifier.core.errors import ConfigError

__all__ = [
    "SOURCE_KINDS",
    "WILDCARD",
    "AppRef",
    "BootChainRef",
    "ModelEntry",
    "ModelRefs",
    "OsImageRef",
    "Provenance",
    "Refs",
    "dump_refs",
    "empty_refs",
    "load_refs",
    "parse_refs",
    "refs_document",
    "revalidated",
    "simulator_refs",
    "with_model",
]


def empty_refs(refs_id: str, *, source: str = "") -> Refs:
    return revalidated(Refs(id=refs_id, source=source))


def with_model(refs: Refs, entry: ModelEntry) -> Refs:
    """A validated copy in which ``entry`` replaces the table of the same name (or is appended); empty ones go."""
    models: list[ModelEntry] = []
    placed = False
    for current in refs.models:
        if current.name.lower() == entry.name.lower():
            current, placed = entry, True
        if not current.empty:
            models.append(current)
    if not placed and not entry.empty:
        models.append(entry)
    return revalidated(replace(refs, models=tuple(models)))


def revalidated(refs: Refs) -> Refs:
    """``refs`` as it will be written: dumped and parsed back, so it holds every rule of a loaded file."""
    data = dump_refs(refs).encode()
    return parse_refs(data, source=refs.source or "<refs>")


def load_refs(path: str | Path) -> Refs:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read refs file {p}: {exc.strerror}") from None
    return parse_refs(data, source=str(p))


def simulator_refs() -> Refs:
    """The reference values of the bundled simulator's CVM (``verifier/refs/simulator.toml``)."""
    data = resources.files("verifier.refs").joinpath("simulator.toml").read_bytes()
    return parse_refs(data, source="simulator.toml")


# ---------------------------------------------------------------------------------------------- parsing


def parse_refs(data: bytes, *, source: str) -> Refs:
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    p = _Parser(source)
    p.keys("", doc, required=("refs",), optional=("models",))
    head = p.table("refs", doc["refs"])
    p.keys("refs", head, required=("id",), optional=("description",))
    refs_id = p.text("refs.id", head["id"])
    description = p.text("refs.description", head.get("description", ""), empty=True)
    models = p.table("models", doc.get("models", {}))
    entries = tuple(p.model(name, body) for name, body in models.items())
    _check_names(entries, source)
    return Refs(
        id=refs_id, models=entries, description=description, sha256=hashlib.sha256(data).hexdigest(), source=source
    )


def _check_names(entries: tuple[ModelEntry, ...], source: str) -> None:
    owner: dict[str, str] = {}  # lowercased name -> the key that claims it
    for e in entries:
        lower = e.name.lower()
        if lower in owner:
            raise ConfigError(
                f"{source}: models.{_q(e.name)}: the same model (names compare case-insensitively) as "
                f"{_q(owner[lower])}"
            )
        owner[lower] = e.name
    for e in entries:
        if e.name == WILDCARD and e.aliases:
            raise ConfigError(f'{source}: models."*".aliases: "*" stands for every model and has no aliases')
        for alias in e.aliases:
            lower = alias.lower()
            if lower == WILDCARD:
                raise ConfigError(f'{source}: models.{_q(e.name)}.aliases: "*" cannot be an alias')
            if lower in owner and owner[lower] != e.name:
                raise ConfigError(
                    f"{source}: models.{_q(e.name)}.aliases: {alias!r} is already the name or an alias "
                    f"of models.{_q(owner[lower])}; a name belongs to one model only"
                )
            if lower in owner:
                raise ConfigError(
                    f"{source}: models.{_q(e.name)}.aliases: {alias!r} is the model itself or listed twice"
                )
            owner[lower] = e.name


def _q(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}" if key else f"{self.source}: {message}")

    def keys(
        self, where: str, body: dict[str, Any], *, required: tuple[str, ...], optional: tuple[str, ...] = ()
    ) -> None:
        for key in body:
            if key not in required and key not in optional:
                allowed = ", ".join((*required, *optional))
                raise self.fail(f"{where}.{key}" if where else key, f"unknown key (allowed here: {allowed})")
        for key in required:
            if key not in body:
                raise self.fail(f"{where}.{key}" if where else key, "missing")

    def table(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"got {type(value).__name__}, expected a table")
        return value

    def text(self, key: str, value: Any, *, empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"got {type(value).__name__}, expected a string")
        if not empty and not value.strip():
            raise self.fail(key, "must not be empty")
        return value

    def hex(self, key: str, value: Any, size: int) -> bytes:
        if not isinstance(value, str):
            raise self.fail(key, f"got {type(value).__name__}, expected a hex string of {size} bytes")
        text = value.lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]*", text) or len(text) % 2:
            raise self.fail(key, f"{value!r} is not hex")
        if len(text) != 2 * size:
            raise self.fail(key, f"got {len(text) // 2} bytes, expected {size}")
        return bytes.fromhex(text)

    def provenance(self, key: str, body: dict[str, Any]) -> Provenance:
        src = self.text(f"{key}.source", body["source"])
        if not _SOURCE.fullmatch(src):
            raise self.fail(
                f"{key}.source", f"{src!r}: expected 'gateway <url> at <time>', 'verdict <id>' or 'manual[: text]'"
            )
        return Provenance(
            source=src,
            added_at=self.time(f"{key}.added_at", body["added_at"]),
            note=self.text(f"{key}.note", body.get("note", ""), empty=True),
        )

    def time(self, key: str, value: Any) -> int:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise self.fail(key, f"{value.isoformat()} has no time zone (write e.g. 2026-12-02T06:00:00Z)")
            value = int(value.timestamp())
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(key, f"got {value!r}, expected unix seconds or an offset date-time")
        if not 0 <= value <= _MAX_UNIX:
            raise self.fail(key, f"{value} is out of range (0 .. {_MAX_UNIX})")
        return value

    def entries(self, key: str, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            raise self.fail(key, f"expected an array of tables ([[{key}]])")
        return value

    def model(self, name: str, body: Any) -> ModelEntry:
        where = f"models.{_q(name)}"
        if not name.strip():
            raise self.fail(where, "a model name must not be empty")
        body = self.table(where, body)
        self.keys(where, body, required=(), optional=("aliases", "app", "os_image", "boot_chain"))
        aliases = body.get("aliases", [])
        if not isinstance(aliases, list):
            raise self.fail(f"{where}.aliases", "expected a list of strings")
        names = tuple(self.text(f"{where}.aliases", a) for a in aliases)
        apps: list[AppRef] = []
        for i, e in enumerate(self.entries(f"{where}.app", body.get("app", []))):
            k = f"{where}.app[{i}]"
            self.keys(k, e, required=("source", "added_at"), optional=("app_id", "compose_hash", "note"))
            if "app_id" not in e and "compose_hash" not in e:
                raise self.fail(k, "an app entry needs app_id, compose_hash or both")
            apps.append(
                AppRef(
                    app_id=self.hex(f"{k}.app_id", e["app_id"], 20) if "app_id" in e else None,
                    compose_hash=self.hex(f"{k}.compose_hash", e["compose_hash"], 32) if "compose_hash" in e else None,
                    provenance=self.provenance(k, e),
                    model=name,
                )
            )
        images: list[OsImageRef] = []
        for i, e in enumerate(self.entries(f"{where}.os_image", body.get("os_image", []))):
            k = f"{where}.os_image[{i}]"
            self.keys(k, e, required=("hash", "source", "added_at"), optional=("note", "dev"))
            if "dev" in e and not isinstance(e["dev"], bool):
                raise ConfigError(f"{self.source}: {k}.dev: got {e['dev']!r}, expected true or false")
            images.append(
                OsImageRef(
                    hash=self.hex(f"{k}.hash", e["hash"], 32),
                    provenance=self.provenance(k, e),
                    model=name,
                    dev=e.get("dev"),
                )
            )
        chains: list[BootChainRef] = []
        for i, e in enumerate(self.entries(f"{where}.boot_chain", body.get("boot_chain", []))):
            k = f"{where}.boot_chain[{i}]"
            self.keys(k, e, required=(*_BOOT_FIELDS, "source", "added_at"), optional=("mrseam", "note"))
            mrs = [self.hex(f"{k}.{f}", e[f], 48) for f in _BOOT_FIELDS]
            chains.append(
                BootChainRef(
                    mrtd=mrs[0],
                    rtmr0=mrs[1],
                    rtmr1=mrs[2],
                    rtmr2=mrs[3],
                    provenance=self.provenance(k, e),
                    mrseam=self.hex(f"{k}.mrseam", e["mrseam"], 48) if "mrseam" in e else None,
                    model=name,
                )
            )
        for kind, values in (
            ("app", [a.value for a in apps]),
            ("os_image", [o.value for o in images]),
            ("boot_chain", [b.value for b in chains]),
        ):
            for i, value in enumerate(values):
                if value in values[:i]:
                    raise self.fail(f"{where}.{kind}[{i}]", "duplicates an earlier entry (same values)")
        return ModelEntry(
            name=name, aliases=names, apps=tuple(apps), os_images=tuple(images), boot_chains=tuple(chains)
        )


# ---------------------------------------------------------------------------------------------- writing


def _provenance_doc(p: Provenance) -> dict[str, Any]:
    out: dict[str, Any] = {"source": p.source, "added_at": p.added_at}
    if p.note:
        out["note"] = p.note
    return out


def dump_refs(refs: Refs) -> str:
    """TOML text that ``parse_refs`` reads back to an equal ``Refs`` (hex lowercase, no 0x; empty fields left out)."""
    return tomli_w.dumps(refs_document(refs))


def refs_document(refs: Refs) -> dict[str, Any]:
    """The refs as the TOML document's tables (plain JSON-ready values)."""
    head: dict[str, Any] = {"id": refs.id}
    if refs.description:
        head["description"] = refs.description
    models: dict[str, Any] = {}
    for e in refs.models:
        body: dict[str, Any] = {}
        if e.aliases:
            body["aliases"] = list(e.aliases)
        if e.apps:
            body["app"] = [
                {
                    **({"app_id": a.app_id.hex()} if a.app_id is not None else {}),
                    **({"compose_hash": a.compose_hash.hex()} if a.compose_hash is not None else {}),
                    **_provenance_doc(a.provenance),
                }
                for a in e.apps
            ]
        if e.os_images:
            body["os_image"] = [
                {"hash": o.hash.hex(), **({"dev": o.dev} if o.dev is not None else {}), **_provenance_doc(o.provenance)}
                for o in e.os_images
            ]
        if e.boot_chains:
            body["boot_chain"] = [
                {
                    **{f: getattr(b, f).hex() for f in _BOOT_FIELDS},
                    **({"mrseam": b.mrseam.hex()} if b.mrseam is not None else {}),
                    **_provenance_doc(b.provenance),
                }
                for b in e.boot_chains
            ]
        models[e.name] = body
    doc: dict[str, Any] = {"refs": head}
    if models:
        doc["models"] = models
    return doc
