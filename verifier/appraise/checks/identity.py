"""Software identity: the app (compose hash, app id) and the boot chain (MRTD, RTMR0-2, OS image) against pins.

A pass means the expected software answered: for the model, a pinned app identity AND a pinned boot chain
(the app identity is measured into RTMR3 by the boot chain, so an unpinned boot chain could extend RTMR3
with anything). Pins come from the policy's allow-lists and from the reference values (refs). Whatever is
not pinned is ``identity_not_pinned`` (indeterminate) naming what is missing, unless the policy explicitly
accepts unpinned software (``identity.require_pinned = false``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from verifier.appraise.checks.tdx import over_quotes
from verifier.appraise.registry import Appraisal, Passed, check
from verifier.core.errors import CheckFailed, Indeterminate
from verifier.core.model import Severity
from verifier.evidence import event_log as evlog
from verifier.evidence.dstack_identity import dstack_identity
from verifier.evidence.gpu_boot import check_gpu_boot, check_gpu_boot_policy
from verifier.verify.results import Facts, TdxFacts

_BOOT_FIELDS = ("mrtd", "rtmr0", "rtmr1", "rtmr2", "mrseam")


def _model_refs(f: Facts, a: Appraisal) -> Any:
    """The reference values for the requested model (its aliases and the "*" entries included), or None."""
    if a.refs is None or not f.bundle.meta.model:
        return None
    return a.refs.for_model(f.bundle.meta.model)


def _not_pinned(a: Appraisal, what: str) -> str:
    if a.policy.require_pinned:
        raise Indeterminate(
            f"{what} is not pinned (no reference value, no policy allow-list): nothing says this is "
            "the expected software",
            reason="identity_not_pinned",
            details={"not_pinned": what},
        )
    return f"{what} NOT pinned (policy {a.policy.id!r} accepts unpinned software)"


def _hexes(values: Iterable[bytes]) -> list[str]:
    return sorted(v.hex() for v in values)


@check(
    "tdx.app",
    "app_compose, compose_hash, RTMR3 and mr_config_id agree, and the app identity is pinned for the model",
    needs=("tdx.event_log",),
)
def tdx_app(f: Facts, a: Appraisal) -> Passed:
    pol, model = a.policy.tdx, (f.bundle.meta.model or "").lower()
    refs = _model_refs(f, a)
    unpinned: list[str] = []
    model_pins: list[str] = []  # attestations whose app is pinned for the requested model (what binds the model)

    def rule(t: TdxFacts) -> str:
        att, q, events = t.attestation, t.quote.get(), t.events.get()
        compose = evlog.check_compose(
            app_compose=att.app_compose,
            claimed_compose_hash=att.compose_hash,
            events=events,
            mr_config_id=q.report.mr_config_id,
            quote_rtmr3=q.report.rtmrs[3],
        )
        app_id = evlog.runtime_event(events, "app-id")
        app_hex = app_id.hex() if app_id else None
        # model pins (the app is pinned FOR this model) bind the model; model-agnostic ones (a global compose-hash
        # allow-list, refs entries under "*") only restrict: they pin a gateway TD, never which model answered
        pinned: list[str] = []
        gateway = att.role == "gateway"
        if pol.allowed["compose_hashes"]:
            if compose not in pol.allowed["compose_hashes"]:
                raise CheckFailed(
                    f"compose hash {compose.hex()} is not in the policy allow-list",
                    reason="compose_hash_not_allowed",
                    details={"got": compose.hex(), "expected": _hexes(pol.allowed["compose_hashes"])},
                )
            if gateway:
                pinned.append("compose hash (policy)")
        if pol.app_ids:
            # a policy that pins app ids pins them for every model: a model it does not name is not allowed
            allowed_ids = pol.app_ids.get(model, frozenset())
            if app_id is None or app_id not in allowed_ids:
                raise CheckFailed(
                    f"app id {app_hex} is not allowed for model {model or None!r}"
                    + ("" if model in pol.app_ids else f" (the policy pins app ids for {sorted(pol.app_ids)} only)"),
                    reason="app_id_not_allowed",
                    details={"got": app_hex, "expected": _hexes(allowed_ids)},
                )
            pinned.append("app id (policy)")
            model_pins.append(att.path)
        if refs is not None and refs.apps:
            own = tuple(e for e in refs.apps if e.model != "*")
            # a model's own entries are the only ones that may answer for it; "*" entries cover gateways (and models
            # that have no entry of their own, as a restriction only)
            candidates = refs.apps if gateway or not own else own
            match = next((e for e in candidates if e.matches(app_id, compose)), None)
            if match is None:
                ids = {e.app_id for e in candidates if e.app_id is not None}
                reason = "app_id_not_allowed" if ids and app_id not in ids else "compose_hash_not_allowed"
                raise CheckFailed(
                    f"app id {app_hex} / compose hash {compose.hex()} is not a pinned identity of model "
                    f"{model!r} in refs {a.refs.id!r}",
                    reason=reason,
                    details={
                        "got": {"app_id": app_hex, "compose_hash": compose.hex()},
                        "expected": [
                            {
                                "app_id": e.app_id.hex() if e.app_id else None,
                                "compose_hash": e.compose_hash.hex() if e.compose_hash else None,
                                "model": e.model,
                                "source": e.provenance.source,
                            }
                            for e in candidates
                        ],
                    },
                )
            if match.model != "*":
                pinned.append(f"app identity for {match.model!r} (refs {a.refs.id!r}: {match.provenance.source})")
                model_pins.append(att.path)
            elif gateway:
                pinned.append(f'gateway app identity (refs {a.refs.id!r} "*": {match.provenance.source})')
        ident = f"compose hash {compose.hex()}" + (f", app id {app_hex}" if app_hex else "")
        if pinned:
            return f"{ident}: pinned by {', '.join(pinned)}"
        unpinned.append(att.path)
        return f"{ident}: {_not_pinned(a, f'the app identity (app id or compose hash) of model {model!r}')}"

    passed = over_quotes(f, rule)
    return Passed(passed.message, {"pinned": not unpinned, "model_pinned": bool(model_pins)})


def _boot_values(t: TdxFacts) -> dict[str, bytes | None]:
    r = t.quote.get().report
    return {
        "mrtd": r.mr_td,
        "rtmr0": r.rtmrs[0],
        "rtmr1": r.rtmrs[1],
        "rtmr2": r.rtmrs[2],
        "mrseam": r.mr_seam,
        "os_image_hashes": evlog.runtime_event(t.events.get(), "os-image-hash"),
    }


@check(
    "tdx.measurements",
    "the boot chain (MRTD, RTMR0-2, MRSEAM) and OS image are pinned and allowed",
    needs=("tdx.event_log",),
)
def tdx_measurements(f: Facts, a: Appraisal) -> Passed:
    pol, model = a.policy.tdx, (f.bundle.meta.model or "").lower()
    refs = _model_refs(f, a)
    unpinned: list[str] = []

    def rule(t: TdxFacts) -> str:
        values = _boot_values(t)
        bad = {
            name: {"got": v.hex() if v else None, "expected": _hexes(pol.allowed[name])}
            for name, v in values.items()
            if pol.allowed[name] and (v is None or v not in pol.allowed[name])
        }
        if refs is not None and refs.os_images and refs.match_os_image(values["os_image_hashes"]) is None:
            got = values["os_image_hashes"]
            bad["os_image (refs)"] = {"got": got.hex() if got else None, "expected": _hexes(refs.os_image_hashes)}
        if bad:
            raise CheckFailed(
                f"not allowed: {', '.join(bad)}",
                reason="measurement_not_allowed",
                details={
                    "fields": bad,
                    "got": {k: v["got"] for k, v in bad.items()},
                    "expected": {k: v["expected"] for k, v in bad.items()},
                },
            )
        pinned: list[str] = []
        if all(pol.allowed[n] for n in ("mrtd", "rtmr0", "rtmr1", "rtmr2")):
            pinned.append("boot chain (policy allow-lists)")
        if refs is not None and refs.boot_chains:
            r = t.quote.get().report
            chain = refs.match_boot_chain(r.mr_td, r.rtmrs[0], r.rtmrs[1], r.rtmrs[2], r.mr_seam)
            if chain is None:
                raise CheckFailed(
                    "the boot chain (MRTD, RTMR0-2, MRSEAM) is none of the pinned boot chains",
                    reason="boot_chain_not_allowed",
                    details={
                        "got": {k: v.hex() for k, v in values.items() if k in _BOOT_FIELDS and v},
                        "expected": [
                            {
                                "mrtd": c.mrtd.hex(),
                                "rtmr0": c.rtmr0.hex(),
                                "rtmr1": c.rtmr1.hex(),
                                "rtmr2": c.rtmr2.hex(),
                                "mrseam": c.mrseam.hex() if c.mrseam else None,
                                "source": c.provenance.source,
                            }
                            for c in refs.boot_chains
                        ],
                    },
                )
            pinned.append(f"boot chain (refs {a.refs.id!r}: {chain.provenance.source})")
        mrtd = values["mrtd"]
        head = f"MRTD {mrtd.hex()[:16]}…" if mrtd else "MRTD ?"
        if pinned:
            return f"{head}: pinned by {', '.join(pinned)}"
        unpinned.append(t.attestation.path)
        return f"{head}: {_not_pinned(a, f'the boot chain (MRTD, RTMR0-2) of model {model!r}')}"

    passed = over_quotes(f, rule)
    return Passed(passed.message, {"pinned": not unpinned})


@check(
    "tdx.os_image",
    "the dstack OS image is a production image (not a dev image with operator access)",
    needs=("tdx.event_log",),
    severity=Severity.ADVISORY,
)
def tdx_os_image(f: Facts, a: Appraisal) -> Passed:
    refs = _model_refs(f, a)

    def rule(t: TdxFacts) -> str:
        measured = evlog.runtime_event(t.events.get(), "os-image-hash")
        vm = _vm_config(t.attestation.vm_config)
        claimed = vm.get("os_image_hash")
        if measured is None:
            raise Indeterminate("no os-image-hash event before system-ready", reason="not_applicable")
        if isinstance(claimed, str) and claimed.lower().removeprefix("0x") != measured.hex():
            raise CheckFailed(
                "vm_config.os_image_hash differs from the measured os-image-hash",
                reason="os_image_mismatch",
                details={"expected": measured.hex(), "got": claimed},
            )
        pinned = refs.match_os_image(measured) if refs is not None else None
        image = vm.get("image")
        if pinned is not None and pinned.dev is not None:
            dev, source = pinned.dev, f"refs ({pinned.provenance.source})"
        elif isinstance(image, str) and "-dev" in image.lower():  # a claim may only ever make this worse
            dev, source = True, f"vm_config.image {image!r} (the report's own claim)"
        else:
            raise Indeterminate(
                f"OS image {measured.hex()[:16]}…: no reviewed reference value says whether it is a production image "
                f"(vm_config.image {image!r} is the report's own claim, tied to nothing but the hash)",
                reason="not_applicable",
            )
        if dev:
            raise CheckFailed(
                f"OS image {measured.hex()[:16]}… is a dstack dev image ({source}): the operator can log in",
                reason="dev_os_image",
                details={"got": "dev", "expected": "production", "source": source},
            )
        return f"OS image {measured.hex()[:16]}… is a production image per {source}"

    return over_quotes(f, rule)


def _vm_config(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    return value if isinstance(value, dict) else {}


@check(
    "tdx.gpu_boot",
    "dstack's measured GPU gate attested the TD's GPUs at boot (gpu-policy-hash, gpu-attestation)",
    needs=("tdx.event_log",),
    severity=Severity.ADVISORY,
)
def tdx_gpu_boot(f: Facts, a: Appraisal) -> Passed:
    """Newer dstack boots release the app keys only after the attached GPUs passed NVIDIA's verifier, and measure
    that into RTMR3. Where the log carries those events: devices = the GPUs this attestation shows, CC mode on,
    DevTools off, and a measured GPU policy that waives nothing. Absent (older dstack): not applicable."""
    counts = {g.attestation.path: len(g.payload.evidence) for g in f.gpus.value or ()}

    def rule(t: TdxFacts) -> str:
        ident = dstack_identity(t.events.get())
        if ident.gpu_boot is None and ident.gpu_policy_hash is None:
            if t.attestation.role == "gateway" and t.attestation.path not in counts:
                return "CPU-only gateway TD: no GPU boot events expected"
            raise Indeterminate("this dstack version measures no GPU boot events", reason="not_applicable")
        expected = counts.get(t.attestation.path) or a.policy.gpu.expected_count
        gpu = check_gpu_boot(ident.gpu_boot, expected_devices=expected)
        check_gpu_boot_policy(ident.gpu_policy_hash or b"", t.attestation.app_compose)
        return (
            f"{gpu.devices} GPU(s) attested at boot by the TD's measured GPU gate (cc_mode {gpu.cc_mode}, devtools off)"
        )

    return over_quotes(f, rule)
