from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlite_utils
from aiohttp import web

from verifier.adapters.collateral_cache import CollateralCache, SqliteCollateralStore
from verifier.adapters.pcs import PcsClient
from verifier.core.errors import EvidenceError, UpstreamError
from verifier.evidence.collateral import Collateral, collateral_from_bundle, parse_bundle_file
from verifier.simulator.pcs import add_pcs_routes
from verifier.verify.memo import VerificationMemo, remembered

FIX = Path(__file__).resolve().parent.parent / "fixtures"
TDX = FIX / "tdx"
MANIFEST = [c for c in json.loads((TDX / "manifest.json").read_text())["cases"] if not c["id"].startswith("neg-")]
BY_COLLATERAL = {c["collateral"]: c for c in reversed(MANIFEST)}  # first case naming each collateral file
EVAL_NUMBER = {"dcap-qvl-samples/tdx_quote_outdated_collateral.json": 18}  # PROVENANCE (that case fails before claims)
JUNE10 = "collateral/intel-pcs-tdx-90c06f-20260610.json"
JUNE29 = "collateral/intel-pcs-tdx-90c06f-20260629.json"
NOW_JUNE10 = 1781056157  # manifest verify_at of the June-10 captures
RAW_JUNE10 = FIX / "redpill" / "attestation" / "phala-flat-ecdsa-nanogpt-gemma-20260610" / "intel_collateral"


def text(rel: str) -> str:
    return (TDX / rel).read_text()


def unix(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize("rel", sorted(BY_COLLATERAL))
def test_parse_real_collateral_matches_manifest(rel: str) -> None:
    case = BY_COLLATERAL[rel]
    c = Collateral.parse(text(rel), source="bundle")
    pieces = case["collateral_window"]["pieces"]
    assert c.fmspc == case["fmspc"]
    assert c.tcb_eval_data_number == EVAL_NUMBER.get(rel) or case["claims_summary"]["tcb"]["eval_data_number"]
    assert (c.tcb_info_issue_date, c.tcb_info_next_update) == (
        unix(pieces["tcb_info"]["from"]),
        unix(pieces["tcb_info"]["to"]),
    )
    assert (c.qe_identity_issue_date, c.qe_identity_next_update) == (
        unix(pieces["qe_identity"]["from"]),
        unix(pieces["qe_identity"]["to"]),
    )
    assert c.tcb_id == case["type"]
    assert c.valid_at(case["verify_at"]) or case["verify_at"] == c.next_update  # dcap-qvl accepts now == nextUpdate


def test_record_and_validity_window() -> None:
    c = Collateral.parse(text(JUNE10), source="pcs")
    record = c.to_record()
    assert json.loads(json.dumps(record)) == record
    assert record == {
        "fmspc": "90C06F000000",
        "source": "pcs",
        "sha256": c.sha256,
        "tcb_id": "TDX",
        "tcb_type": 0,
        "tcb_eval_data_number": 19,
        "tcb_info_issue_date": unix("2026-06-10T00:56:35+00:00"),
        "tcb_info_next_update": unix("2026-07-10T00:56:35+00:00"),
        "qe_identity_issue_date": unix("2026-06-10T00:36:28+00:00"),
        "qe_identity_next_update": unix("2026-07-10T00:36:28+00:00"),
    }
    assert c.issued_at == c.tcb_info_issue_date and c.next_update == c.qe_identity_next_update
    assert (
        not c.valid_at(c.issued_at - 1)
        and c.valid_at(c.issued_at)
        and c.valid_at(c.next_update - 1)
        and not c.valid_at(c.next_update)
    )


def _edit(rel: str, **changes: Any) -> str:
    doc = json.loads(text(rel))
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            sub = json.loads(doc[outer])
            sub[inner] = value
            doc[outer] = json.dumps(sub)
        elif value is None:
            del doc[key]
        else:
            doc[key] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        (_edit(JUNE10, pck_crl=None), "'pck_crl' is missing"),
        (_edit(JUNE10, tcb_info_signature=12), "'tcb_info_signature' is int"),
        (_edit(JUNE10, root_ca_crl="zz"), "'root_ca_crl' is not hex"),
        (_edit(JUNE10, tcb_info="{"), "tcb_info is not JSON"),
        (_edit(JUNE10, qe_identity="[]"), "qe_identity is a JSON list"),
        (_edit(JUNE10, **{"tcb_info.issueDate": "yesterday"}), "issueDate 'yesterday' is not an ISO 8601 date"),
        (_edit(JUNE10, **{"qe_identity.nextUpdate": "2026-07-10T00:36:28"}), "no time zone"),
        (_edit(JUNE10, **{"tcb_info.tcbEvaluationDataNumber": "19"}), "tcbEvaluationDataNumber is '19', expected int"),
        (_edit(JUNE10, **{"tcb_info.fmspc": "90C06F"}), "fmspc is '90C06F'"),
    ],
)
def test_parse_errors_name_the_field(bad: str, message: str) -> None:
    with pytest.raises(EvidenceError, match=message):
        Collateral.parse(bad, source="bundle")


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_edit(JUNE10, **{"tcb_info.id": "\udc00"}), r"collateral: tcb_info: \$\.id: a string holds a lone UTF-16"),
        (_edit(JUNE10, qe_identity_signature="\ud800"), r"collateral: \$\.qe_identity_signature: a string holds"),
        (
            _edit(JUNE10, **{"tcb_info.tcbLevels": _nested(40)}),
            r"collateral: tcb_info: \$\.tcbLevels.*: nested deeper than",
        ),
    ],
)
def test_a_lone_surrogate_or_deep_nesting_in_collateral_is_malformed_evidence(bad: str, message: str) -> None:
    # the TCB id is recorded in the verdict and the ledger: a string that cannot be encoded must not get there
    with pytest.raises(EvidenceError, match=message):
        Collateral.parse(bad, source="bundle")


