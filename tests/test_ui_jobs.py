"""The dashboard's job pages over HTTP: the list (counts, policy, clock, ISO times, keyset paging, exports), one job
(progress, changes by kind and reason, the changed verdicts with both clocks, links to the filtered list), 400/404
pages, and the cancel and resume forms (admin session and CSRF token only). Every job is made by the service's job
code: over ``POST /v1/jobs`` with a stricter policy, or created and not started."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ui_env import csrf_of, finished_job, login, queued_job
from web_env import Env, post, start

from verifier.adapters.ledger import Ledger
from verifier.adapters.ledger.jobs import JobStore
from verifier.app.keys import Role
from verifier.web.errors import SERVICES
from verifier.web.ui.jobs import duration

UNKNOWN = "j_0000000000000000000000000Z"
ISO = re.compile(r"<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ</time>")


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path)


async def _passes(env: Env, n: int = 2) -> list[str]:
    return [(await (await post(env)).json())["id"] for _ in range(n)]


def _row(page: str, marker: str) -> str:
    """The table row (``<tr …marker…>`` to ``</tr>``) holding ``marker``."""
    start = page.index(marker)
    return page[page.rindex("<tr", 0, start) : page.index("</tr>", start)]


def _items(env: Env, job_id: str) -> list[dict[str, Any]]:
    with Ledger.open(env.db_path) as ledger:
        return JobStore(ledger).items(job_id)


async def _state(env: Env, job_id: str) -> str:
    job = await (await env.client.get(f"/v1/jobs/{job_id}", headers=env.auth(Role.READ))).json()
    return str(job["state"])


async def test_the_jobs_page_lists_a_finished_job_with_its_counts_policy_clock_and_utc_times(env: Env) -> None:
    await _passes(env)
    job = await finished_job(env)
    await login(env, Role.READ)
    page = await (await env.client.get("/ui/jobs")).text()
    row = _row(page, f'data-job="{job["id"]}"')
    for part in (
        f'href="/ui/jobs/{job["id"]}"',
        '<span class="state done">done</span>',
        '<td class="num total">2</td>',
        '<td class="num done">2</td>',
        '<td class="num changed">2</td>',
        '<td class="num errors">0</td>',
        f'no-old-drivers <span class="mono">{job["policy"]["sha256"][:12]}…</span>',
        "<td>captured</td>",
        "<td>recorded</td>",
        "<td>reverify</td>",
    ):
        assert part in row, part
    assert len(ISO.findall(row)) == 3  # created, started, finished
    assert '<td class="num eta"></td>' in row  # no ETA for a finished job
    assert '<a href="/ui/jobs">Jobs</a>' in page


async def test_the_job_page_shows_progress_changes_reasons_and_each_changed_verdict_with_both_clocks(env: Env) -> None:
    originals = await _passes(env)
    job = await finished_job(env)
    await login(env, Role.READ)
    page = await (await env.client.get(f"/ui/jobs/{job['id']}")).text()
    assert '<progress id="job-progress" max="100" value="100.0">' in page
    assert 'id="progress-text">2 of 2 (100.0%)' in page and '<td class="num" id="job-changed">2</td>' in page
    change = page[page.index('data-change="pass→fail"') :]
    assert change.startswith('data-change="pass→fail"><code>pass→fail</code>: <span class="n">2</span>')
    (reason,) = job["by_reason"]
    assert f'href="/ui/verifications?job={job["id"]}&amp;reason={reason}">{reason}</a>: 2' in page
    assert 'id="cancel"' not in page and 'id="resume"' not in page  # a done job has no forms
    items = {i["verdict_id"]: i for i in _items(env, job["id"])}
    assert sorted(items) == sorted(originals)
    for old, item in items.items():
        row = _row(page, f'data-old="{old}"')
        assert f'href="/ui/verifications/{old}"' in row
        assert f'class="new-verdict" href="/ui/verifications/{item["new_verdict_id"]}"' in row
        assert '<span class="status pass">pass</span> → <span class="status fail">fail</span>' in row
        assert len(ISO.findall(row)) == 2 and reason in row  # the captured clock and the job clock
    listed = await (await env.client.get(f"/ui/verifications?job={job['id']}")).text()
    assert "2 matching" in listed and f"job = {job['id']}" in listed
    assert {i["new_verdict_id"] for i in items.values()} == set(
        re.findall(r'class="verdict-link" href="/ui/verifications/(v_\w+)"', listed)
    )
    for query in (f"job={job['id']}&status=fail", f"job={job['id']}&reason={reason}"):
        assert "2 matching" in await (await env.client.get(f"/ui/verifications?{query}")).text()
    assert "0 matching" in await (await env.client.get(f"/ui/verifications?job={job['id']}&status=pass")).text()


async def test_the_job_list_and_a_jobs_changed_verdicts_page_by_keyset_each_once(env: Env) -> None:
    await _passes(env)
    made = [(await finished_job(env))["id"]]
    made += [(await finished_job(env, {}))["id"] for _ in range(2)]  # re-verify the heads: each flips them back
    await login(env)
    seen: list[str] = []
    url = "/ui/jobs?limit=1"
    while url:
        page = await (await env.client.get(url)).text()
        seen += re.findall(r'class="job-link" href="/ui/jobs/(j_\w+)"', page)
        found = re.search(r'id="next-page" href="([^"]+)"', page)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert seen == sorted(made, reverse=True)
    olds: list[str] = []
    url = f"/ui/jobs/{made[0]}?limit=1"
    while url:
        page = await (await env.client.get(url)).text()
        olds += re.findall(r'data-old="(v_\w+)"', page)
        found = re.search(r'id="next-changes" href="([^"]+)"', page)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert olds == sorted(i["verdict_id"] for i in _items(env, made[0]))


async def test_the_jobs_export_has_every_job_as_csv_and_json_with_utc_times(env: Env) -> None:
    await _passes(env)
    job = await finished_job(env)
    await login(env)
    rows = list(csv.DictReader(io.StringIO(await (await env.client.get("/ui/jobs.csv")).text())))
    assert [(r["id"], r["state"], r["total"], r["changed"], r["at"]) for r in rows] == [
        (job["id"], "done", "2", "2", "captured")
    ]
    assert rows[0]["created_at"].endswith("Z") and rows[0]["finished_at"].endswith("Z")
    assert rows[0]["by_change"] == "pass→fail: 2" and rows[0]["policy_id"] == "no-old-drivers"
    (item,) = json.loads(await (await env.client.get("/ui/jobs.json")).text())["items"]
    assert item["by_change"] == {"pass→fail": 2} and item["policy_sha256"] == job["policy"]["sha256"]


async def test_a_malformed_job_id_or_parameter_is_a_400_page_and_an_unknown_job_a_404_page(env: Env) -> None:
    await _passes(env, 1)
    job = await finished_job(env)
    await login(env, Role.ADMIN)
    token = await csrf_of(env, "/ui/jobs")
    for method, path, status in (
        ("GET", "/ui/jobs/not-a-job", 400),
        ("GET", f"/ui/jobs/{UNKNOWN}", 404),
        ("POST", "/ui/jobs/not-a-job/cancel", 400),
        ("POST", f"/ui/jobs/{UNKNOWN}/cancel", 404),
        ("POST", f"/ui/jobs/{UNKNOWN}/resume", 404),
        ("GET", "/ui/jobs?before=nope", 400),
        ("GET", "/ui/jobs?limit=0", 400),
        ("GET", "/ui/jobs?bogus=1", 400),
        ("GET", "/ui/jobs.csv?bogus=1", 400),
        ("GET", f"/ui/jobs/{job['id']}?after=v_nope", 400),
        ("GET", "/ui/verifications?job=j_nope", 400),
    ):
        data = {"csrf": token} if method == "POST" else None
        resp = await env.client.request(method, path, data=data, allow_redirects=False)
        text = await resp.text()
        assert (resp.status, resp.content_type) == (status, "text/html"), path
        assert f"<h1>Error {status}</h1>" in text and 'id="error-message"' in text


async def test_without_a_session_the_job_pages_send_to_the_login_and_the_forms_are_401(env: Env) -> None:
    job = await queued_job(env)
    for path in ("/ui/jobs", f"/ui/jobs/{job['id']}", "/ui/jobs.json"):
        resp = await env.client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/ui/login?next=")
    for form in ("cancel", "resume"):
        resp = await env.client.post(f"/ui/jobs/{job['id']}/{form}", data={"csrf": "0" * 64}, allow_redirects=False)
        assert resp.status == 401
    assert await _state(env, job["id"]) == "queued"


async def test_a_read_session_sees_a_job_but_its_cancel_and_resume_are_403_pages(env: Env) -> None:
    job = await queued_job(env)
    await login(env, Role.READ)
    page = await (await env.client.get(f"/ui/jobs/{job['id']}")).text()
    assert 'id="cancel"' in page and 'id="resume"' in page and "the server will refuse it" in page
    token = await csrf_of(env, f"/ui/jobs/{job['id']}")
    for form in ("cancel", "resume"):
        resp = await env.client.post(f"/ui/jobs/{job['id']}/{form}", data={"csrf": token}, allow_redirects=False)
        assert resp.status == 403 and "a read key may not use this page" in await resp.text()
    assert await _state(env, job["id"]) == "queued"


async def test_an_admin_cancels_a_job_with_the_sessions_csrf_token_and_not_without(env: Env) -> None:
    job = await queued_job(env)
    await login(env, Role.READ)
    other = await csrf_of(env, "/ui/jobs")  # a token of another session
    await login(env, Role.ADMIN)
    for data in ({}, {"csrf": other}):
        resp = await env.client.post(f"/ui/jobs/{job['id']}/cancel", data=data, allow_redirects=False)
        assert resp.status == 403 and "CSRF" in await resp.text()
    assert await _state(env, job["id"]) == "queued"
    token = await csrf_of(env, f"/ui/jobs/{job['id']}")
    done = await env.client.post(f"/ui/jobs/{job['id']}/cancel", data={"csrf": token}, allow_redirects=False)
    assert done.status == 303 and done.headers["Location"] == f"/ui/jobs/{job['id']}"
    assert await _state(env, job["id"]) == "cancelled"
    page = await (await env.client.get(done.headers["Location"])).text()
    assert '<span class="state cancelled">cancelled</span>' in page and 'id="cancel"' not in page
    again = await env.client.post(f"/ui/jobs/{job['id']}/cancel", data={"csrf": token}, allow_redirects=False)
    assert again.status == 409 and "already cancelled" in await again.text()
    refused = await env.client.post(f"/ui/jobs/{job['id']}/resume", data={"csrf": token}, allow_redirects=False)
    assert refused.status == 409 and "only a queued or interrupted job can be resumed" in await refused.text()


async def test_an_admin_resumes_a_stopped_job_and_it_runs_to_done(env: Env) -> None:
    await _passes(env)
    job = await queued_job(env)
    await login(env, Role.ADMIN)
    token = await csrf_of(env, f"/ui/jobs/{job['id']}")
    resp = await env.client.post(f"/ui/jobs/{job['id']}/resume", data={"csrf": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/ui/jobs/{job['id']}"
    for _ in range(400):
        if await _state(env, job["id"]) == "done":
            break
        await asyncio.sleep(0.05)
    page = await (await env.client.get(f"/ui/jobs/{job['id']}")).text()
    assert '<span class="state done">done</span>' in page and '<td class="num" id="job-changed">2</td>' in page
    assert 'id="resume"' not in page
    again = await env.client.post(f"/ui/jobs/{job['id']}/resume", data={"csrf": token}, allow_redirects=False)
    assert again.status == 409 and "is done" in await again.text()


async def test_the_job_pages_carry_the_csp_no_script_no_inline_style_and_the_simulator_banner(env: Env) -> None:
    await _passes(env, 1)
    job = await finished_job(env)
    await login(env)
    for path in ("/ui/jobs", f"/ui/jobs/{job['id']}", "/ui/jobs/not-a-job"):
        resp = await env.client.get(path)
        page = await resp.text()
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["Cache-Control"] == "no-store"
        assert "<script" not in page.lower() and " style=" not in page.lower()
        assert "SIMULATOR LEDGER" in page, path


class _Observed(Exception):
    """Stops a run after its first batch, so the job is seen mid-run (running, one of two done)."""


def _stop(job: dict[str, Any]) -> None:
    raise _Observed(job["done"])


async def test_a_running_job_shows_half_a_progress_bar_its_rate_and_eta_and_an_admin_can_cancel_it(env: Env) -> None:
    await _passes(env)
    job = await queued_job(env)
    with pytest.raises(_Observed):
        await env.client.app[SERVICES].jobs.run(job["id"], batch=1, progress=_stop)
    await login(env, Role.ADMIN)
    row = _row(await (await env.client.get("/ui/jobs")).text(), f'data-job="{job["id"]}"')
    assert '<span class="state running">running</span>' in row and '<td class="num done">1</td>' in row
    assert re.search(r'<td class="num eta">\d+ s</td>', row) and "/s</td>" in row
    page = await (await env.client.get(f"/ui/jobs/{job['id']}")).text()
    assert '<progress id="job-progress" max="100" value="50.0">' in page and "verdicts/s · ETA " in page
    assert 'id="cancel"' in page and 'id="resume"' not in page  # it runs: cancel, not resume
    token = await csrf_of(env, f"/ui/jobs/{job['id']}")
    resp = await env.client.post(f"/ui/jobs/{job['id']}/cancel", data={"csrf": token}, allow_redirects=False)
    assert resp.status == 303 and await _state(env, job["id"]) == "cancelled"
    cancelled = await (await env.client.get(f"/ui/jobs/{job['id']}")).text()
    assert "ETA" not in cancelled and len(ISO.findall(cancelled.split('id="job-summary"')[1].split("</table>")[0])) == 3


def test_an_eta_reads_in_seconds_minutes_or_hours() -> None:
    assert [duration(s) for s in (None, 0.4, 42, 200, 7500)] == ["", "0 s", "42 s", "3 min 20 s", "2 h 05 min"]
