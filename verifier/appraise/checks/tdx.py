"""Checks over each TDX quote: dcap-qvl's verification, the TCB, report_data bindings, the event log, debug."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import partial

from verifier.appraise.registry import Appraisal, Passed, check, each
from verifier.appraise.tcb import appraise_tcb
from verifier.core.errors import CheckFailed, EvidenceError, Indeterminate, Skip
from verifier.evidence import event_log as evlog
from verifier.evidence import report_data
from verifier.verify.results import Facts, TdxFacts


def over_quotes(f: Facts, rule: Callable[[TdxFacts], str]) -> Passed:
    """Apply ``rule`` to every verified attestation (the signer's and the hops)."""
    if not f.tdx:
        raise Skip("no attestation was selected for the signer", reason="blocked")
    return each([(t.attestation.path, partial(rule, t)) for t in f.tdx])


@check("tdx.quote", "the TDX quote verifies to Intel's root with valid collateral (dcap-qvl)", reuse=True)
def tdx_quote(f: Facts, a: Appraisal) -> Passed:
    def rule(t: TdxFacts) -> str:
        t.quote.get()
        t.collateral.get()
        return f"TCB {t.dcap.get().status}"

    passed = over_quotes(f, rule)
    return Passed(f"quote verified by dcap-qvl at {f.now}: {passed.message}")


@check("tdx.tcb", "the platform TCB status and advisories are allowed by policy", needs=("tdx.quote",))
def tdx_tcb(f: Facts, a: Appraisal) -> Passed:
    p = a.policy.tdx

    def rule(t: TdxFacts) -> str:
        result = t.dcap.get()
        appraise_tcb(
            result,
            t.collateral.value,
            now=f.now,
            allowed_statuses=p.allowed_tcb_statuses,
            advisory_allowlist=p.advisory_allowlist,
            rejected_advisories=p.rejected_advisories,
            min_tcb_eval_data_number=p.min_tcb_eval_data_number,
            max_collateral_age=p.max_collateral_age,
        )
        advisories = f" (advisories {', '.join(result.advisory_ids)})" if result.advisory_ids else ""
        return f"TCB {result.status}{advisories} allowed"

    return over_quotes(f, rule)


@check(
    "tdx.binds_signer",
    "the quote's report_data binds the signing key",
    needs=("tdx.quote",),
    rests_on=("report.signer",),
    reuse=True,
)
def tdx_binds_signer(f: Facts, a: Appraisal) -> Passed:
    sel = f.selection
    hops = {h.path for h in sel.hops}

    def rule(t: TdxFacts) -> str:
        att, rd = t.attestation, t.quote.get().report.report_data
        if att.role == "instance":  # Chutes: report_data = sha256(instance nonce hex || e2e pubkey b64)
            if not att.instance_nonce or not att.e2e_pubkey:
                raise EvidenceError("Chutes instance without nonce or e2e_pubkey")
            report_data.check_chutes_binding(rd, nonce_hex=att.instance_nonce, e2e_pubkey_b64=att.e2e_pubkey)
            return "report_data[0:32] = sha256(instance nonce || e2e_pubkey)"
        # a hop (a model attestation behind the attested gateway) binds its own key; every other one the signer's
        signer, algo = (att.signer(), att.algo) if att.path in hops else (sel.signer, sel.algo or "ecdsa")
        if signer is None:
            raise Indeterminate("no signer known", reason="no_signer")
        layout = report_data.check_binds_signer(
            rd, signing_algo=algo, signing_address=signer, tls_cert_fingerprint=att.tls_cert_fingerprint
        )
        return f"report_data[0:32] binds {signer} ({layout})"

    return over_quotes(f, rule)


@check(
    "tdx.binds_nonce",
    "the quote's report_data binds our nonce",
    needs=("tdx.quote",),
    rests_on=("report.signer",),
    reuse=True,
)
def tdx_binds_nonce(f: Facts, a: Appraisal) -> Passed:
    nonce = f.bundle.meta.nonce
    if nonce is None:
        raise Indeterminate("no expected nonce in the bundle", reason="no_nonce")

    def rule(t: TdxFacts) -> str:
        att, rd = t.attestation, t.quote.get().report.report_data
        if att.role == "instance":
            # the quote binds the instance nonce; it must be ours (gateways have substituted their own)
            claimed = (att.instance_nonce or "").lower()
            if not hmac.compare_digest(claimed.encode("ascii", "replace"), nonce.hex().encode()):
                raise CheckFailed(
                    f"Chutes instance nonce {claimed} is not our nonce {nonce.hex()}",
                    reason="nonce_mismatch",
                    details={"expected": nonce.hex(), "got": claimed},
                )
            report_data.check_chutes_binding(rd, nonce_hex=claimed, e2e_pubkey_b64=att.e2e_pubkey or "")
            return f"instance nonce = our nonce {nonce.hex()}"
        report_data.check_binds_nonce(rd, nonce)
        return f"report_data[32:64] = our nonce {nonce.hex()}"

    return over_quotes(f, rule)


@check("tdx.event_log", "the event log replays to the quote's RTMR0-3", needs=("tdx.quote",))
def tdx_event_log(f: Facts, a: Appraisal) -> Passed:
    def rule(t: TdxFacts) -> str:
        if t.attestation.event_log is None:
            raise Indeterminate("the attestation carries no event log", reason="not_applicable")
        events = t.events.get()
        evlog.check_replay(events, t.quote.get().report.rtmrs)
        return f"{len(events)} events replay to RTMR0-3"

    return over_quotes(f, rule)


@check("tdx.debug", "the TD is not a debug TD", needs=("tdx.quote",))
def tdx_debug(f: Facts, a: Appraisal) -> Passed:
    def rule(t: TdxFacts) -> str:
        r = t.quote.get().report
        attrs = r.td_attributes.hex()
        if r.debug and not a.policy.tdx.allow_debug:
            raise CheckFailed(f"TD attributes {attrs}: DEBUG bit set", reason="debug_td", details={"got": attrs})
        return f"TD attributes {attrs}: not a debug TD" if not r.debug else f"debug TD allowed by policy ({attrs})"

    return over_quotes(f, rule)
