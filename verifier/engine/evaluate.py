"""Evaluate one evidence bundle into a verdict — the offline core every entry point shares.

The online pipeline gathers a bundle (exact bytes, signature, a report bound to a nonce we minted) and calls
``evaluate``; ``verify-bundle`` calls it on a bundle from disk; re-verification calls it on a recorded bundle.
It reads top-down as the checklist:

 1. the signature: parsed, then verified off the loop                 signature.valid, request.hash, response.hash
 2. the report: the signer under test and its attestations (+ hops)   report.signer, model.binding, nonce.fresh
 3. per attestation, the TDX quote: collateral, dcap-qvl, event log   tdx.quote, tdx.tcb, tdx.binds_*, tdx.event_log,
                                                                      tdx.app, tdx.measurements, tdx.os_image, tdx.debug
 4. per attestation, the GPUs: SPDM to NVIDIA's root, NRAS tokens     gpu.evidence, gpu.nonce, gpu.nras
 5. appraise: walk the check registry against the policy and refs
 6. the verdict (default-deny), and the bundle plus what was fetched (the evidence to keep)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from verifier.appraise.registry import Appraisal
from verifier.core.errors import VerifierError
from verifier.core.verdict import Verdict
from verifier.engine.checklist import appraise
from verifier.engine.context import CollateralProvider, Context, NrasProvider
from verifier.engine.gpus import FetchedNras, verify_gpus
from verifier.engine.quotes import FetchedCollateral, verify_quotes
from verifier.engine.selection import select
from verifier.engine.signatures import verify_signature_stage
from verifier.engine.verdict import build_verdict
from verifier.evidence.bundle import Bundle
from verifier.verify.results import Facts

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
) -> Evaluation:
    """``fetch_errors``: why a part is missing when the pipeline could not fetch it ("signature", "report").
    ``fetched_now``: the report was fetched by this verifier just now with the bundle's freshly minted nonce.
    ``supersedes``: the verdict this evaluation re-verifies (its evidence is recorded, never fetched now)."""
    started = time.perf_counter()
    facts, kept = await gather(bundle, ctx, fetch_errors=fetch_errors)  # 1-4
    results = appraise(facts, Appraisal(policy=ctx.policy, refs=ctx.refs))  # 5
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
    facts = Facts(bundle=bundle, now=ctx.now, signature=signature, selection=selection, tdx=tdx, gpus=gpus)
    kept = replace(bundle, collateral={**bundle.collateral, **collateral.files}, nras={**bundle.nras, **nras.files})
    return facts, kept


def _names(bundle: Bundle, ctx: Context) -> frozenset[str]:
    model = bundle.meta.model
    if not model:
        return frozenset()
    names = ctx.policy.names_for(model)
    if ctx.refs is not None:
        names |= ctx.refs.names_for(model)
    return names
