"""Limits: token buckets per key (429 + Retry-After), an upstream call budget per gateway (429 before any call,
retries stop when it is spent), admission control on in-flight bytes (wait, then 503)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from web_env import Env, post, start

from verifier.app.keys import Role
from verifier.app.limits import ByteAdmission, Limited, RateLimiter, TokenBucket, UpstreamBudget
from verifier.web.errors import SERVICES


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take() == 0.0
    assert bucket.take(10) == float("inf")  # more than the burst never fits


def test_the_rate_limiter_is_per_key_and_says_when_to_retry() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    limiter.check("a")
    limiter.check("a")
    with pytest.raises(Limited) as info:
        limiter.check("a")
    assert (info.value.status, info.value.code, info.value.retry_after) == (429, "rate_limited", 1)
    limiter.check("b")  # another key has its own bucket
    clock.now += 1.0
    limiter.check("a")
    RateLimiter(per_minute=0, burst=1).check("x")  # 0 = unlimited


def test_the_upstream_budget_reserves_two_calls_per_verification_and_refuses_beyond() -> None:
    clock = Clock()
    budget = UpstreamBudget(per_minute=4, clock=clock)
    first, second = budget.ticket("https://gw"), budget.ticket("https://gw")
    assert first.take() and first.take() and second.take()
    with pytest.raises(Limited) as info:
        budget.ticket("https://gw")
    assert (info.value.status, info.value.code) == (429, "upstream_budget_exhausted")
    assert 1 <= info.value.retry_after <= 30
    budget.ticket("https://other")  # per gateway
    assert not first.take()  # its prepaid calls are spent and the bucket is empty: no retry
    second.release()  # an unused prepaid call goes back
    clock.now += 15  # one more token
    budget.ticket("https://gw")


async def test_admission_waits_for_room_then_gives_up_with_a_503() -> None:
    admission = ByteAdmission(100, wait=0.2)
    async with admission.lease() as a:
        await a.reserve(80)
        waiter = asyncio.create_task(admission.reserve(40))
        await asyncio.sleep(0.05)
        assert not waiter.done()
    await asyncio.wait_for(waiter, 1)  # admitted once the lease was released
    assert admission.in_use == 40
    with pytest.raises(Limited) as info:
        await admission.reserve(70)
    assert (info.value.status, info.value.code) == (503, "overloaded")
    await admission.release(40)
    assert admission.in_use == 0


@pytest.fixture
async def limited(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path, rate_per_minute=60, rate_burst=3, upstream_per_minute=2)


async def test_a_key_over_its_rate_gets_a_429_with_retry_after(limited: Env) -> None:
    statuses = [
        (await limited.client.get("/v1/verifications", headers=limited.auth(Role.READ))).status for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    resp = await limited.client.get("/v1/verifications", headers=limited.auth(Role.READ))
    assert int(resp.headers["Retry-After"]) >= 1 and (await resp.json())["error"]["code"] == "rate_limited"
    assert (await limited.client.get("/v1/verifications", headers=limited.auth(Role.ADMIN))).status == 200


async def test_an_exhausted_upstream_budget_is_a_429_before_any_upstream_call(limited: Env) -> None:
    first = await post(limited)
    assert first.status == 201
    seen = len(limited.gateway.requests_seen)
    second = await post(limited, role=Role.ADMIN)
    assert second.status == 429
    body = await second.json()
    assert body["error"]["code"] == "upstream_budget_exhausted" and "Retry-After" in second.headers
    assert len(limited.gateway.requests_seen) == seen  # the gateway was not called
    metrics = await (await limited.client.get("/metrics", headers=limited.auth(Role.ADMIN))).text()
    assert 'verifier_limit_rejections_total{limit="upstream_budget_exhausted"} 1.0' in metrics


async def test_a_verification_that_cannot_get_its_bytes_admitted_is_a_503(
    aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    env = await start(aiohttp_client, aiohttp_server, tmp_path, max_inflight_bytes=1024, admission_wait=0.2)
    held = env.client.app[SERVICES].admission  # type: ignore[index]
    await held.reserve(1024)  # someone else holds the whole budget
    resp = await post(env)
    assert resp.status == 503 and (await resp.json())["error"]["code"] == "overloaded"
    await held.release(1024)
    assert (await post(env)).status == 201
