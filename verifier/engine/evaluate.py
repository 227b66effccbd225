"""Evaluate one evidence bundle into a verdict — the offline core every entry point shares.

The online pipeline gathers a bundle (exact bytes, signature, a report bound to a nonce we minted) and calls
``evaluate``; ``verify-bundle`` calls it on a bundle from disk; re-verification calls it on a recorded bundle.
It reads top-down as the checklist:

 1. the signature: parsed, then verified off the loop                 signature.valid, request.hash, response.hash
 2. the report: the signer under test and its attestations (+ hops)   report.signer, model.binding, nonce.fresh
 3. per attestation, the TDX quote: collateral, dcap-qvl, event log   tdx.quote, tdx.tcb, tdx.binds_*, tdx.event_log,
                                                                      tdx.app, tdx.measurements, tdx.os_image, tdx.debug
 4. per attestation, the GPUs: SPDM to NVIDIA's root, NRAS tokens     gpu.evidence, gpu.nonce, gpu.nras
    and the observed TLS peers (tls.json)                             tls.binds_peer
 5. appraise: walk the check registry against the policy and refs (a re-appraisal never upgrades an observer check)
 6. the verdict (default-deny), and the bundle plus what was fetched (the evidence to keep)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from verifier.appraise.registry import Appraisal
from verifier.core.errors import Skip, VerifierError
from verifier.core.model import CheckResult
from verifier.core.verdict import Verdict
from verifier.engine.ceiling import no_upgrade
from verifier.engine.checklist import appraise
from verifier.engine.context import CollateralProvider, Context, NrasProvider
from verifier.engine.gpus import FetchedNras, verify_gpus
from verifier.engine.quotes import FetchedCollateral, verify_quotes
from verifier.engine.selection import select
from verifier.engine.signatures import verify_signature_stage
from verifier.engine.verdict import build_verdict
from verifier.evidence.bundle import Bundle
from verifier.evidence.tls_observation import TlsObservations, parse_tls_json
from verifier.verify.results import Facts, Outcome, attempt, failed

__all__ = ["CollateralProvider", "Context", "Evaluation", "NrasProvider", "evaluate", "gather"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    verdict: Verdict
    bundle: Bundle  # the input bundle plus what was fetched (collateral, NRAS) — the evidence to keep


async def evaluate(
    bundle: Bundle,
    ctx: Context,
    *,
    fetch_errors: Mapping[str, VerifierError] | None = None,
    fetched_now: bool = False,
    supersedes: str | None = None,
    observed_now: bool = False,
    prior: Mapping[str, CheckResult] | None = None,
) -> Evaluation:
    """``fetch_errors``: why a part is missing when the pipeline could not fetch it ("signature", "report").
    ``fetched_now``: the report was fetched by this verifier just now with the bundle's freshly minted nonce.
    ``supersedes``: the verdict this evaluation re-verifies (its evidence is recorded, never fetched now).
    ``observed_now``: the bundle's tls.json was observed by this process just now (the online pipeline).
    ``prior``: the check rows of the verdict this re-appraisal re-checks; observer checks are never upgraded."""
    started = time.perf_counter()
    facts, kept = await gather(bundle, ctx, fetch_errors=fetch_errors)  # 1-4
    facts = replace(facts, tls_live=observed_now and supersedes is None)
    results = appraise(facts, Appraisal(policy=ctx.policy, refs=ctx.refs))  # 5
    results = no_upgrade(results, prior, prior_id=supersedes)
    origin = "reused" if bundle.meta.reused_from else "fetched" if fetched_now and supersedes is None else "recorded"
    verdict = build_verdict(facts, results, ctx, origin=origin, supersedes=supersedes, started=started)  # 6
    return Evaluation(verdict=verdict, bundle=kept)


async def gather(
    bundle: Bundle, ctx: Context, *, fetch_errors: Mapping[str, VerifierError] | None = None
) -> tuple[Facts, Bundle]:
    """Stages 1-4: parse and verify everything the checks judge. Returns the typed facts and the bundle plus what
    was fetched on the way (collateral, NRAS answers)."""
    errors = dict(fetch_errors or {})
    names = _names(bundle, ctx)
    signature = await verify_signature_stage(bundle, errors, ctx.cpu)  # 1
    selection = select(bundle, signature, ctx.policy, names, errors)  # 2
    collateral, nras = FetchedCollateral(), FetchedNras()
    tdx = await verify_quotes(selection, bundle, ctx, collateral)  # 3
    gpus = await verify_gpus(selection, bundle, ctx, nras)  # 4
    facts = Facts(
        bundle=bundle, now=ctx.now, signature=signature, selection=selection, tdx=tdx, gpus=gpus, tls=_tls(bundle)
    )
    kept = replace(bundle, collateral={**bundle.collateral, **collateral.files}, nras={**bundle.nras, **nras.files})
    return facts, kept


def _tls(bundle: Bundle) -> Outcome[TlsObservations]:
    if bundle.tls is None:
        return failed(Skip("the bundle holds no tls.json: no TLS peer was observed", reason="not_in_bundle"))
    raw = bundle.tls
    return attempt(lambda: parse_tls_json(raw))


def _names(bundle: Bundle, ctx: Context) -> frozenset[str]:
    model = bundle.meta.model
    if not model:
        return frozenset()
    names = ctx.policy.names_for(model)
    if ctx.refs is not None:
        names |= ctx.refs.names_for(model)
    return names