# ---------------------------------------------------------------- bundle


def test_bundle_picks_by_fmspc() -> None:
    files = {
        "a.json": text(JUNE10).encode(),
        "b.json": text("collateral/intel-pcs-tdx-b0c06f-20260629.json").encode(),
        "notes.txt": b"ignored",
    }
    b0 = collateral_from_bundle(files, fmspc="b0c06f000000")
    assert b0 is not None and b0.fmspc == "B0C06F000000"
    got = collateral_from_bundle(files, fmspc="90C06F000000")
    assert got is not None and got.source == "bundle" and got.json_text == text(JUNE10)
    assert collateral_from_bundle(files, fmspc="00A067110000") is None
    assert collateral_from_bundle({}, fmspc="90C06F000000") is None


def test_bundle_prefers_newest_and_skips_broken() -> None:
    files = {"old.json": text(JUNE10).encode(), "new.json": text(JUNE29).encode(), "broken.json": b"\xff{"}
    got = collateral_from_bundle(files, fmspc="90C06F000000")
    assert got is not None and got.json_text == text(JUNE29)


def test_bundle_broken_and_no_match_names_the_file() -> None:
    files = {"b.json": text("collateral/intel-pcs-tdx-b0c06f-20260629.json").encode(), "tdx-90C06F000000.json": b"{}"}
    with pytest.raises(
        EvidenceError, match=r"tdx-90C06F000000\.json: collateral: field 'pck_crl_issuer_chain' is missing"
    ):
        collateral_from_bundle(files, fmspc="90C06F000000")


