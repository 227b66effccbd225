"""Stage 2: the report, the signer under test, and the attestations that must vouch for it.

The signer under test is the signature's; else meta.json's ``signing_address``; else the report's own. A
response signed by the gateway of a NEAR two-layer report is served behind that gateway: the model
attestations in the same report for the requested model are verified too (the "hops"), when the policy
allows it. Chutes reports link no key to a signature: their instances are verified as evidence only.
"""

from __future__ import annotations

from collections.abc import Mapping

from verifier.appraise.policy import Policy
from verifier.core.errors import EvidenceError, Indeterminate, Skip, VerifierError
from verifier.evidence.bundle import Bundle
from verifier.evidence.report import Attestation, Report, ReportFormat, parse_report, select_attestations
from verifier.evidence.signature import normalize_signer
from verifier.verify.results import Outcome, Selection, SignatureFacts, attempt, failed


def select(
    bundle: Bundle,
    sig: SignatureFacts,
    policy: Policy,
    names: frozenset[str],
    fetch_errors: Mapping[str, VerifierError],
) -> Selection:
    meta = bundle.meta
    parsed = sig.signature.value
    signer: str | None = None
    algo = parsed.signing_algo if parsed else None
    if parsed is not None:
        try:
            signer = normalize_signer(parsed.signing_algo, parsed.signing_address)
        except EvidenceError:
            signer = None

    def empty(error: VerifierError, report: Outcome[Report] | None = None) -> Selection:
        return Selection(
            report=report or failed(error),
            attestations=failed(error),
            candidates=(),
            signer=signer,
            algo=algo,
            names=names,
        )

    if bundle.report is None:
        return empty(fetch_errors.get("report") or Skip("no report.json in the bundle", reason="not_in_bundle"))
    report_outcome = attempt(lambda: parse_report(bundle.report or b""))
    if report_outcome.value is None:
        err = report_outcome.error
        assert err is not None
        return empty(EvidenceError(f"report.json: {err.message}", reason=err.reason))
    report = report_outcome.value
    if len(report.attestations) > policy.max_attestations:
        return empty(
            EvidenceError(
                f"report.json: {len(report.attestations)} attestations, more than the policy's "
                f"cap attestation.max_attestations = {policy.max_attestations}"
            ),
            report_outcome,
        )
    if signer is None:
        algo = algo or meta.signing_algo or report.signing_algo or "ecdsa"
        candidate = meta.signing_address or report.signing_address
        if candidate:
            try:
                signer = normalize_signer(algo, candidate)
            except EvidenceError as exc:
                return empty(EvidenceError(f"signing address: {exc.message}"), report_outcome)
    if report.format is ReportFormat.CHUTES:
        why = Indeterminate(
            f"Chutes report: {len(report.attestations)} instances, no signing key to link a response signature to",
            reason="not_applicable",
        )
        return Selection(
            report=report_outcome,
            attestations=failed(why),
            candidates=report.attestations,
            signer=signer,
            algo=algo,
            names=names,
        )
    if signer is None:
        return empty(
            Indeterminate("no signature, no signing_address in meta.json and none in the report", reason="no_signer"),
            report_outcome,
        )
    resolved_algo = algo or "ecdsa"
    chosen = attempt(
        lambda: select_attestations(
            report,
            signing_address=signer or "",
            signing_algo=resolved_algo,
            models=names or None,
            signature_kind=parsed.kind if parsed else None,
        )
    )
    hops = _hops(report, chosen.value or (), names) if policy.allow_gateway_hop else ()
    return Selection(
        report=report_outcome,
        attestations=chosen,
        candidates=(chosen.value or ()) + hops,
        signer=signer,
        algo=resolved_algo,
        hops=hops,
        names=names,
    )


def _hops(report: Report, chosen: tuple[Attestation, ...], names: frozenset[str]) -> tuple[Attestation, ...]:
    """The model attestations a gateway signer vouches for: NEAR two-layer, gateway role only, requested model."""
    if report.format is not ReportFormat.NEAR_TWO_LAYER or not chosen or any(a.role != "gateway" for a in chosen):
        return ()
    return tuple(
        a
        for a in report.attestations
        if a.role == "model" and a.model_name is not None and a.model_name.lower() in names
    )
