"""Stage 6: the verdict — status by default-deny aggregation, claims from verified facts, honest notes."""

from __future__ import annotations

import platform
import time
from typing import Any

from verifier import __version__
from verifier.appraise.trust_vector import trust_vector
from verifier.core.errors import VerifierError
from verifier.core.model import CheckResult, Status, aggregate
from verifier.core.verdict import AttestationRef, NonceRef, PolicyRef, Subject, Times, Verdict
from verifier.engine.context import Context
from verifier.evidence import exchange
from verifier.evidence.dstack_identity import dstack_identity
from verifier.evidence.event_log import Event
from verifier.verify.results import Facts


def build_verdict(
    facts: Facts, results: tuple[CheckResult, ...], ctx: Context, *, origin: str, supersedes: str | None, started: float
) -> Verdict:
    bundle, sel, meta = facts.bundle, facts.selection, facts.bundle.meta
    checks = {r.id: r for r in results}
    sig = facts.signature.signature.value
    fetched_at = (
        meta.report_fetched_at
        if meta.report_fetched_at is not None
        else (meta.captured_at if origin == "fetched" else None)
    )
    return Verdict(
        status=aggregate(list(results)),
        trust_profile=ctx.anchors.name,
        simulator=ctx.anchors.is_simulator,
        subject=Subject(
            model=meta.model,
            chat_id=meta.chat_id or (exchange.chat_id_from_response(bundle.response) if bundle.response else None),
            gateway=meta.gateway,
            signing_algo=sel.algo,
            signer=sel.signer,
            request_sha256=exchange.sha256_hex(bundle.request) if bundle.request is not None else bundle.request_sha256,
            response_sha256=exchange.sha256_hex(bundle.response)
            if bundle.response is not None
            else bundle.response_sha256,
            signed_text=sig.text if sig else None,
            model_binding=_model_binding(checks, sorted(sel.names)),
            tls_binding=_tls_binding(checks),
        ),
        nonce=NonceRef(
            value=meta.nonce.hex() if meta.nonce else None, origin=str(meta.nonce_origin) if meta.nonce_origin else None
        ),
        times=Times(
            verified_at=ctx.now,
            captured_at=meta.captured_at,
            evaluated_at=time.time(),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        ),
        policy=PolicyRef(id=ctx.policy.id, sha256=ctx.policy.sha256),
        refs={"id": ctx.refs.id, "sha256": ctx.refs.sha256} if ctx.refs is not None else None,
        versions={"verifier": __version__, "dcap_qvl": ctx.dcap_version, "python": platform.python_version()},
        checks=results,
        claims=_claims(facts, checks),
        notes=tuple(_notes(facts, checks, origin, ctx)),
        collateral=tuple(t.collateral.value.to_record() for t in facts.tdx if t.collateral.value is not None),
        attestation=AttestationRef(
            format=str(sel.report.value.format) if sel.report.value else None,
            paths=tuple(a.path for a in sel.attestations.value or sel.candidates),
            hops=tuple(h.path for h in sel.hops),
            origin=origin,
            fetched_at=fetched_at,
            reused_from=meta.reused_from,
            age_s=ctx.now - fetched_at if origin == "reused" and fetched_at is not None else None,
        ),
        anchors=ctx.anchors.fingerprints(),
        trust_vector=trust_vector(results),
        supersedes=supersedes,
    )


def _model_binding(checks: dict[str, CheckResult], names: list[str]) -> dict[str, Any]:
    by: list[str] = []
    app = checks.get("tdx.app")
    if app is not None and app.status is Status.PASS and app.details.get("model_pinned"):
        by.append("app_id_pin")
    binding = checks.get("model.binding")
    if binding is not None and binding.status is Status.PASS:
        stated = {s["by"] for s in binding.details.get("stated", [])}
        by += ["signed_text"] if "signed_text" in stated else []
        by += ["attestation"] if any(s.startswith("attestation") for s in stated) else []
    return {"by": by or ["nothing"], "names": names}


def _tls_binding(checks: dict[str, CheckResult]) -> dict[str, Any]:
    """Whether tls.binds_peer bound the TLS channel: which connection, observed live or recorded, else why not."""
    row = checks.get("tls.binds_peer")
    if row is None:
        return {"bound": False, "connection": None, "observed": None, "reason": "not_in_bundle"}
    bound = row.status is Status.PASS
    return {
        "bound": bound,
        "connection": row.details.get("served_by") if bound else None,
        "observed": row.details.get("observed") if bound else None,
        "reason": None if bound else row.reason,
    }


def _claims(facts: Facts, checks: dict[str, CheckResult]) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    for t in facts.tdx:
        if t.quote.value is None:
            continue
        entry = t.quote.value.to_json()
        if t.dcap.value is not None:
            d = t.dcap.value
            entry["dcap"] = {
                "status": d.status,
                "advisory_ids": list(d.advisory_ids),
                "tcb_eval_data_number": d.tcb_eval_data_number,
                "tcb_date": d.tcb_date,
            }
        claims.setdefault("tdx", {})[t.attestation.path] = entry
        log_ok = checks["tdx.event_log"].status is Status.PASS
        if log_ok and t.events.value is not None:  # read only from a log that replayed to the verified quote
            claims.setdefault("app", {})[t.attestation.path] = _identity_claims(t.events.value)
    if facts.gpus.value is not None:
        claims["gpus"] = [d.to_json() for g in facts.gpus.value for d in (g.devices.value or ())]
        nras = [g.nras.value.to_json() for g in facts.gpus.value if g.nras.value is not None]
        if nras:
            claims["nras"] = nras
    return claims


