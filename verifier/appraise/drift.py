"""Drift: the software identities recorded verdicts attest, judged against the reference values.

A verdict's ``claims`` hold, per attestation path of the signer, the parsed quote (``claims.tdx[path]``:
``mr_td``, ``rtmr0-2``, ``mr_seam``) and the app identity replayed from the event log
(``claims.app[path]``: ``app_id``, ``compose_hash``, ``os_image_hash``). Values are only read from a
verdict whose ``tdx.quote`` passed (the boot chain), and whose ``tdx.event_log`` passed (the app and
OS image, which come from RTMR3): numbers from evidence nobody verified say nothing about what ran.

Drift, for one identity: its app identity is not pinned, or its OS image or boot chain differs from
every pin of that kind, or neither its OS image nor its boot chain is pinned — the same things
``pass`` needs (a pinned app identity and a pinned boot chain).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from verifier.appraise.refs import AppRef, BootChainRef, ModelRefs, OsImageRef, Provenance, Refs

PINNED, NOT_PINNED, CHANGED, NOT_RECORDED = "pinned", "not pinned", "changed", "not recorded"
# Reasons a required check may give when the only thing wrong is that the identity is not (yet) pinned:
# `refs add --from-verdict` accepts such a verdict without --force (pinning it is what resolves them).
PINNING_REASONS = frozenset(
    {"identity_not_pinned", "app_id_not_allowed", "compose_hash_not_allowed", "measurement_not_allowed"}
)


@dataclass(frozen=True, slots=True)
class AttestedIdentity:
    path: str
    mrtd: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    mrseam: bytes | None
    app_id: bytes | None = None
    compose_hash: bytes | None = None
    os_image_hash: bytes | None = None

    @property
    def has_app(self) -> bool:
        return self.app_id is not None or self.compose_hash is not None

    def app_ref(self, provenance: Provenance) -> AppRef | None:
        return (
            AppRef(app_id=self.app_id, compose_hash=self.compose_hash, provenance=provenance) if self.has_app else None
        )

    def os_image_ref(self, provenance: Provenance) -> OsImageRef | None:
        return None if self.os_image_hash is None else OsImageRef(hash=self.os_image_hash, provenance=provenance)

    def boot_chain_ref(self, provenance: Provenance) -> BootChainRef:
        return BootChainRef(
            mrtd=self.mrtd,
            rtmr0=self.rtmr0,
            rtmr1=self.rtmr1,
            rtmr2=self.rtmr2,
            mrseam=self.mrseam,
            provenance=provenance,
        )


@dataclass(frozen=True, slots=True)
class Pinning:
    app: str
    os_image: str
    boot_chain: str

    @property
    def drift(self) -> bool:
        return (
            self.app != PINNED
            or CHANGED in (self.os_image, self.boot_chain)
            or PINNED not in (self.os_image, self.boot_chain)
        )


def _check_status(verdict: Mapping[str, Any], check_id: str) -> str | None:
    for c in verdict.get("checks") or ():
        if isinstance(c, dict) and c.get("id") == check_id:
            return str(c.get("status"))
    return None


def unverified_identity(verdict: Mapping[str, Any]) -> str | None:
    """Why the verdict's identity cannot be trusted as attested (None when ``tdx.quote`` passed)."""
    status = _check_status(verdict, "tdx.quote")
    if status != "pass":
        return f"its TDX quote was not verified (tdx.quote: {status or 'not run'})"
    return None


def blocking_checks(verdict: Mapping[str, Any]) -> list[str]:
    """The required checks that did not pass for another reason than a missing or different pin."""
    out = []
    for c in verdict.get("checks") or ():
        if not isinstance(c, dict) or c.get("severity") != "required" or c.get("status") == "pass":
            continue
        if c.get("reason") not in PINNING_REASONS:
            out.append(f"{c.get('id')}: {c.get('status')} ({c.get('reason')})")
    return out


def _hex(value: Any, size: int) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        return None
    return raw if len(raw) == size else None


def attested_identities(verdict: Mapping[str, Any]) -> tuple[AttestedIdentity, ...]:
    """One identity per attestation path with a verified quote (empty when ``tdx.quote`` did not pass)."""
    if unverified_identity(verdict) is not None:
        return ()
    claims = verdict.get("claims") or {}
    tdx, app = claims.get("tdx") or {}, claims.get("app") or {}
    app_verified = _check_status(verdict, "tdx.event_log") == "pass"
    out = []
    for path, quote in sorted(tdx.items()):
        if not isinstance(quote, dict):
            continue
        mrtd, rtmr0, rtmr1, rtmr2 = (_hex(quote.get(k), 48) for k in ("mr_td", "rtmr0", "rtmr1", "rtmr2"))
        if mrtd is None or rtmr0 is None or rtmr1 is None or rtmr2 is None:
            raise ValueError(f"verdict {verdict.get('id')}: claims.tdx[{path!r}] lacks MRTD/RTMR0-2")
        recorded = app.get(path)
        a: dict[str, Any] = recorded if app_verified and isinstance(recorded, dict) else {}
        out.append(
            AttestedIdentity(
                path=path,
                mrtd=mrtd,
                rtmr0=rtmr0,
                rtmr1=rtmr1,
                rtmr2=rtmr2,
                mrseam=_hex(quote.get("mr_seam"), 48),
                app_id=_hex(a.get("app_id"), 20),
                compose_hash=_hex(a.get("compose_hash"), 32),
                os_image_hash=_hex(a.get("os_image_hash"), 32),
            )
        )
    return tuple(out)


