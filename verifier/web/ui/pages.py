"""The dashboard's pages: overview, the filtered list and its exports, one verdict, signers. All SQL runs on the
recorder's reader threads (``audit`` queries); the templates only format."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from verifier.adapters.ledger import audit
from verifier.app.records import UnknownVerdict
from verifier.web import inputs
from verifier.web.errors import SERVICES, bad_request
from verifier.web.ui.access import SIGNER, UI_KEY, UI_SESSION, banner, see_other
from verifier.web.ui.chart import daily_chart
from verifier.web.ui.export import stream
from verifier.web.ui.params import STATUSES, active, audit_filter, before, iso, query_of

EXPORT_COLUMNS = (
    "id",
    "created_at",
    "status",
    "model",
    "gateway",
    "signer",
    "trust_profile",
    "policy_id",
    "supersedes",
    "reasons",
)
_ADDRESS = frozenset("0123456789abcdefABCDEFx")


async def context(request: web.Request, **values: Any) -> dict[str, Any]:
    """What every page shows: who is logged in, the CSRF token for its forms, the trust-profile banner."""
    key, session = request.get(UI_KEY), request.get(UI_SESSION)
    csrf = request.app[SIGNER].csrf(session) if session is not None else ""
    return {"key": key, "csrf": csrf, "banner": await banner(request), "iso": iso, **values}


def _read(request: web.Request) -> Any:
    return request.app[SERVICES].recorder.read


async def overview(request: web.Request) -> web.Response:
    data = await _read(request)(audit.overview)
    subjects: dict[tuple[str, str], dict[str, int]] = {}
    for row in data["by_subject"]:
        subjects.setdefault((row["model"] or "", row["gateway"] or ""), {})[row["status"]] = row["n"]
    return aiohttp_jinja2.render_template(
        "overview.html",
        request,
        await context(
            request, data=data, chart=daily_chart(data["by_day"]), subjects=sorted(subjects.items()), statuses=STATUSES
        ),
    )


async def verifications(request: web.Request) -> web.Response:
    flt, cursor = audit_filter(request), before(request)
    limit = inputs.int_param(request, "limit", 1, audit.PAGE_MAX) or 50

    def read(ledger: audit.Ledger) -> tuple[list[dict[str, Any]], str | None, audit.Counts]:
        items, nxt = audit.page(ledger, flt, before=cursor, limit=limit)
        return items, nxt, audit.facets(ledger, flt)

    items, nxt, counts = await _read(request)(read)
    return aiohttp_jinja2.render_template(
        "verifications.html",
        request,
        await context(
            request,
            items=items,
            counts=counts,
            flt=flt,
            active=active(flt),
            query_of=query_of,
            next_query=query_of(flt, before=nxt) if nxt else None,
            export=query_of(flt),
            first=cursor is None,
        ),
    )


async def export(request: web.Request) -> web.StreamResponse:
    """Every verdict the URL's filter matches, as CSV or JSON, streamed in keyset pages (read on reader threads)."""
    flt = audit_filter(request)

    async def fetch(cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        items, nxt = await _read(request)(lambda ledger: audit.page(ledger, flt, before=cursor, limit=audit.PAGE_MAX))
        return [{**item, "created_at": iso(item["created_at"])} for item in items], nxt

    return await stream(request, request.match_info["fmt"], "verifications", EXPORT_COLUMNS, fetch)


async def verdict(request: web.Request) -> web.Response:
    verdict_id = inputs.verdict_id(request)
    record = await request.app[SERVICES].records.get(verdict_id)

    def read(ledger: audit.Ledger) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return audit.evidence_files(ledger, verdict_id), audit.supersedes_chain(ledger, verdict_id)

    files, chain = await _read(request)(read)
    claims = {name: json.dumps(value, indent=2, sort_keys=True) for name, value in (record.get("claims") or {}).items()}
    return aiohttp_jinja2.render_template(
        "verdict.html",
        request,
        await context(
            request,
            v=record,
            files=files,
            chain=chain,
            claims=claims,
            checks=[_check_row(c) for c in record.get("checks") or []],
        ),
    )


def _shown(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _check_row(check: dict[str, Any]) -> dict[str, Any]:
    details = dict(check.get("details") or {})
    expected, got = details.pop("expected", None), details.pop("got", None)
    return {
        **check,
        "expected": _shown(expected),
        "got": _shown(got),
        "details": {k: _shown(v) for k, v in details.items()},
    }


async def bundle(request: web.Request) -> web.Response:
    verdict_id = inputs.verdict_id(request)
    found, _ = await request.app[SERVICES].records.export(verdict_id)
    return web.Response(
        body=found.to_zip(),
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{verdict_id}.zip"'},
    )


async def reverify(request: web.Request) -> web.Response:
    """The admin form: re-evaluate the stored bundle now (offline, current policy); go to the new verdict."""
    verdict_id = inputs.verdict_id(request)
    new = await request.app[SERVICES].records.reverify(verdict_id, submitted_by=request[UI_KEY].id)
    return see_other(f"/ui/verifications/{new['id']}")


async def signers(request: web.Request) -> web.Response:
    items = await _read(request)(audit.signers)
    return aiohttp_jinja2.render_template(
        "signers.html", request, await context(request, items=items, sample=audit.SAMPLE)
    )


async def signer(request: web.Request) -> web.Response:
    address = request.match_info["address"]
    if not 0 < len(address) <= 130 or not set(address) <= _ADDRESS:
        raise bad_request("address", "address: a 0x… ecdsa address or a hex ed25519 key")
    found = await _read(request)(lambda ledger: audit.signer(ledger, address))
    if found is None:
        raise UnknownVerdict(f"signed by {address}")
    return aiohttp_jinja2.render_template("signer.html", request, await context(request, s=found))


async def stylesheet(request: web.Request) -> web.Response:
    text = resources.files("verifier.web.ui").joinpath("static/ui.css").read_text()
    return web.Response(text=text, content_type="text/css", headers={"Cache-Control": "max-age=300"})
