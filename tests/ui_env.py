"""The dashboard under test: the service with a few verdicts (passes and a failure), re-verification jobs made by the
service's job code, and a logged-in client."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from web_env import Env, post

from verifier.app.job_spec import parse_spec
from verifier.app.keys import Role
from verifier.simulator.gateway import SimulatorConfig
from verifier.web.errors import SERVICES

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


async def seed(env: Env, *, passes: int = 2) -> tuple[list[str], str]:
    """``passes`` verdicts from the honest simulator, then one failure (the report binds a substituted nonce).

    Returns (pass ids, fail id)."""
    ids = [(await (await post(env)).json())["id"] for _ in range(passes)]
    env.gateway.config = SimulatorConfig(clock=env.gateway.config.clock, faults=frozenset({"substituted_nonce"}))
    failed = await (await post(env)).json()
    assert failed["status"] == "fail", failed["status"]
    return ids, failed["id"]


async def login(env: Env, role: Role = Role.READ) -> Any:
    resp = await env.client.post("/ui/login", data={"key": env.keys[role], "next": "/ui/"}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    return resp


async def csrf_of(env: Env, path: str) -> str:
    page = await (await env.client.get(path)).text()
    match = CSRF.search(page)
    assert match is not None, page[:500]
    return match.group(1)


STRICT = '[policy]\nid = "no-old-drivers"\n[gpu]\nmin_driver = "600.0"\n'  # the simulator's GPU driver is older


async def finished_job(env: Env, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A job over HTTP (by default: the passes under a stricter policy, so each one changes pass→fail), run to done."""
    body = {"policy": STRICT, "filter": {"status": "pass"}} if body is None else body
    resp = await env.client.post("/v1/jobs", json=body, headers=env.auth(Role.ADMIN))
    assert resp.status == 202, await resp.text()
    job_id = (await resp.json())["id"]
    for _ in range(400):
        job: dict[str, Any] = await (await env.client.get(f"/v1/jobs/{job_id}", headers=env.auth(Role.READ))).json()
        if job["state"] == "done":
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def queued_job(env: Env) -> dict[str, Any]:
    """A job created by the service's job code and not started (as a service stopped right after accepting it)."""
    job: dict[str, Any] = await env.client.app[SERVICES].jobs.create(parse_spec({"policy": STRICT}))
    assert job["state"] == "queued"
    return job
