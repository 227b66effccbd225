"""Stage 3: every attestation's TDX quote — parsed, matched to Intel collateral, verified by dcap-qvl.

Collateral comes from the bundle (matched by the PCK certificate's FMSPC) or, when the context can fetch,
from Intel PCS / a PCCS (kept for the evidence bundle). The event log is parsed here; its replay against the
quote's RTMRs is judged by ``tdx.event_log``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import partial

from verifier.core.errors import Indeterminate, Skip
from verifier.core.model import Severity
from verifier.core.ports import DcapResult
from verifier.engine.context import Context
from verifier.evidence import event_log as evlog
from verifier.evidence.bundle import Bundle
from verifier.evidence.collateral import Collateral, collateral_from_bundle, parse_bundle_file
from verifier.evidence.pck import pck_identity
from verifier.evidence.quote import TdxQuote, decode_quote_text, parse_quote
from verifier.evidence.report import Attestation
from verifier.verify.memo import remembered
from verifier.verify.pck_chain import check_chain_root
from verifier.verify.results import Outcome, Selection, TdxFacts, attempt, attempt_async, failed


@dataclass(slots=True)
class FetchedCollateral:
    """Collateral this evaluation fetched, by bundle file name: it becomes part of the kept evidence."""

    files: dict[str, bytes] = field(default_factory=dict)


async def verify_quotes(
    selection: Selection, bundle: Bundle, ctx: Context, fetched: FetchedCollateral
) -> tuple[TdxFacts, ...]:
    parsed = [(att, attempt(partial(_parse, att))) for att in selection.candidates]
    collaterals = [await _collateral(q, bundle, ctx, fetched) for _, q in parsed]  # one fetch per FMSPC

    async def dcap(q: Outcome[TdxQuote], c: Outcome[Collateral]) -> Outcome[DcapResult]:
        if q.value is None or c.value is None:
            return failed(q.error or c.error)  # type: ignore[arg-type]
        if ctx.quotes is None or ctx.policy.severity("tdx.quote") is Severity.OFF:
            return failed(Indeterminate("no dcap-qvl worker pool available", reason="dcap_worker_failed"))
        quotes, quote, coll = ctx.quotes, q.value, c.value

        async def run() -> DcapResult:
            check_chain_root(quote.pck_chain_pem, ctx.anchors.intel_root_ca_der)
            return await quotes.verify(quote.raw, coll.json_text, ctx.now, ctx.anchors.intel_root_ca_der)

        return await attempt_async(run)

    results = await asyncio.gather(*(dcap(q, c) for (_, q), c in zip(parsed, collaterals, strict=True)))
    return tuple(
        TdxFacts(attestation=att, quote=q, collateral=c, dcap=d, events=_events(att))
        for (att, q), c, d in zip(parsed, collaterals, results, strict=True)
    )


async def _collateral(
    q: Outcome[TdxQuote], bundle: Bundle, ctx: Context, fetched: FetchedCollateral
) -> Outcome[Collateral]:
    if q.value is None:
        return failed(q.error)  # type: ignore[arg-type]
    quote = q.value

    async def find() -> Collateral:
        fmspc, ca = remembered(ctx.memo.pck if ctx.memo else None, pck_identity)(quote.pck_chain_pem)
        parse = remembered(ctx.memo.collateral if ctx.memo else None, parse_bundle_file)
        found = collateral_from_bundle({**bundle.collateral, **fetched.files}, fmspc=fmspc, parse=parse)
        if found is not None:
            return found
        if ctx.collateral is None:
            raise Skip(f"no collateral for FMSPC {fmspc} in the bundle and fetching is off", reason="not_in_bundle")
        coll = await ctx.collateral.get(fmspc=fmspc, ca=ca, now=ctx.now)
        fetched.files[f"tdx-{fmspc}.json"] = coll.json_text.encode()
        return coll

    return await attempt_async(find)


def _parse(att: Attestation) -> TdxQuote:
    return parse_quote(decode_quote_text(att.intel_quote))


def _events(att: Attestation) -> Outcome[tuple[evlog.Event, ...]]:
    if att.event_log is None:
        return failed(Indeterminate("the attestation carries no event log", reason="not_applicable"))
    return attempt(lambda: evlog.parse_event_log(att.event_log))
