"""The audit dashboard over HTTP: login and sessions, facets, the verdict page, exports, paging, the admin form,
headers and the simulator banner."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from ui_env import csrf_of, login, seed
from web_env import Env, start

from verifier.adapters.ledger import Ledger, audit
from verifier.app.keys import Role
from verifier.web.ui.chart import daily_chart
from verifier.web.ui.export import cell
from verifier.web.ui.session import COOKIE, Signer


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path)


def _count(page: str) -> str:
    start = page.index('id="match-count"')
    return page[page.index(">", start) + 1 : page.index("</p>", start)].strip()


async def test_login_sets_a_signed_httponly_samesite_strict_cookie_that_holds_no_key(env: Env) -> None:
    resp = await login(env, Role.READ)
    header = resp.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/ui" in header
    assert env.keys[Role.READ] not in header
    assert resp.headers["Location"] == "/ui/"
    assert (await env.client.get("/ui/")).status == 200


async def test_login_is_refused_without_a_key_with_an_unknown_key_and_with_a_submit_key(env: Env) -> None:
    for data, status in (
        ({}, 401),
        ({"key": ""}, 401),
        ({"key": "vk_unknown"}, 401),
        ({"key": env.keys[Role.SUBMIT]}, 403),
        ({"key": env.keys[Role.METRICS]}, 403),
    ):
        resp = await env.client.post("/ui/login", data=data, allow_redirects=False)
        assert resp.status == status, data
        assert COOKIE not in resp.cookies
    assert (await env.client.get("/ui/", allow_redirects=False)).status == 303


async def test_login_from_another_origin_is_refused(env: Env) -> None:
    resp = await env.client.post(
        "/ui/login",
        data={"key": env.keys[Role.READ]},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert resp.status == 403 and COOKIE not in resp.cookies


async def test_a_page_without_a_session_sends_to_the_login_form_and_back(env: Env) -> None:
    resp = await env.client.get("/ui/verifications?status=fail", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/login?next=%2Fui%2Fverifications%3Fstatus%3Dfail"
    form = await (await env.client.get(resp.headers["Location"])).text()
    assert 'name="next" value="/ui/verifications?status=fail"' in form


async def test_the_login_never_redirects_off_the_dashboard(env: Env) -> None:
    for target in ("//evil.example/ui/", "https://evil.example/", "/v1/keys", "/ui\\..\\x"):
        resp = await env.client.post(
            "/ui/login", data={"key": env.keys[Role.READ], "next": target}, allow_redirects=False
        )
        assert resp.headers["Location"] in ("/ui/", target) and resp.headers["Location"].startswith("/ui")
        assert not resp.headers["Location"].startswith("//")


def test_a_forged_tampered_or_expired_cookie_is_no_session() -> None:
    signer = Signer(b"k" * 32)
    session = signer.issue("0123456789abcdef", now=1000)
    assert signer.verify(session.value, now=1001) == session
    key_id, expires, nonce, mac = session.value.split(".")
    assert signer.verify(f"fedcba9876543210.{expires}.{nonce}.{mac}", now=1001) is None
    assert signer.verify(f"{key_id}.{int(expires) + 1}.{nonce}.{mac}", now=1001) is None
    assert signer.verify(f"{key_id}.{expires}.{'0' * 32}.{mac}", now=1001) is None
    assert signer.issue("0123456789abcdef", now=1000).value != session.value
    assert signer.verify(session.value, now=int(expires)) is None
    assert Signer(b"x" * 32).verify(session.value, now=1001) is None
    assert signer.verify("garbage", now=1001) is None and signer.verify(None, now=1001) is None
    assert not signer.csrf_ok(session, "0" * 64) and signer.csrf_ok(session, signer.csrf(session))


async def test_revoking_the_key_ends_its_session_at_once(env: Env) -> None:
    await login(env, Role.READ)
    assert (await env.client.get("/ui/", allow_redirects=False)).status == 200
    with Ledger.open(env.db_path) as ledger:
        from verifier.app.keys import KeyStore, key_id

        KeyStore(ledger).revoke(key_id(env.keys[Role.READ]))
    assert (await env.client.get("/ui/", allow_redirects=False)).status == 303


async def test_a_facet_filter_changes_the_count_and_the_list(env: Env) -> None:
    _, failed = await seed(env)
    await login(env)
    everything = await (await env.client.get("/ui/verifications")).text()
    assert _count(everything) == "3 matching"
    assert (
        'data-facet="status" data-value="fail"' in everything
        and 'data-facet="reason" data-value="nonce_mismatch"' in everything
    )
    only = await (await env.client.get("/ui/verifications?status=fail")).text()
    assert _count(only) == "1 matching" and failed in only
    by_reason = await (await env.client.get("/ui/verifications?reason=nonce_mismatch")).text()
    by_check = await (await env.client.get("/ui/verifications?check=tdx.binds_nonce")).text()
    assert _count(by_reason) == _count(by_check) == "1 matching"
    none = await (await env.client.get("/ui/verifications?status=pass&reason=nonce_mismatch")).text()
    assert _count(none) == "0 matching"
    later = await (await env.client.get("/ui/verifications?since=2999-01-01")).text()
    assert _count(later) == "0 matching"


async def test_the_failing_verdict_page_shows_each_checks_got_and_expected(env: Env) -> None:
    _, failed = await seed(env)
    await login(env)
    verdict = await (await env.client.get(f"/v1/verifications/{failed}", headers=env.auth(Role.READ))).json()
    check = next(c for c in verdict["checks"] if c["id"] == "tdx.binds_nonce")
    page = await (await env.client.get(f"/ui/verifications/{failed}")).text()
    row = page[page.index('data-check="tdx.binds_nonce"') :]
    row = row[: row.index("</tr>")]
    assert check["details"]["expected"] in row and check["details"]["got"] in row and "nonce_mismatch" in row
    for part in ('id="evidence"', 'id="chain"', "Trust vector", "Model binding", 'id="bundle-link"'):
        assert part in page
    assert "the server will refuse it" in page  # a read key is told the admin form is not for it


async def test_the_bundle_download_is_the_apis_zip(env: Env) -> None:
    _, failed = await seed(env, passes=0)
    await login(env)
    ui = await env.client.get(f"/ui/verifications/{failed}/bundle")
    api = await env.client.get(f"/v1/verifications/{failed}/bundle", headers=env.auth(Role.READ))
    assert ui.status == 200 and ui.content_type == "application/zip"
    assert await ui.read() == await api.read()


async def test_exports_follow_the_url_filter_as_csv_and_json(env: Env) -> None:
    ids, failed = await seed(env)
    await login(env)
    rows = list(csv.DictReader(io.StringIO(await (await env.client.get("/ui/verifications.csv")).text())))
    assert {r["id"] for r in rows} == {*ids, failed}
    assert all(r["created_at"].endswith("Z") and "T" in r["created_at"] for r in rows)
    only = json.loads(await (await env.client.get("/ui/verifications.json?status=fail")).text())
    assert [i["id"] for i in only["items"]] == [failed] and only["items"][0]["reasons"]
    assert json.loads(
        await (await env.client.get("/ui/verifications.json?status=pass&status=pass&model=none")).text()
    ) == {"items": []}


async def test_keyset_paging_walks_every_verdict_once_newest_first(env: Env) -> None:
    ids, failed = await seed(env, passes=3)
    await login(env)
    seen: list[str] = []
    url = "/ui/verifications?limit=2"
    while url:
        page = await (await env.client.get(url)).text()
        seen += [part.split('"')[0] for part in page.split('class="verdict-link" href="/ui/verifications/')[1:]]
        marker = 'id="next-page" href="'
        url = page[page.index(marker) + len(marker) :].split('"')[0].replace("&amp;", "&") if marker in page else ""
    assert seen == sorted([*ids, failed], reverse=True)


async def test_the_reverify_form_needs_admin_and_the_csrf_token(env: Env) -> None:
    _, failed = await seed(env, passes=0)
    await login(env, Role.READ)
    token = await csrf_of(env, f"/ui/verifications/{failed}")  # the logout form's token
    refused = await env.client.post(f"/ui/verifications/{failed}/reverify", data={"csrf": token}, allow_redirects=False)
    assert refused.status == 403
    await login(env, Role.ADMIN)
    no_token = await env.client.post(f"/ui/verifications/{failed}/reverify", data={}, allow_redirects=False)
    assert no_token.status == 403 and "CSRF" in await no_token.text()
    stale = await env.client.post(f"/ui/verifications/{failed}/reverify", data={"csrf": token}, allow_redirects=False)
    assert stale.status == 403  # a token of another session
    token = await csrf_of(env, f"/ui/verifications/{failed}")
    done = await env.client.post(f"/ui/verifications/{failed}/reverify", data={"csrf": token}, allow_redirects=False)
    assert done.status == 303
    new_page = await (await env.client.get(done.headers["Location"])).text()
    assert f'href="/ui/verifications/{failed}"' in new_page.split('id="chain"')[1]


async def test_every_dashboard_answer_has_the_security_headers(env: Env) -> None:
    await login(env)
    for path in ("/ui/", "/ui/login", "/ui/verifications.csv", "/ui/nope", "/ui/verifications?status=bogus"):
        resp = await env.client.get(path, allow_redirects=False)
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src" not in csp and "default-src 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert (await env.client.get("/ui/verifications?status=bogus")).status == 400
    assert (await env.client.get("/ui/verifications?since=yesterday")).status == 400
    assert (await env.client.get("/ui/verifications?before=v_nope")).status == 400
    assert (await env.client.get("/ui/verifications/v_01M8TT0SMNHY90FGGNTGK54Y7Y")).status == 404


async def test_no_page_has_a_script(env: Env) -> None:
    _, failed = await seed(env, passes=1)
    await login(env, Role.ADMIN)
    for path in ("/ui/", "/ui/verifications", f"/ui/verifications/{failed}", "/ui/signers", "/ui/login"):
        assert "<script" not in (await (await env.client.get(path)).text()).lower()


async def test_a_simulator_ledger_is_labelled_on_every_page_and_times_are_iso_utc(env: Env) -> None:
    ids, _ = await seed(env, passes=1)
    await login(env)
    pages = ["/ui/", "/ui/verifications", f"/ui/verifications/{ids[0]}", "/ui/signers", "/ui/login"]
    for path in pages:
        page = await (await env.client.get(path)).text()
        assert "SIMULATOR LEDGER" in page, path
    page = await (await env.client.get("/ui/verifications")).text()
    year = time.strftime("%Y", time.gmtime())
    assert f"<time>{year}-" in page and "Z</time>" in page


async def test_the_signer_pages_show_first_last_seen_models_and_history(env: Env) -> None:
    ids, failed = await seed(env, passes=1)
    await login(env)
    signer = (await (await env.client.get(f"/v1/verifications/{ids[0]}", headers=env.auth(Role.READ))).json())[
        "subject"
    ]["signer"]
    table = await (await env.client.get("/ui/signers")).text()
    assert f"/ui/signers/{signer}" in table and "sim/echo-1" in table
    page = await (await env.client.get(f"/ui/signers/{signer}")).text()
    assert ids[0] in page and failed in page and 'id="software"' in page
    assert (await env.client.get("/ui/signers/0xnothere")).status == 400
    assert (await env.client.get("/ui/signers/0xabc")).status == 404


def test_facet_counts_are_bounded_by_the_sample(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        for status in ("pass", "pass", "fail"):
            ledger.save({"id": None, "status": status, "subject": {"model": "m"}, "checks": []}, {})
        counts = audit.facets(ledger, audit.AuditFilter(), sample=2)
        assert counts.capped and counts.sampled == 2
        assert sum(n for _, n in counts.facets["status"]) == 2  # only the newest two were counted
        full = audit.facets(ledger, audit.AuditFilter())
        assert not full.capped and dict(full.facets["status"]) == {"pass": 2, "fail": 1}


def test_csv_cells_a_spreadsheet_would_run_are_quoted_as_text() -> None:
    assert cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and cell("+1") == "'+1" and cell("sim/echo-1") == "sim/echo-1"


def test_the_chart_stacks_each_days_statuses_to_its_total() -> None:
    chart = daily_chart(
        [
            {"day": "2026-12-01", "status": "pass", "n": 3},
            {"day": "2026-12-01", "status": "fail", "n": 1},
            {"day": "2026-12-02", "status": "pass", "n": 2},
        ]
    )
    assert chart.peak == 4 and len(chart.bars) == 3
    first = [b for b in chart.bars if b.day == "2026-12-01"]
    assert round(sum(b.height for b in first), 1) == chart.height - 48
    assert daily_chart([]).bars == ()


async def test_a_passing_verdicts_advisory_non_passes_are_not_failure_reasons(env: Env) -> None:
    ids, failed = await seed(env, passes=1)
    await login(env)
    rows = {r["id"]: r for r in json.loads(await (await env.client.get("/ui/verifications.json")).text())["items"]}
    assert rows[ids[0]]["reasons"] == [] and "nonce_mismatch" in rows[failed]["reasons"]
    overview = await (await env.client.get("/ui/")).text()
    reasons = overview[overview.index('id="reasons"') : overview.index("</ol>", overview.index('id="reasons"'))]
    assert "nonce_mismatch" in reasons and "not_applicable" not in reasons


async def test_the_time_range_facet_counts_and_links_to_a_since_filter(env: Env) -> None:
    await seed(env, passes=1)
    await login(env)
    page = await (await env.client.get("/ui/verifications")).text()
    facet = page[page.index('id="facet-time"') :]
    facet = facet[: facet.index("</section>")]
    assert 'data-value="last 24 hours">last 24 hours</a> <span class="n">2</span>' in facet
    link = facet.split('data-value="last 24 hours"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    since = parse_qs(urlsplit(link).query)["since"][0]
    assert since.endswith("Z") and abs(datetime.fromisoformat(since).timestamp() - (time.time() - 86400)) < 120
    assert _count(await (await env.client.get(link)).text()) == "2 matching"
