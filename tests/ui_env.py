"""The dashboard under test: the service with a few verdicts (passes and a failure) and a logged-in client."""

from __future__ import annotations

import re
from typing import Any

from web_env import Env, post

from verifier.app.keys import Role
from verifier.simulator.gateway import SimulatorConfig

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