def judge(refs: ModelRefs, ident: AttestedIdentity) -> Pinning:
    def status(pinned: bool, any_pins: bool, recorded: bool) -> str:
        if pinned:
            return PINNED
        if not recorded:
            return NOT_RECORDED
        return CHANGED if any_pins else NOT_PINNED

    app = status(refs.match_app(ident.app_id, ident.compose_hash) is not None, bool(refs.apps), ident.has_app)
    os_image = status(
        refs.match_os_image(ident.os_image_hash) is not None, bool(refs.os_images), ident.os_image_hash is not None
    )
    boot = status(
        refs.match_boot_chain(ident.mrtd, ident.rtmr0, ident.rtmr1, ident.rtmr2, ident.mrseam) is not None,
        bool(refs.boot_chains),
        True,
    )
    return Pinning(app=app, os_image=os_image, boot_chain=boot)


@dataclass(frozen=True, slots=True)
class DriftGroup:
    """Verdicts of one model and signer whose software is not in the refs, and the values that are not pinned."""

    model: str
    signer: str
    verdict_ids: tuple[str, ...]  # the drifting verdicts, in ledger order (newest first)
    considered: int  # verdicts of this model and signer that carry a verified identity
    unpinned: dict[str, tuple[str, ...]]  # "app" | "os_image" | "boot_chain" -> distinct "<status>: <k=hex ...>"

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "signer": self.signer,
            "verdicts": list(self.verdict_ids),
            "considered": self.considered,
            "unpinned": {k: list(v) for k, v in self.unpinned.items()},
        }


@dataclass(frozen=True, slots=True)
class DriftReport:
    groups: tuple[DriftGroup, ...]
    considered: int
    skipped: tuple[tuple[str, str], ...]  # (verdict id, why its identity is not judged)

    @property
    def drift(self) -> bool:
        return bool(self.groups)

    def to_json(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "considered": self.considered,
            "groups": [g.to_json() for g in self.groups],
            "skipped": [{"verdict": v, "why": why} for v, why in self.skipped],
        }


def _values(ident: AttestedIdentity, p: Pinning) -> dict[str, str]:
    """What makes ``p`` drift, as "<status>: <values>" per kind (status: not pinned | changed | not recorded)."""
    out = {}
    boot_side = PINNED not in (p.os_image, p.boot_chain)  # neither pins the boot side: both are named
    if p.app != PINNED:
        out["app"] = f"{p.app}: " + " ".join(
            f"{k}={v.hex() if v else None}" for k, v in (("app_id", ident.app_id), ("compose_hash", ident.compose_hash))
        )
    if p.os_image == CHANGED or (boot_side and p.os_image != PINNED):
        out["os_image"] = f"{p.os_image}: {ident.os_image_hash.hex() if ident.os_image_hash else None}"
    if p.boot_chain == CHANGED or (boot_side and p.boot_chain != PINNED):
        out["boot_chain"] = f"{p.boot_chain}: " + " ".join(
            f"{k}={getattr(ident, k).hex() if getattr(ident, k) else None}"
            for k in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "mrseam")
        )
    return out


def drift_report(refs: Refs, verdicts: Iterable[Mapping[str, Any]]) -> DriftReport:
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    skipped: list[tuple[str, str]] = []
    considered = 0
    for v in verdicts:
        vid = str(v.get("id"))
        why = unverified_identity(v)
        identities = attested_identities(v) if why is None else ()
        if not identities:
            skipped.append((vid, why or "it records no attested identity"))
            continue
        considered += 1
        subject = v.get("subject") or {}
        model, signer = str(subject.get("model") or "-"), str(subject.get("signer") or "-")
        g = groups.setdefault((model, signer), {"ids": [], "considered": 0, "unpinned": {}})
        g["considered"] += 1
        model_refs = refs.for_model(model)
        drifting = False
        for ident in identities:
            pinning = judge(model_refs, ident)
            if pinning.drift:
                drifting = True
                for kind, value in _values(ident, pinning).items():
                    g["unpinned"].setdefault(kind, {})[value] = None  # ordered set
        if drifting:
            g["ids"].append(vid)
    out = tuple(
        DriftGroup(
            model=m,
            signer=s,
            verdict_ids=tuple(g["ids"]),
            considered=g["considered"],
            unpinned={k: tuple(vals) for k, vals in g["unpinned"].items()},
        )
        for (m, s), g in groups.items()
        if g["ids"]
    )
    return DriftReport(groups=out, considered=considered, skipped=tuple(skipped))