def test_remembered_collateral_is_keyed_by_content_so_other_bytes_under_the_same_fmspc_are_not_confused() -> None:
    memo = VerificationMemo().collateral
    parse = remembered(memo, parse_bundle_file)
    name = "tdx-90C06F000000.json"
    june10 = collateral_from_bundle({name: text(JUNE10).encode()}, fmspc="90C06F000000", parse=parse)
    assert june10 is not None and june10.json_text == text(JUNE10) and len(memo) == 1
    # the same file name and FMSPC, other bytes: parsed afresh, never the remembered June-10 document
    june29 = collateral_from_bundle({name: text(JUNE29).encode()}, fmspc="90C06F000000", parse=parse)
    assert june29 is not None and june29.json_text == text(JUNE29) and june29.sha256 != june10.sha256
    assert june29.tcb_info_issue_date != june10.tcb_info_issue_date and len(memo) == 2
    # the June-10 document with another TCB evaluation number (same FMSPC, same name): its own parse
    doc = json.loads(text(JUNE10))
    tcb = json.loads(doc["tcb_info"])
    tcb["tcbEvaluationDataNumber"] += 1
    edited = json.dumps({**doc, "tcb_info": json.dumps(tcb)})
    got = collateral_from_bundle({name: edited.encode()}, fmspc="90C06F000000", parse=parse)
    assert got is not None and got.json_text == edited and got.sha256 not in (june10.sha256, june29.sha256)
    assert got.fmspc == june10.fmspc and got.tcb_eval_data_number == june10.tcb_eval_data_number + 1
    # a broken file under the same name is refused every time (a failure is never remembered as a document)
    for _ in range(2):
        with pytest.raises(EvidenceError, match=r"tdx-90C06F000000\.json: collateral"):
            collateral_from_bundle({name: b"{}"}, fmspc="90C06F000000", parse=parse)
    assert len(memo) == 3
    # a remembered parse is the plain parse
    assert parse(text(JUNE10).encode()) == parse_bundle_file(text(JUNE10).encode())


# ---------------------------------------------------------------- fetching

Fault = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Pccs:
    """A loopback PCCS (verifier.simulator.pcs) serving recorded collateral, counting requests, injecting faults."""

    def __init__(self) -> None:
        self.served: dict[str, str] = {"90C06F000000": text(JUNE10)}
        self.hits: Counter[str] = Counter()
        self.faults: dict[str, Fault] = {}
        self.delay = 0.0

    def app(self) -> web.Application:
        @web.middleware
        async def mw(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            self.hits[request.path.rsplit("/", 1)[-1]] += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            fault = self.faults.get(request.path.rsplit("/", 1)[-1])
            return await (fault or handler)(request)

        app = web.Application(middlewares=[mw])
        add_pcs_routes(app, self.served.get, default_fmspc=lambda: "90C06F000000")
        return app


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def pccs() -> Pccs:
    return Pccs()


@pytest.fixture
async def pccs_url(aiohttp_server: Any, pccs: Pccs) -> str:
    server = await aiohttp_server(pccs.app())
    return str(server.make_url("")).rstrip("/")


def fields(json_text: str) -> dict[str, str]:
    doc: dict[str, str] = json.loads(json_text)
    return doc


async def test_pccs_round_trip_is_exact(session: aiohttp.ClientSession, pccs: Pccs, pccs_url: str) -> None:
    got = await PcsClient(session, pccs_url + "/sgx/certification/v4", pccs=True, timeout=5).fetch(
        fmspc="90C06F000000", ca="platform"
    )
    assert fields(got.json_text) == fields(text(JUNE10))  # tcb_info / qe_identity strings byte-exact
    assert got.source == "pcs" and got.fmspc == "90C06F000000" and got.tcb_eval_data_number == 19
    assert pccs.hits == {"pckcrl": 1, "tcb": 1, "identity": 1, "rootcacrl": 1}


async def test_fetched_collateral_verifies_with_dcap_qvl(session: aiohttp.ClientSession, pccs_url: str) -> None:
    dcap_qvl = pytest.importorskip("dcap_qvl")
    got = await PcsClient(session, pccs_url, pccs=True, timeout=5).fetch(fmspc="90C06F000000", ca="platform")
    quote = (TDX / "quotes" / "redpill-chutes-20260610-instance0.bin").read_bytes()
    report = dcap_qvl.verify(quote, dcap_qvl.QuoteCollateralV3.from_json(got.json_text), NOW_JUNE10)
    assert report.status == "UpToDate"


def _meta_headers(name: str) -> dict[str, str]:
    meta = json.loads((RAW_JUNE10 / f"{name}_http_meta.json").read_text())
    return {k: v[0] for k, v in meta["headers"].items() if k.lower().endswith("issuer-chain")}


@pytest.mark.parametrize("tcb_header", ["Tcb-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"])
async def test_intel_pcs_flavour_with_der_root_crl(
    aiohttp_server: Any, session: aiohttp.ClientSession, tcb_header: str
) -> None:
    """Intel's recorded wire bodies and headers; the root CA CRL is DER at its own URL (§1.5)."""
    hits: list[str] = []

    def serve(name: str, file: str, headers: dict[str, str]) -> Fault:
        async def handler(request: web.Request) -> web.Response:
            hits.append(str(request.rel_url))
            return web.Response(body=(RAW_JUNE10 / file).read_bytes(), headers=headers)

        return handler

    tcb_headers = {tcb_header: next(iter(_meta_headers("tcb_info").values()))}
    app = web.Application()
    app.router.add_get("/sgx/certification/v4/pckcrl", serve("pck", "pck_crl.der", _meta_headers("pck_crl")))
    app.router.add_get("/tdx/certification/v4/tcb", serve("tcb", "tcb_info.json", tcb_headers))
    app.router.add_get(
        "/tdx/certification/v4/qe/identity", serve("qe", "qe_identity.json", _meta_headers("qe_identity"))
    )
    app.router.add_get("/IntelSGXRootCA.der", serve("root", "intel_sgx_root_ca.der", {}))
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    client = PcsClient(session, base + "/", timeout=5, root_ca_crl_url=f"{base}/IntelSGXRootCA.der")
    got = await client.fetch(fmspc="90C06F000000", ca="platform")
    assert fields(got.json_text) == fields(text(JUNE10))
    assert hits == [
        "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
        "/tdx/certification/v4/tcb?fmspc=90C06F000000",
        "/tdx/certification/v4/qe/identity",
        "/IntelSGXRootCA.der",
    ]


def _status(code: int, **headers: str) -> Fault:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=code, text="nope", headers=headers)

    return handler


