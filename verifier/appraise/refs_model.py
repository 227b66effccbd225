"""The reference-value model: accepted software identities per model, each with its provenance, and lookup.

Parsed and written by ``verifier.appraise.refs`` (the file format is documented there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

WILDCARD = "*"
SOURCE_KINDS = ("gateway", "verdict", "manual")
_SOURCE = re.compile(r"(?:gateway \S+ at \S+|verdict \S+|manual(?:: .+)?)", re.S)
_BOOT_FIELDS = ("mrtd", "rtmr0", "rtmr1", "rtmr2")
_MAX_UNIX = 253402300799  # 9999-12-31T23:59:59Z


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where an entry came from: ``gateway <model-list url> at <time>``, ``verdict <id>`` or ``manual[: text]``."""

    source: str
    added_at: int  # unix seconds
    note: str = ""

    @property
    def kind(self) -> str:
        return self.source.split(" ", 1)[0].split(":", 1)[0]

    @property
    def gateway_url(self) -> str | None:
        """The model-list URL of a ``gateway`` entry, else None."""
        return self.source.split(" ")[1] if self.kind == "gateway" else None


@dataclass(frozen=True, slots=True)
class AppRef:
    """An accepted app identity; every field it sets must match (None = any)."""

    app_id: bytes | None
    compose_hash: bytes | None
    provenance: Provenance
    model: str = field(default="", compare=False)  # the key it is listed under ("*" for every model)

    def matches(self, app_id: bytes | None, compose_hash: bytes | None) -> bool:
        return (self.app_id is None or self.app_id == app_id) and (
            self.compose_hash is None or self.compose_hash == compose_hash
        )

    @property
    def value(self) -> tuple[bytes | None, ...]:
        return (self.app_id, self.compose_hash)


@dataclass(frozen=True, slots=True)
class OsImageRef:
    hash: bytes
    provenance: Provenance
    model: str = field(default="", compare=False)
    dev: bool | None = None  # reviewed metadata: a dstack dev image (operator access); None = not stated

    @property
    def value(self) -> tuple[bytes | None, ...]:
        return (self.hash,)


@dataclass(frozen=True, slots=True)
class BootChainRef:
    """An accepted boot chain: MRTD and RTMR0-2 must all match; MRSEAM too when it is set."""

    mrtd: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    provenance: Provenance
    mrseam: bytes | None = None
    model: str = field(default="", compare=False)

    def matches(self, mrtd: bytes, rtmr0: bytes, rtmr1: bytes, rtmr2: bytes, mrseam: bytes | None) -> bool:
        return (self.mrtd, self.rtmr0, self.rtmr1, self.rtmr2) == (mrtd, rtmr0, rtmr1, rtmr2) and (
            self.mrseam is None or self.mrseam == mrseam
        )

    @property
    def value(self) -> tuple[bytes | None, ...]:
        return (self.mrtd, self.rtmr0, self.rtmr1, self.rtmr2, self.mrseam)


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One ``[models."<name>"]`` table as written in the file."""

    name: str
    aliases: tuple[str, ...] = ()
    apps: tuple[AppRef, ...] = ()
    os_images: tuple[OsImageRef, ...] = ()
    boot_chains: tuple[BootChainRef, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.aliases or self.apps or self.os_images or self.boot_chains)


@dataclass(frozen=True, slots=True)
class ModelRefs:
    """Everything accepted for one model: its group's entries plus those of ``"*"``, each with its provenance."""

    model: str
    names: frozenset[str]  # lowercased: the model's group (key and aliases)
    apps: tuple[AppRef, ...]
    os_images: tuple[OsImageRef, ...]
    boot_chains: tuple[BootChainRef, ...]

    @property
    def app_ids(self) -> frozenset[bytes]:
        """App ids named by any app entry (an entry may also pin a compose hash: use ``match_app``)."""
        return frozenset(a.app_id for a in self.apps if a.app_id is not None)

    @property
    def compose_hashes(self) -> frozenset[bytes]:
        return frozenset(a.compose_hash for a in self.apps if a.compose_hash is not None)

    @property
    def os_image_hashes(self) -> frozenset[bytes]:
        return frozenset(o.hash for o in self.os_images)

    def match_app(self, app_id: bytes | None, compose_hash: bytes | None) -> AppRef | None:
        return next((a for a in self.apps if a.matches(app_id, compose_hash)), None)

    def match_os_image(self, os_image_hash: bytes | None) -> OsImageRef | None:
        return next((o for o in self.os_images if o.hash == os_image_hash), None)

    def match_boot_chain(
        self, mrtd: bytes, rtmr0: bytes, rtmr1: bytes, rtmr2: bytes, mrseam: bytes | None
    ) -> BootChainRef | None:
        return next((b for b in self.boot_chains if b.matches(mrtd, rtmr0, rtmr1, rtmr2, mrseam)), None)


@dataclass(frozen=True, slots=True)
class Refs:
    """A validated refs file. Equality compares the reference values, not the file bytes (``sha256``/``source``)."""

    id: str
    models: tuple[ModelEntry, ...] = ()
    description: str = ""
    sha256: str = field(default="", compare=False)
    source: str = field(default="", compare=False)

    def _groups(self) -> dict[str, ModelEntry]:
        out: dict[str, ModelEntry] = {}
        for entry in self.models:
            for name in (entry.name, *entry.aliases):
                out[name.lower()] = entry
        return out

    def group_key(self, model: str) -> str | None:
        """The key (as spelled in the file) of the group ``model`` belongs to, or None."""
        entry = self._groups().get(model.lower())
        return None if entry is None else entry.name

    def names_for(self, model: str) -> frozenset[str]:
        """The model and its aliases, lowercased (just the model when the file does not name it)."""
        entry = self._groups().get(model.lower())
        if entry is None or entry.name == WILDCARD:
            return frozenset({model.lower()})
        return frozenset(n.lower() for n in (entry.name, *entry.aliases))

    def entry(self, model: str) -> ModelEntry | None:
        return self._groups().get(model.lower())

    def for_model(self, model: str) -> ModelRefs:
        """The model's group entries (found by any of its names) merged with those of ``"*"``."""
        chosen = [e for e in (self.entry(model), self.entry(WILDCARD)) if e is not None]
        if len(chosen) == 2 and chosen[0] is chosen[1]:
            chosen = chosen[:1]
        return ModelRefs(
            model=model,
            names=self.names_for(model),
            apps=tuple(a for e in chosen for a in e.apps),
            os_images=tuple(o for e in chosen for o in e.os_images),
            boot_chains=tuple(b for e in chosen for b in e.boot_chains),
        )
