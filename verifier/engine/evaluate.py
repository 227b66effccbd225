"""Evaluate one evidence bundle into a verdict — the offline core every entry point shares.

The online pipeline gathers a bundle (exact bytes, signature, a report bound to a nonce we
minted) and calls ``evaluate``; ``verify-bundle`` calls it on a bundle from disk; an exported
verdict's bundle re-evaluated at its recorded time reproduces it. Steps, in order:

 1. the signature: exact-byte hashes and the signature itself          request.hash, response.hash, signature.valid
 2. the signer under test and the attestation(s) for it                report.signer, nonce.fresh
 3. per attestation, the TDX quote (dcap-qvl in a worker), its TCB,    tdx.quote, tdx.tcb, tdx.binds_signer,
    report_data binding, event-log replay, app identity, debug bit     tdx.binds_nonce, tdx.event_log, tdx.app,
                                                                       tdx.measurements, tdx.debug
 4. per attestation, the GPUs: nonce, device evidence, NRAS            gpu.nonce, gpu.evidence, gpu.nras
 5. aggregate (default-deny) into the verdict
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from verifier import __version__
from verifier.appraise.gpu import appraise_gpus
from verifier.appraise.policy import Policy
from verifier.appraise.tcb import appraise_tcb
from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate, VerifierError
from verifier.core.model import NonceOrigin, Status, aggregate
from verifier.core.ports import DcapResult, QuoteVerifier
from verifier.core.trust import TrustAnchors
from verifier.engine.checklist import Checklist, Passed, Skip, merge_failures
from verifier.evidence import event_log as evlog
from verifier.evidence import exchange, report_data
from verifier.evidence.bundle import Bundle
from verifier.evidence.collateral import Collateral, collateral_from_bundle
from verifier.evidence.gpu_payload import GpuPayload, chutes_gpu_nonce, parse_chutes_gpu_evidence, parse_nvidia_payload
from verifier.evidence.pck import pck_identity
from verifier.evidence.quote import TdxQuote, decode_quote_text, parse_quote
from verifier.evidence.report import Attestation, Report, ReportFormat, parse_report, select_attestations
from verifier.evidence.signature import ResponseSignature, normalize_signer, parse_signature
from verifier.evidence.spdm import check_gpu_nonces
from verifier.verify.gpu_device import VerifiedGpu, verify_gpu
from verifier.verify.nras_token import NrasResult, verify_nras_response
from verifier.verify.signature import verify_signature  # moved out of evidence.signature (now parsing only)

log = logging.getLogger(__name__)


class CollateralProvider(Protocol):
    async def get(self, *, fmspc: str, ca: str, now: int) -> Collateral: ...


class NrasProvider(Protocol):
    async def attest(self, nras_request: dict[str, Any]) -> bytes: ...

    async def jwks(self, kid: str | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Context:
    policy: Policy
    now: int  # the verification time: every validity window is judged at this instant
    anchors: TrustAnchors
    quotes: QuoteVerifier | None = None  # None: tdx.quote cannot run (indeterminate)
    collateral: CollateralProvider | None = None  # None: only the bundle's collateral
    nras: NrasProvider | None = None  # None: only the bundle's NRAS responses
    dcap_version: str | None = None


@dataclass(slots=True)
class Evaluation:
    verdict: dict[str, Any]
    bundle: Bundle  # the input bundle plus what was fetched (collateral, NRAS) — the evidence to keep


@dataclass(slots=True)
class _State:
    bundle: Bundle
    sig: ResponseSignature | None = None
    signer: str | None = None
    algo: str | None = None
    report: Report | None = None
    attestations: tuple[Attestation, ...] = ()
    quotes: dict[str, TdxQuote] = field(default_factory=dict)
    collateral_used: list[dict[str, Any]] = field(default_factory=list)
    extra_collateral: dict[str, bytes] = field(default_factory=dict)
    extra_nras: dict[str, bytes] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    notes: list[dict[str, str]] = field(default_factory=list)
    fetch_errors: dict[str, VerifierError] = field(default_factory=dict)

    def missing(self, checks: Checklist, part: str, check_ids: tuple[str, ...], message: str) -> None:
        """A part is absent: skipped (not_in_bundle), or indeterminate with the fetch error that caused it."""
        err = self.fetch_errors.get(part)
        for cid in check_ids:
            if err is None:
                checks.skip(cid, "not_in_bundle", message)
            else:
                checks.record(cid, Status.INDETERMINATE, err.reason, err.message, err.details)


async def evaluate(bundle: Bundle, ctx: Context, *, fetch_errors: dict[str, VerifierError] | None = None) -> Evaluation:
    """``fetch_errors`` names why a part is missing when the pipeline could not fetch it ("signature", "report")."""
    started = time.perf_counter()
    checks = Checklist(ctx.policy)
    st = _State(bundle=bundle, fetch_errors=dict(fetch_errors or {}))
    await _signature_steps(checks, st)
    await _report_steps(checks, st, ctx)
    await _tdx_steps(checks, st, ctx)
    await _gpu_steps(checks, st, ctx)
    results = checks.results()
    status = aggregate(results)
    meta = bundle.meta
    verdict: dict[str, Any] = {
        "id": None,
        "status": str(status),
        "trust_profile": ctx.anchors.name,
        "simulator": ctx.anchors.is_simulator,
        "subject": {
            "model": meta.model,
            "chat_id": meta.chat_id or (exchange.chat_id_from_response(bundle.response) if bundle.response else None),
            "gateway": meta.gateway,
            "signing_algo": st.algo,
            "signer": st.signer,
            "request_sha256": exchange.sha256_hex(bundle.request) if bundle.request is not None else None,
            "response_sha256": exchange.sha256_hex(bundle.response) if bundle.response is not None else None,
            "signed_text": st.sig.text if st.sig else None,
        },
        "nonce": {"value": meta.nonce.hex() if meta.nonce else None, "origin": str(meta.nonce_origin) if meta.nonce_origin else None},
        "times": {
            "verified_at": ctx.now,
            "captured_at": meta.captured_at,
            "evaluated_at": time.time(),
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        },
        "policy": {"id": ctx.policy.id, "sha256": ctx.policy.sha256},
        "versions": {"verifier": __version__, "dcap_qvl": ctx.dcap_version, "python": platform.python_version()},
        "checks": [r.to_json() for r in results],
        "claims": st.claims,
        "notes": st.notes,
        "collateral": st.collateral_used,
        "attestation": {
            "format": str(st.report.format) if st.report else None,
            "paths": [a.path for a in st.attestations],
            "reused_from": None,
            "age_s": None,
        },
        "anchors": ctx.anchors.fingerprints(),
        "supersedes": None,
    }
    kept = replace(
        bundle,
        collateral={**bundle.collateral, **st.extra_collateral},
        nras={**bundle.nras, **st.extra_nras},
    )
    return Evaluation(verdict=verdict, bundle=kept)


# ---------------------------------------------------------------- 1. signature


async def _signature_steps(checks: Checklist, st: _State) -> None:
    b = st.bundle
    if b.signature is None:
        st.missing(checks, "signature", ("request.hash", "response.hash", "signature.valid"), "no signature.json in the bundle")
        return

    try:
        st.sig = parse_signature(b.signature)
    except EvidenceError as exc:
        for cid in ("request.hash", "response.hash", "signature.valid"):
            checks.record(cid, Status.FAIL, exc.reason, f"signature.json: {exc.message}")
        return
    sig = st.sig
    assert sig is not None

    def hash_check(name: str, body: bytes | None, signed: str) -> Callable[[], Passed]:
        def fn() -> Passed:
            if body is None:
                raise Skip(f"no {name}.body in the bundle", reason="not_in_bundle")
            got = exchange.sha256_hex(body)
            if got == signed:
                return Passed(f"sha256 {got} (exact bytes)", {"sha256": got})
            fallback = exchange.reserialized_sha256(body) if name == "response" else None
            if fallback is not None and fallback == signed:
                # redpill-protocol §1.1: Phala's re-serialization matches; not proof about the bytes received.
                raise Indeterminate(
                    f"exact bytes hash to {got}; only a Python json.dumps re-serialization matches the signed {signed} (NOT byte-exact)",
                    reason="hash_match_reserialized",
                    details={"expected": signed, "got": got, "reserialized": fallback},
                )
            raise CheckFailed(f"sha256 of the exact {name} bytes is {got}, signed text says {signed}", reason="hash_mismatch",
                              details={"expected": signed, "got": got})
        return fn

    await checks.run("request.hash", hash_check("request", b.request, sig.signed.request_hash))
    await checks.run("response.hash", hash_check("response", b.response, sig.signed.response_hash))

    def valid() -> Passed:
        signer = verify_signature(sig)
        return Passed(f"{sig.signing_algo} signature by {signer}", {"signer": signer, "signing_algo": sig.signing_algo}, signer)

    await checks.run("signature.valid", valid)
    st.algo = sig.signing_algo
    try:
        st.signer = normalize_signer(sig.signing_algo, sig.signing_address)
    except EvidenceError:
        st.signer = None


# ---------------------------------------------------------------- 2. report and signer


async def _report_steps(checks: Checklist, st: _State, ctx: Context) -> None:
    b, meta = st.bundle, st.bundle.meta

    def fresh() -> Passed:
        if meta.nonce is None:
            raise Indeterminate("no nonce in the bundle: freshness and binding cannot be shown", reason="no_nonce")
        if meta.nonce_origin is not NonceOrigin.MINTED:
            raise Indeterminate(
                f"nonce {meta.nonce.hex()} was supplied, not minted by this verifier: freshness is not proven",
                reason="nonce_not_minted",
            )
        return Passed(f"nonce {meta.nonce.hex()} minted by this verifier", {"nonce": meta.nonce.hex()})

    await checks.run("nonce.fresh", fresh)

    if b.report is None:
        st.missing(checks, "report", ("report.signer",), "no report.json in the bundle")
        return
    try:
        st.report = parse_report(b.report)
    except EvidenceError as exc:
        checks.record("report.signer", Status.FAIL, exc.reason, f"report.json: {exc.message}")
        return
    report = st.report
    # Signer under test: the signature's; else meta.json's; else the report's own (issue 3 §4).
    if st.signer is None:
        algo = st.algo or meta.signing_algo or report.signing_algo or "ecdsa"
        candidate = meta.signing_address or report.signing_address
        if candidate:
            try:
                st.signer, st.algo = normalize_signer(algo, candidate), algo
            except EvidenceError as exc:
                checks.record("report.signer", Status.FAIL, exc.reason, f"signing address: {exc.message}")
                return
        else:
            st.algo = algo
    if report.format is ReportFormat.CHUTES:
        # Chutes reports carry no signer (redpill-protocol §3.4): every instance is evidence, none is linked to a signature.
        st.attestations = report.attestations
        checks.record("report.signer", Status.INDETERMINATE, "not_applicable",
                      f"Chutes report: {len(report.attestations)} instances, no signing key to link a response signature to")
        return
    if st.signer is None:
        checks.record("report.signer", Status.INDETERMINATE, "no_signer", "no signature, no signing_address in meta.json and none in the report")
        return
    signer, algo = st.signer, st.algo or "ecdsa"

    def select() -> Passed:
        st.attestations = select_attestations(report, signing_address=signer, signing_algo=algo, model=meta.model,
                                              signature_kind=st.sig.kind if st.sig else None)
        paths = [a.path for a in st.attestations]
        return Passed(f"{report.format} report: {signer} ({algo}) attested at {', '.join(paths)}", {"format": str(report.format), "paths": paths})

    await checks.run("report.signer", select)


# ---------------------------------------------------------------- 3. TDX


_TDX = ("tdx.quote", "tdx.tcb", "tdx.binds_signer", "tdx.binds_nonce", "tdx.event_log", "tdx.app", "tdx.measurements", "tdx.debug")


async def _tdx_steps(checks: Checklist, st: _State, ctx: Context) -> None:
    if not st.attestations:
        for cid in _TDX:
            if checks.status(cid) is None:
                checks.skip(cid, "blocked", "no attestation selected for the signer")
        return
    pol = ctx.policy.tdx
    meta = st.bundle.meta
    quote_errors: list[tuple[str, Exception]] = []
    for att in st.attestations:
        try:
            st.quotes[att.path] = parse_quote(decode_quote_text(att.intel_quote))
        except EvidenceError as exc:
            quote_errors.append((att.path, exc))
    if quote_errors:
        path, error = quote_errors[0]
        for cid in _TDX:
            checks.record(cid, Status.FAIL, "malformed_evidence", f"{path}: quote does not parse: {error}")
        return
    st.claims["tdx"] = {path: q.to_json() for path, q in st.quotes.items()}

    results: dict[str, DcapResult] = {}
    collaterals: dict[str, Collateral] = {}

    async def quote_check() -> Passed:
        if ctx.quotes is None:
            raise Indeterminate("no dcap-qvl worker pool available", reason="dcap_worker_failed")
        errors: list[tuple[str, Exception]] = []
        for path, q in st.quotes.items():
            try:
                collaterals[path] = collateral = await _collateral_for(q, st, ctx)
                results[path] = await ctx.quotes.verify(q.raw, collateral.json_text, ctx.now, ctx.anchors.intel_root_ca_der)
                st.claims["tdx"][path]["dcap"] = {
                    "status": results[path].status, "advisory_ids": list(results[path].advisory_ids),
                    "tcb_eval_data_number": results[path].tcb_eval_data_number, "tcb_date": results[path].tcb_date,
                }
            except (CheckFailed, EvidenceError, Indeterminate, Skip) as exc:
                errors.append((path, exc))
        merge_failures(errors)
        statuses = sorted({r.status for r in results.values()})
        return Passed(f"quote verified by dcap-qvl at {ctx.now}: TCB {', '.join(statuses)}", {"tcb_status": statuses})

    await checks.run("tdx.quote", quote_check)

    def tcb() -> Passed:
        errors: list[tuple[str, Exception]] = []
        for path, result in results.items():
            try:
                appraise_tcb(
                    result, collaterals.get(path), now=ctx.now,
                    allowed_statuses=pol.allowed_tcb_statuses, advisory_allowlist=pol.advisory_allowlist,
                    rejected_advisories=pol.rejected_advisories, min_tcb_eval_data_number=pol.min_tcb_eval_data_number,
                    max_collateral_age=pol.max_collateral_age,
                )
            except (CheckFailed, Indeterminate) as exc:
                errors.append((path, exc))
        merge_failures(errors)
        r = next(iter(results.values()))
        return Passed(f"TCB {r.status}, advisories {list(r.advisory_ids) or 'none'}, eval #{r.tcb_eval_data_number}",
                      {"status": r.status, "advisory_ids": list(r.advisory_ids), "tcb_eval_data_number": r.tcb_eval_data_number})

    await checks.run("tdx.tcb", tcb, needs=("tdx.quote",))
    st.collateral_used.extend(c.to_record() for c in collaterals.values())

    def per_attestation(fn: Callable[[Attestation, TdxQuote], str]) -> Callable[[], Passed]:
        def run() -> Passed:
            errors: list[tuple[str, Exception]] = []
            messages = []
            for att in st.attestations:
                try:
                    messages.append(fn(att, st.quotes[att.path]))
                except (CheckFailed, EvidenceError, Indeterminate) as exc:
                    errors.append((att.path, exc))
            merge_failures(errors)
            return Passed("; ".join(dict.fromkeys(messages)))
        return run

    def binds_signer(att: Attestation, q: TdxQuote) -> str:
        rd = q.report.report_data
        if att.role == "instance":  # Chutes: report_data = sha256(nonce_hex || e2e_pubkey) (redpill-protocol §4)
            if not att.instance_nonce or not att.e2e_pubkey:
                raise EvidenceError("Chutes instance without nonce or e2e_pubkey")
            report_data.check_chutes_binding(rd, nonce_hex=att.instance_nonce, e2e_pubkey_b64=att.e2e_pubkey)
            return "report_data[0:32] = sha256(instance nonce || e2e_pubkey)"
        if st.signer is None:
            raise Indeterminate("no signer known", reason="no_signer")
        layout = report_data.check_binds_signer(rd, signing_algo=st.algo or "ecdsa", signing_address=st.signer,
                                                 tls_cert_fingerprint=att.tls_cert_fingerprint)
        return f"report_data[0:32] binds {st.signer} ({layout})"

    def binds_nonce(att: Attestation, q: TdxQuote) -> str:
        if meta.nonce is None:
            raise Indeterminate("no expected nonce in the bundle", reason="no_nonce")
        if att.role == "instance":
            # The quote binds the instance nonce; it must be ours (gateways have substituted their own, §3.4).
            claimed = (att.instance_nonce or "").lower()
            if not _ct_eq_hex(claimed, meta.nonce.hex()):
                raise CheckFailed(f"Chutes instance nonce {claimed} is not our nonce {meta.nonce.hex()}", reason="nonce_mismatch",
                                  details={"expected": meta.nonce.hex(), "got": claimed})
            report_data.check_chutes_binding(q.report.report_data, nonce_hex=claimed, e2e_pubkey_b64=att.e2e_pubkey or "")
            return f"instance nonce = our nonce {meta.nonce.hex()}"
        report_data.check_binds_nonce(q.report.report_data, meta.nonce)
        return f"report_data[32:64] = our nonce {meta.nonce.hex()}"

    await checks.run("tdx.binds_signer", per_attestation(binds_signer))
    await checks.run("tdx.binds_nonce", per_attestation(binds_nonce))

    events: dict[str, tuple[evlog.Event, ...]] = {}

    def event_log(att: Attestation, q: TdxQuote) -> str:
        if att.event_log is None:
            raise Indeterminate("the attestation carries no event log", reason="not_applicable")
        events[att.path] = evlog.parse_event_log(att.event_log)
        evlog.check_replay(events[att.path], q.report.rtmrs)
        return f"{len(events[att.path])} events replay to RTMR0-3"

    await checks.run("tdx.event_log", per_attestation(event_log))

    def app(att: Attestation, q: TdxQuote) -> str:
        evs = events[att.path]
        compose = evlog.check_compose(app_compose=att.app_compose, claimed_compose_hash=att.compose_hash, events=evs,
                                      mr_config_id=q.report.mr_config_id, quote_rtmr3=q.report.rtmrs[3])
        if pol.allowed["compose_hashes"] and compose not in pol.allowed["compose_hashes"]:
            raise CheckFailed(f"compose hash {compose.hex()} is not in the policy allow-list", reason="compose_hash_not_allowed",
                              details={"got": compose.hex(), "expected": sorted(h.hex() for h in pol.allowed["compose_hashes"])})
        app_id = evlog.runtime_event(evs, "app-id")
        if pol.app_ids:
            # a policy that pins app ids pins them for every model: a model it does not name is not allowed
            model = (att.model_name or meta.model or "").lower()
            allowed_ids = pol.app_ids.get(model, frozenset())
            if app_id is None or app_id not in allowed_ids:
                raise CheckFailed(f"app id {app_id.hex() if app_id else None} is not allowed for model {model or None!r}"
                                  + ("" if model in pol.app_ids else f" (the policy pins app ids for {sorted(pol.app_ids)} only)"),
                                  reason="app_id_not_allowed",
                                  details={"got": app_id.hex() if app_id else None, "expected": sorted(i.hex() for i in allowed_ids)})
        st.claims.setdefault("app", {})[att.path] = {"compose_hash": compose.hex(), "app_id": app_id.hex() if app_id else None}
        return f"compose hash {compose.hex()}" + (f", app id {app_id.hex()}" if app_id else "")

    await checks.run("tdx.app", per_attestation(app), needs=("tdx.event_log",))

    def measurements(att: Attestation, q: TdxQuote) -> str:
        r = q.report
        os_image = evlog.runtime_event(events.get(att.path, ()), "os-image-hash")
        values = {"mrtd": r.mr_td, "rtmr0": r.rtmrs[0], "rtmr1": r.rtmrs[1], "rtmr2": r.rtmrs[2], "mrseam": r.mr_seam, "os_image_hashes": os_image}
        checked = []
        for name, value in values.items():
            allowed = pol.allowed[name]
            if not allowed:
                continue
            if value is None or value not in allowed:
                raise CheckFailed(f"{name} {value.hex() if value else None} is not in the policy allow-list", reason="measurement_not_allowed",
                                  details={"field": name, "got": value.hex() if value else None, "expected": sorted(v.hex() for v in allowed)})
            checked.append(name)
        if not checked:
            raise Skip("the policy has no measurement allow-lists", reason="not_configured")
        return f"{', '.join(checked)} allowed"

    if any(pol.allowed[n] for n in ("mrtd", "rtmr0", "rtmr1", "rtmr2", "mrseam", "os_image_hashes")):
        await checks.run("tdx.measurements", per_attestation(measurements), needs=("tdx.event_log",))
    else:
        checks.skip("tdx.measurements", "not_configured", "the policy has no measurement allow-lists")

    def debug(att: Attestation, q: TdxQuote) -> str:
        attrs = q.report.td_attributes.hex()
        if q.report.debug and not pol.allow_debug:
            raise CheckFailed(f"TD attributes {attrs}: DEBUG bit set", reason="debug_td", details={"got": attrs})
        return f"TD attributes {attrs}: not a debug TD" if not q.report.debug else f"debug TD allowed by policy ({attrs})"

    await checks.run("tdx.debug", per_attestation(debug))


async def _collateral_for(q: TdxQuote, st: _State, ctx: Context) -> Collateral:
    fmspc, ca = pck_identity(q.pck_chain_pem)
    found = collateral_from_bundle({**st.bundle.collateral, **st.extra_collateral}, fmspc=fmspc)
    if found is not None:
        return found
    if ctx.collateral is None:
        raise Skip(f"no collateral for FMSPC {fmspc} in the bundle and fetching is off", reason="not_in_bundle")
    coll = await ctx.collateral.get(fmspc=fmspc, ca=ca, now=ctx.now)
    st.extra_collateral[f"tdx-{fmspc}.json"] = coll.json_text.encode()
    return coll


def _ct_eq_hex(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.lower().encode(), b.lower().encode())


# ---------------------------------------------------------------- 4. GPU


_GPU = ("gpu.nonce", "gpu.evidence", "gpu.nras")


async def _gpu_steps(checks: Checklist, st: _State, ctx: Context) -> None:
    if not st.attestations:
        for cid in _GPU:
            checks.skip(cid, "blocked", "no attestation selected for the signer")
        return
    meta = st.bundle.meta
    payloads: dict[str, tuple[Attestation, GpuPayload]] = {}
    parse_errors: list[tuple[str, Exception]] = []
    for att in st.attestations:
        try:
            if att.gpu_evidence is not None:
                payloads[att.path] = (att, parse_chutes_gpu_evidence(
                    att.gpu_evidence, nonce_hex=att.instance_nonce or "", e2e_pubkey_b64=att.e2e_pubkey))
            elif att.nvidia_payload is not None:
                payload = parse_nvidia_payload(att.nvidia_payload)
                if payload.evidence:
                    payloads[att.path] = (att, payload)
        except EvidenceError as exc:
            parse_errors.append((att.path, exc))
    if parse_errors:
        path, error = parse_errors[0]
        for cid in _GPU:
            checks.record(cid, Status.FAIL, "malformed_evidence", f"{path}: GPU evidence does not parse: {error}")
        return
    bare = [att.path for att in st.attestations if att.path not in payloads]
    if bare:
        # every attestation of the signer must show its GPUs: one that does not cannot be vouched for by another's
        message = (f"{', '.join(bare)} carr{'ies' if len(bare) == 1 else 'y'} no GPU evidence"
                   + (f" (while {', '.join(payloads)} do)" if payloads else ""))
        for cid in _GPU:
            checks.record(cid, Status.INDETERMINATE, "no_gpu_evidence", message, {"attestations": bare})
        return
    gpu_total = sum(len(p.evidence) for _, p in payloads.values())
    st.notes.append({
        "code": "gpu_cpu_binding_not_proven",
        "message": f"{gpu_total} GPU(s) attested, but nothing in the evidence proves they are attached to the attested CPU TEE "
                   "(the SPDM report is not bound to the TD; dstack #751, teep gpu_cpu_binding)",
    })
    if st.report is not None and st.report.gpu_evidence_remote:
        st.notes.append({
            "code": "gpu_evidence_remote",
            "message": "ACI legacy report: the GPU evidence was fetched from the upstream model node, another machine than the "
                       "attested gateway TD (redpill-protocol §3.3); it shows that some CC GPU answered our nonce, not that it served this response",
        })

    def expected_gpu_nonce(att: Attestation) -> bytes:
        assert meta.nonce is not None
        if att.role == "instance":  # Chutes derivation (redpill-protocol §5)
            return chutes_gpu_nonce(meta.nonce.hex(), att.e2e_pubkey or "")
        return meta.nonce

    def nonce_check() -> Passed:
        if meta.nonce is None:
            raise Indeterminate("no expected nonce in the bundle", reason="no_nonce")
        errors: list[tuple[str, Exception]] = []
        for path, (att, payload) in payloads.items():
            try:
                check_gpu_nonces(payload, expected_gpu_nonce(att))
            except (CheckFailed, EvidenceError) as exc:
                errors.append((path, exc))
        merge_failures(errors)
        return Passed(f"{gpu_total} GPU(s) answer our nonce")

    await checks.run("gpu.nonce", nonce_check)

    def appraise(gpus: list[VerifiedGpu], nras: NrasResult | None, *, expected_count: int | None) -> None:
        g = ctx.policy.gpu
        appraise_gpus(gpus, nras, hwmodel_allowlist=g.allowed_hwmodels, driver_allowlist=g.allowed_drivers, min_driver=g.min_driver,
                      vbios_allowlist=g.allowed_vbios, min_vbios=g.min_vbios, expected_count=expected_count)

    verified: list[VerifiedGpu] = []

    def evidence_check() -> Passed:
        errors: list[tuple[str, Exception]] = []
        for path, (_att, payload) in payloads.items():
            for ev in payload.evidence:
                try:
                    verified.append(verify_gpu(ev, root_pem=ctx.anchors.nvidia_device_root_pem, now=ctx.now))
                except (CheckFailed, EvidenceError, Indeterminate) as exc:
                    errors.append((f"{path} GPU-{ev.index}", exc))
        merge_failures(errors)
        appraise(verified, None, expected_count=ctx.policy.gpu.expected_count)
        models = sorted({v.hwmodel for v in verified})
        return Passed(f"{len(verified)} GPU(s) verified to the NVIDIA device root: {', '.join(models)}")

    await checks.run("gpu.evidence", evidence_check)
    st.claims["gpus"] = [v.to_json() for v in verified]

    nras_results: list[NrasResult] = []

    async def nras_check() -> Passed:
        if meta.nonce is None:
            raise Indeterminate("no expected nonce in the bundle", reason="no_nonce")
        errors: list[tuple[str, Exception]] = []
        for n, (path, (att, payload)) in enumerate(payloads.items()):
            name = "response.json" if n == 0 else f"response-{n}.json"
            try:
                body, jwks = await _nras_material(name, payload, st, ctx)

                def verify(jwks: dict[str, Any], body: bytes = body, att: Attestation = att, payload: GpuPayload = payload) -> NrasResult:
                    return verify_nras_response(
                        body, jwks=jwks, expected_nonce=expected_gpu_nonce(att), gpu_count=len(payload.evidence), now=ctx.now,
                        anchors=ctx.anchors, leeway=ctx.policy.gpu.nras_leeway,
                    )

                try:
                    nras_results.append(verify(jwks))
                except Indeterminate as exc:
                    if exc.reason != "nras_jwks_unavailable" or ctx.nras is None:
                        raise
                    # NRAS rotates keys about daily: refetch the JWKS once for the token's kid
                    jwks = await ctx.nras.jwks(exc.details.get("kid"))
                    st.extra_nras["jwks.json"] = json.dumps(jwks, sort_keys=True).encode()
                    nras_results.append(verify(jwks))
            except (CheckFailed, EvidenceError, Indeterminate, Skip) as exc:
                errors.append((path, exc))
        merge_failures(errors)
        for result in nras_results:  # NRAS's own view of each GPU must satisfy the GPU policy too (its count is checked above)
            appraise([], result, expected_count=None)
        return Passed(f"NRAS attests {gpu_total} GPU(s); token signatures verified")

    await checks.run("gpu.nras", nras_check)
    if nras_results:
        st.claims["nras"] = [r.to_json() for r in nras_results]


async def _nras_material(name: str, payload: GpuPayload, st: _State, ctx: Context) -> tuple[bytes, dict[str, Any]]:
    bundle_nras = {**st.bundle.nras, **st.extra_nras}
    body = bundle_nras.get(name)
    if body is None:
        if ctx.nras is None:
            raise Skip(f"no nras/{name} in the bundle and NRAS fetching is off", reason="not_in_bundle")
        body = await ctx.nras.attest(payload.nras_request)
        st.extra_nras[name] = body
    jwks_raw = bundle_nras.get("jwks.json")
    if jwks_raw is not None:
        try:
            jwks = json.loads(jwks_raw)
        except (ValueError, RecursionError):
            raise EvidenceError("nras/jwks.json is not JSON") from None
    elif ctx.nras is not None:
        jwks = await ctx.nras.jwks()
        st.extra_nras["jwks.json"] = json.dumps(jwks, sort_keys=True).encode()
    else:
        raise Skip("no nras/jwks.json in the bundle and NRAS fetching is off", reason="not_in_bundle")
    return body, jwks