def _body(body: str, headers: dict[str, str] | None = None) -> Fault:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=body, headers=headers or {})

    return handler


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(1.0)
    return web.Response(text="late")


CHAIN = {"TCB-Info-Issuer-Chain": "-----BEGIN%20CERTIFICATE-----%0AAA%0A-----END%20CERTIFICATE-----%0A"}


@pytest.mark.parametrize(
    ("endpoint", "fault", "message", "status"),
    [
        ("tcb", _status(503), "HTTP 503", 503),
        ("pckcrl", _status(429, **{"Retry-After": "60"}), "HTTP 429", 429),
        ("identity", _status(404), "HTTP 404", 404),
        ("rootcacrl", _status(500), "HTTP 500", 500),
        ("tcb", _slow, "TimeoutError", None),
        ("tcb", _body("<html><body>Service Unavailable</body></html>", CHAIN), "body is not", None),
        ("tcb", _body('{"tcbInfo":{"a":1},"tcbInfo":{"a":2},"signature":"00"}', CHAIN), "duplicate key", None),
        ("tcb", _body('{"tcbInfo":{"id":"TDX"},"signature":"00"}', CHAIN), "served unusable collateral", None),
        ("tcb", _body('{"tcbInfo":{},"signature":"00"}'), "no PEM issuer chain in header TCB-Info-Issuer-Chain", 200),
        ("rootcacrl", _body("zz-not-hex"), "neither a DER CRL nor hex", None),
        ("pckcrl", _body("30", {"SGX-PCK-CRL-Issuer-Chain": CHAIN["TCB-Info-Issuer-Chain"]}), "not an X.509 CRL", None),
    ],
)
async def test_fetch_faults_are_collateral_unavailable(
    session: aiohttp.ClientSession,
    pccs: Pccs,
    pccs_url: str,
    endpoint: str,
    fault: Fault,
    message: str,
    status: int | None,
) -> None:
    pccs.faults[endpoint] = fault
    with pytest.raises(UpstreamError, match=message) as info:
        await PcsClient(session, pccs_url, pccs=True, timeout=0.3).fetch(fmspc="90C06F000000", ca="platform")
    assert info.value.reason == "collateral_unavailable"
    assert info.value.details["status"] == status
    assert pccs_url in info.value.message
    if status == 429:
        assert info.value.details["retry_after"] == "60"


