"""The jobs API: POST /v1/jobs answers 202 and the job runs in the background; GET shows its progress and summary
(valid against the OpenAPI schema); cancel; bad requests name the field; a queued job resumes when the service
starts again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from web_env import Env, clock, post, start, valid

from verifier.adapters.ledger import Ledger
from verifier.adapters.ledger.jobs import JobStore
from verifier.app.keys import Role
from verifier.appraise.policy import parse_policy
from verifier.demo import simulator_settings
from verifier.web import create_app

STRICT = '[policy]\nid = "no-old-drivers"\n[gpu]\nmin_driver = "600.0"\n'


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path)


async def _until_done(env: Env, job_id: str) -> dict[str, Any]:
    for _ in range(400):
        resp = await env.client.get(f"/v1/jobs/{job_id}", headers=env.auth(Role.READ))
        assert resp.status == 200
        job: dict[str, Any] = await resp.json()
        if job["state"] == "done":
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def test_a_job_posted_over_http_runs_in_the_background_and_reports_its_changes(env: Env) -> None:
    originals = {(await (await post(env)).json())["id"] for _ in range(2)}
    resp = await env.client.post(
        "/v1/jobs",
        json={"kind": "reverify", "policy": STRICT, "at": "captured", "filter": {"status": "pass"}},
        headers=env.auth(),
    )
    assert resp.status == 202
    queued = await resp.json()
    valid(queued, "Job")
    assert resp.headers["Location"] == f"/v1/jobs/{queued['id']}" and queued["total"] == 2
    job = await _until_done(env, queued["id"])
    valid(job, "Job")
    assert (job["done"], job["changed"], job["errors"], job["by_change"]) == (2, 2, 0, {"pass→fail": 2})
    assert job["clocks"] == {"captured": {"fail": 2}, "job": {"fail": 2}}
    listed = await (await env.client.get("/v1/jobs", headers=env.auth(Role.READ))).json()
    valid(listed, "JobList")
    assert [j["id"] for j in listed["items"]] == [job["id"]]
    newest = await (await env.client.get("/v1/verifications", params={"limit": "1"}, headers=env.auth())).json()
    verdict = await (await env.client.get(f"/v1/verifications/{newest['items'][0]['id']}", headers=env.auth())).json()
    assert verdict["status"] == "fail" and verdict["supersedes"] in originals
    assert verdict["claims"]["reverification"]["job"] == job["id"]


async def test_cancelling_a_finished_job_leaves_it_done_and_unknown_jobs_are_404(env: Env) -> None:
    await post(env)
    job = await (await env.client.post("/v1/jobs", json={}, headers=env.auth())).json()
    await _until_done(env, job["id"])
    cancelled = await env.client.post(f"/v1/jobs/{job['id']}/cancel", headers=env.auth())
    assert cancelled.status == 200 and (await cancelled.json())["state"] == "done"
    for path in ("/v1/jobs/j_0000000000000000000000000Z", "/v1/jobs/not-a-job"):
        missing = await env.client.get(path, headers=env.auth())
        assert missing.status == 404 and (await missing.json())["error"]["field"] == "id"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"at": "tomorrow"}, "at"),
        ({"collateral": "cached"}, "collateral"),
        ({"filter": {"status": "maybe"}}, "filter.status"),
        ({"filter": {"ids": ["v_00000000000000000000000000"]}}, "filter.ids"),
        ({"policy": "no-such-policy"}, "policy"),
    ],
)
async def test_bad_job_requests_are_a_400_naming_the_field(env: Env, body: dict[str, Any], field: str) -> None:
    resp = await env.client.post("/v1/jobs", json=body, headers=env.auth())
    assert resp.status == 400 and (await resp.json())["error"]["field"] == field


async def test_a_queued_job_is_run_when_the_service_starts(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    env = await start(aiohttp_client, aiohttp_server, tmp_path)
    await post(env)
    with Ledger.open(env.db_path) as ledger:  # as a service killed right after accepting the job would leave it
        store = JobStore(ledger)
        selection = store.select(trust_profile="simulator")
        strict = parse_policy(STRICT.encode(), source="strict")
        job_id = store.create(
            spec={},
            selection=selection,
            policy_text=STRICT,
            policy_id=strict.id,
            policy_sha256=strict.sha256,
            trust_profile="simulator",
            at=None,
            collateral="recorded",
        )
    client = await aiohttp_client(
        create_app(simulator_settings(env.db_path, env.gateway_url, dcap_workers=1), clock=clock)
    )
    again = Env(client, env.gateway, env.gateway_url, env.db_path, env.keys)
    job = await _until_done(again, job_id)
    assert (job["total"], job["done"], job["by_change"]) == (1, 1, {"pass→fail": 1})