def _tls_notes(facts: Facts, row: CheckResult | None) -> list[dict[str, str]]:
    """What the TLS channel binding proved, for every bundle that recorded a connection (tls.json)."""
    if row is None or facts.bundle.tls is None:
        return []
    recorded = (
        ""
        if facts.tls_live
        else "; the peer fingerprints are the bundle's tls.json, unauthenticated observer data: the binding is only "
        "as trustworthy as whoever recorded the bundle"
    )
    if row.status is Status.PASS:
        served = row.details.get("served_by")
        scope = (
            "the connection that carried the completion"
            if served == "completion"
            else f"the {served} connection this verifier opened (the completion was captured elsewhere: its own "
            "channel was not observed)"
        )
        return [
            {
                "code": "tls_channel_bound",
                "message": f"the attested TD holds the TLS key of {scope}: TLS terminates in the attested TD{recorded}",
            }
        ]
    return [
        {
            "code": "tls_channel_not_bound",
            "message": f"the TLS channel is not bound to the attested TD ({row.status}: {row.reason}): "
            f"{row.message}{recorded}",
        }
    ]


def _identity_claims(events: tuple[Event, ...]) -> dict[str, Any]:
    try:
        ident = dstack_identity(events)
    except VerifierError as exc:  # an ambiguous log is judged by tdx.app; the claim only says why it is absent
        return {"error": exc.reason}
    gpu = ident.gpu_boot
    return {
        "app_id": ident.app_id.hex(),
        "compose_hash": ident.compose_hash.hex(),
        "instance_id": ident.instance_id.hex(),
        "os_image_hash": ident.os_image_hash.hex() if ident.os_image_hash else None,
        "key_provider": ident.key_provider.name,
        "gpu_policy_hash": ident.gpu_policy_hash.hex() if ident.gpu_policy_hash else None,
        "gpu_boot": None
        if gpu is None
        else {
            "devices": gpu.devices,
            "cc_mode": gpu.cc_mode,
            "devtools": gpu.devtools,
            "provider": gpu.provider,
            "evidence_sha256": gpu.evidence_sha256.hex(),
        },
    }


def _notes(facts: Facts, checks: dict[str, CheckResult], origin: str, ctx: Context) -> list[dict[str, str]]:
    notes: list[dict[str, str]] = []
    sel, meta = facts.selection, facts.bundle.meta
    if sel.hops:
        notes.append(
            {
                "code": "served_behind_gateway",
                "message": (
                    f"signed by the attested gateway ({', '.join(a.path for a in sel.attestations.value or ())}); "
                    f"served "
                    f"behind it by {', '.join(h.path for h in sel.hops)}: the gateway's measured code vouches for the "
                    "gateway→model hop, which no evidence binds to this response"
                ),
            }
        )
    if facts.gpus.value:
        total = sum(len(g.payload.evidence) for g in facts.gpus.value)
        boot = checks.get("tdx.gpu_boot")
        if boot is not None and boot.status is Status.PASS and "at boot" in boot.message:
            notes.append(
                {
                    "code": "gpu_attached_at_boot",
                    "message": (
                        f"attached at boot: the TD's measured GPU gate attested its GPUs ({boot.message}); the "
                        f"per-request GPU "
                        f"evidence ({total} GPU(s)) is not bound to the TD"
                    ),
                }
            )
        else:
            notes.append(
                {
                    "code": "gpu_cpu_binding_not_proven",
                    "message": (
                        f"{total} GPU(s) attested, but nothing in the evidence proves they are attached to the "
                        f"attested CPU "
                        "TEE (the SPDM report is not bound to the TD)"
                    ),
                }
            )
    report = sel.report.value
    if report is not None and report.gpu_evidence_remote:
        notes.append(
            {
                "code": "gpu_evidence_remote",
                "message": (
                    "ACI legacy report: the GPU evidence was fetched from the upstream model node, another machine "
                    "than the "
                    "attested gateway TD; it shows that some CC GPU answered our nonce, not that it served this "
                    "response"
                ),
            }
        )
    kept = facts.signature.retained_hashes
    if kept:
        notes.append(
            {
                "code": "bodies_not_retained",
                "message": (
                    f"the {' and '.join(kept)} bytes were not retained: the signed hashes were checked against the "
                    f"sha256 "
                    "recorded when they were received"
                ),
            }
        )
    notes += _tls_notes(facts, checks.get("tls.binds_peer"))
    if origin == "reused" and meta.report_fetched_at is not None:
        notes.append(
            {
                "code": "reused_attestation",
                "message": (
                    f"cites the attestation of verdict {meta.reused_from}, fetched with our nonce at "
                    f"{meta.report_fetched_at} "
                    f"({ctx.now - meta.report_fetched_at} s before {ctx.now}; policy max_attestation_age "
                    f"{ctx.policy.max_attestation_age} s)"
                ),
            }
        )
    return notes