async def test_unknown_fmspc_is_404(session: aiohttp.ClientSession, pccs_url: str) -> None:
    with pytest.raises(UpstreamError, match=r"tcb\?fmspc=B0C06F000000: HTTP 404") as info:
        await PcsClient(session, pccs_url, pccs=True).fetch(fmspc="B0C06F000000", ca="platform")
    assert info.value.reason == "collateral_unavailable"


async def test_wrong_fmspc_served_is_rejected(session: aiohttp.ClientSession, pccs: Pccs, pccs_url: str) -> None:
    pccs.served["B0C06F000000"] = text(JUNE10)  # a PCCS answering with another platform's TCB info
    with pytest.raises(UpstreamError, match="served TCB info for FMSPC 90C06F000000, expected B0C06F000000"):
        await PcsClient(session, pccs_url, pccs=True).fetch(fmspc="B0C06F000000", ca="platform")


async def test_connection_refused_and_body_cap(session: aiohttp.ClientSession, pccs_url: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UpstreamError, match="ClientConnectorError") as info:
        await PcsClient(session, f"http://127.0.0.1:{port}", timeout=2).fetch(fmspc="90C06F000000", ca="platform")
    assert info.value.reason == "collateral_unavailable"
    with pytest.raises(UpstreamError, match="body exceeds 1000 bytes"):
        await PcsClient(session, pccs_url, pccs=True, max_body=1000).fetch(fmspc="90C06F000000", ca="platform")


async def test_bad_request_arguments_are_evidence_errors(session: aiohttp.ClientSession) -> None:
    with pytest.raises(EvidenceError, match="CA 'other'"):
        await PcsClient(session, "http://127.0.0.1:1").fetch(fmspc="90C06F000000", ca="other")


# ---------------------------------------------------------------- cache

DAY = 86400


class _Cache(CollateralCache):
    db: sqlite_utils.Database  # the database behind the store, for the tests to look at (and break)


def cache_for(session: aiohttp.ClientSession, url: str | None, **kw: Any) -> _Cache:
    fetcher = PcsClient(session, url, pccs=True, timeout=5) if url else None
    db = sqlite_utils.Database(memory=True)
    cache = _Cache(SqliteCollateralStore.inline(db), fetcher, clock=lambda: 1_700_000_000, **kw)
    cache.db = db
    return cache


def table(cache: _Cache) -> Any:
    return cache.db.table("collateral_cache")


async def test_cache_hit_within_validity_does_not_refetch(
    session: aiohttp.ClientSession, pccs: Pccs, pccs_url: str
) -> None:
    cache = cache_for(session, pccs_url)
    first = await cache.get(fmspc="90c06f000000", ca="platform", now=NOW_JUNE10)
    second = await cache.get(fmspc="90C06F000000", ca="platform", now=NOW_JUNE10 + 5 * DAY)
    assert (first.source, second.source) == ("pcs", "cache") and first.json_text == second.json_text
    assert pccs.hits["tcb"] == 1
    row = table(cache).get(("tdx", "90C06F000000", "platform"))
    assert (row["fetched_at"], row["valid_from"], row["valid_until"]) == (
        1_700_000_000,
        first.issued_at,
        first.next_update,
    )


async def test_cache_expired_entry_refetches(session: aiohttp.ClientSession, pccs: Pccs, pccs_url: str) -> None:
    cache = cache_for(session, pccs_url)
    june10 = await cache.get(fmspc="90C06F000000", ca="platform", now=NOW_JUNE10)
    later = june10.next_update + DAY  # June-10 collateral expired; the June-29 one is valid
    pccs.served["90C06F000000"] = text(JUNE29)
    refreshed = await cache.get(fmspc="90C06F000000", ca="platform", now=later)
    assert refreshed.source == "pcs" and fields(refreshed.json_text) == fields(text(JUNE29)) and pccs.hits["tcb"] == 2
    assert (await cache.get(fmspc="90C06F000000", ca="platform", now=later + 1)).source == "cache"
    assert pccs.hits["tcb"] == 2


