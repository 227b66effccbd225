"""Checks over the report as a whole: which attestations vouch for the signer, the model, the nonce's origin."""

from __future__ import annotations

from verifier.appraise.registry import Appraisal, Passed, check
from verifier.core.errors import CheckFailed, Indeterminate
from verifier.core.model import NonceOrigin
from verifier.verify.results import Facts


@check("report.signer", "the report holds an attestation for this signer, algo and model", reuse=True)
def report_signer(f: Facts, a: Appraisal) -> Passed:
    sel = f.selection
    report = sel.report.get()
    attestations = sel.attestations.get()
    paths = [x.path for x in attestations]
    message = f"{report.format} report: {sel.signer} ({sel.algo}) attested at {', '.join(paths)}"
    if sel.hops:
        message += f"; served behind it by {', '.join(h.path for h in sel.hops)} (model attestations for the model)"
    return Passed(message, {"format": str(report.format), "paths": paths, "hops": [h.path for h in sel.hops]})


@check(
    "model.binding",
    "the model named by the signed text and the attestations is the requested model (or an alias)",
    needs=("signature.valid", "report.signer"),
)
def model_binding(f: Facts, a: Appraisal) -> Passed:
    """Every model name the evidence states must be one of the requested model's names.

    The signed text's model part (3-part texts) is covered by the verified signature; an attestation's
    ``model_name`` is a claim of the report. A name outside the alias set is a substitution: ``model_mismatch``.
    """
    sel, requested = f.selection, f.bundle.meta.model
    if not requested:
        raise Indeterminate("the bundle names no requested model: nothing to bind", reason="model_not_requested")
    names = sel.names
    stated: list[tuple[str, str]] = []
    signed_model = f.signature.signature.get().signed.model
    if signed_model is not None:
        stated.append(("signed_text", signed_model))
    stated += [(f"attestation {x.path}", x.model_name) for x in sel.candidates if x.model_name]
    wrong = [(where, name) for where, name in stated if name.lower() not in names]
    if wrong:
        raise CheckFailed(
            f"{'; '.join(f'{where} names {name!r}' for where, name in wrong)}: not the requested model {requested!r}"
            f" or its aliases {sorted(names - {requested.lower()})}",
            reason="model_mismatch",
            details={"expected": sorted(names), "got": [n for _, n in wrong]},
        )
    if not stated:
        return Passed(
            f"nothing in the signature or the report names a model; {requested!r} is bound only by a "
            "pinned app identity, if any (see tdx.app)",
            {"stated": []},
        )
    return Passed(
        f"{', '.join(sorted({w for w, _ in stated}))} name{'s' if len(stated) == 1 else ''} "
        f"{', '.join(sorted({n for _, n in stated}))} (requested {requested!r})",
        {"stated": [{"by": w, "model": n} for w, n in stated]},
    )


@check("nonce.fresh", "the nonce bound by the report was minted by this verifier", needs=("report.signer",), reuse=True)
def nonce_fresh(f: Facts, a: Appraisal) -> Passed:
    meta = f.bundle.meta
    if meta.nonce is None:
        raise Indeterminate("no nonce in the bundle: freshness and binding cannot be shown", reason="no_nonce")
    if meta.nonce_origin is not NonceOrigin.MINTED:
        raise Indeterminate(
            f"nonce {meta.nonce.hex()} was supplied, not minted by this verifier: freshness is not proven",
            reason="nonce_not_minted",
        )
    if meta.reused_from is not None:
        # a reused attestation is fresh only within the policy's window, counted from the original fetch to the
        # capture of this exchange (not to now: a later re-verification judges the same interval)
        end = meta.captured_at if meta.captured_at is not None else f.now
        age = end - meta.report_fetched_at if meta.report_fetched_at is not None else None
        if age is None or not 0 <= age <= a.policy.max_attestation_age:
            raise Indeterminate(
                f"the attestation was reused from verdict {meta.reused_from}, fetched {age} s before this exchange; "
                f"the policy allows {a.policy.max_attestation_age} s (attestation.max_attestation_age)",
                reason="reused_attestation",
                details={"got": age, "expected": f"0..{a.policy.max_attestation_age}", "reused_from": meta.reused_from},
            )
    return Passed(f"nonce {meta.nonce.hex()} minted by this verifier", {"nonce": meta.nonce.hex()})