async def test_fresh_but_expired_is_returned_once_not_cached(
    session: aiohttp.ClientSession, pccs: Pccs, pccs_url: str
) -> None:
    cache = cache_for(session, pccs_url)
    stale_now = Collateral.parse(text(JUNE10), source="pcs").next_update + 1
    got = await cache.get(fmspc="90C06F000000", ca="platform", now=stale_now)
    assert got.source == "pcs" and not got.valid_at(stale_now)  # dcap-qvl will say collateral_expired
    await cache.get(fmspc="90C06F000000", ca="platform", now=stale_now)
    assert pccs.hits["tcb"] == 2


async def test_offline_never_fetches(session: aiohttp.ClientSession, pccs: Pccs, pccs_url: str) -> None:
    cache = cache_for(session, pccs_url, offline=True)
    with pytest.raises(UpstreamError, match="offline mode") as info:
        await cache.get(fmspc="90C06F000000", ca="platform", now=NOW_JUNE10)
    assert info.value.reason == "collateral_unavailable" and sum(pccs.hits.values()) == 0
    with pytest.raises(UpstreamError, match="no fetcher configured"):
        await cache_for(session, None).get(fmspc="90C06F000000", ca="platform", now=NOW_JUNE10)


async def test_offline_serves_valid_cached_entries(session: aiohttp.ClientSession, pccs: Pccs, pccs_url: str) -> None:
    db = sqlite_utils.Database(memory=True)
    store = SqliteCollateralStore.inline(db)
    await CollateralCache(store, PcsClient(session, pccs_url, pccs=True)).get(
        fmspc="90C06F000000", ca="platform", now=NOW_JUNE10
    )
    offline = CollateralCache(store, None, offline=True)
    assert (await offline.get(fmspc="90C06F000000", ca="platform", now=NOW_JUNE10)).source == "cache"
    with pytest.raises(UpstreamError, match="offline"):
        await offline.get(fmspc="90C06F000000", ca="processor", now=NOW_JUNE10)


async def test_corrupt_cache_row_is_a_miss(session: aiohttp.ClientSession, pccs: Pccs, pccs_url: str) -> None:
    cache = cache_for(session, pccs_url)
    await cache.get(fmspc="90C06F000000", ca="platform", now=NOW_JUNE10)
    table(cache).update(("tdx", "90C06F000000", "platform"), {"json_text": "garbage"})
    assert (await cache.get(fmspc="90C06F000000", ca="platform", now=NOW_JUNE10)).source == "pcs"
    assert pccs.hits["tcb"] == 2


async def test_concurrent_gets_share_one_fetch(session: aiohttp.ClientSession, pccs: Pccs, pccs_url: str) -> None:
    pccs.delay = 0.05
    cache = cache_for(session, pccs_url)
    got = await asyncio.gather(*(cache.get(fmspc="90C06F000000", ca="platform", now=NOW_JUNE10) for _ in range(5)))
    assert len({c.sha256 for c in got}) == 1 and pccs.hits["tcb"] == 1
    stale_now = got[0].next_update + 1  # even a fetch that is expired at `now` is shared by concurrent waiters
    await asyncio.gather(*(cache.get(fmspc="90C06F000000", ca="platform", now=stale_now) for _ in range(3)))
    assert pccs.hits["tcb"] == 2


async def test_fetch_error_propagates_from_cache(session: aiohttp.ClientSession, pccs: Pccs, pccs_url: str) -> None:
    pccs.faults["tcb"] = _status(503)
    with pytest.raises(UpstreamError, match="HTTP 503") as info:
        await cache_for(session, pccs_url).get(fmspc="90C06F000000", ca="platform", now=NOW_JUNE10)
    assert info.value.reason == "collateral_unavailable"


async def test_cache_write_failure_still_returns_fetch(
    session: aiohttp.ClientSession, pccs: Pccs, pccs_url: str
) -> None:
    cache = cache_for(session, pccs_url)
    cache.db.execute("DROP TABLE collateral_cache")  # reads and writes now fail with sqlite3 errors
    got = await cache.get(fmspc="90C06F000000", ca="platform", now=NOW_JUNE10)
    assert got.source == "pcs"
