"""Limits that keep one caller from exhausting the service or the upstream: token buckets per API key, a call
budget per gateway, and admission control on the bytes held in flight.

- ``RateLimiter``: a token bucket per key id; an empty bucket is a 429 with ``Retry-After``.
- ``UpstreamBudget``: a token bucket per gateway (RedPill's free tier: 60 calls a minute); a verification
  reserves the two calls it needs before it starts (signature + report), so an exhausted budget is a 429 to
  the caller, not a flood of ``indeterminate`` verdicts. Signature retries spend further tokens only if there
  are any; otherwise the retrying stops.
- ``ByteAdmission``: a verification reserves its request bytes and each upstream answer's size (its
  Content-Length, else the cap) before reading it; beyond ``max_inflight_bytes`` it waits up to
  ``admission_wait`` seconds, then the caller gets a 503.

Every clock is injected (``time.monotonic`` by default); nothing here sleeps except ``ByteAdmission.reserve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field


class Limited(Exception):
    """Refused by a limit: ``status`` 429 (rate, budget) or 503 (admission); ``retry_after`` in seconds."""

    def __init__(self, status: int, code: str, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens, self.stamp = self.burst, self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, n: float = 1.0) -> float:
        """Take ``n`` tokens and return 0, or take nothing and return the seconds until ``n`` are there."""
        self._refill()
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        if n > self.burst or self.rate <= 0:
            return math.inf
        return (n - self.tokens) / self.rate

    def give_back(self, n: float) -> None:
        self._refill()
        self.tokens = min(self.burst, self.tokens + n)


class _Buckets:
    """Buckets by name, at most ``max_names`` of them (the least recently used is dropped: it is full anyway
    once it has been idle for burst/rate seconds, so dropping one only ever forgets a recent debit)."""

    def __init__(self, per_minute: float, burst: float, clock: Callable[[], float], max_names: int = 10_000) -> None:
        self.rate, self.burst, self.clock, self.max_names = per_minute / 60.0, burst, clock, max_names
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def bucket(self, name: str) -> TokenBucket:
        found = self._buckets.get(name)
        if found is None:
            found = self._buckets[name] = TokenBucket(self.rate, self.burst, self.clock)
            while len(self._buckets) > self.max_names:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(name)
        return found


class RateLimiter:
    """Per API key: ``per_minute`` requests, bursts of ``burst``; ``per_minute`` 0 = unlimited."""

    def __init__(self, per_minute: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = per_minute > 0
        self._buckets = _Buckets(per_minute, float(burst), clock)

    def check(self, key_id: str) -> None:
        if not self.enabled:
            return
        wait = self._buckets.bucket(key_id).take()
        if wait:
            raise Limited(
                429, "rate_limited", f"rate limit of this API key exceeded; retry in {math.ceil(wait)} s", wait
            )


class CallTicket:
    """The upstream calls one verification may make: the prepaid ones first, then whatever the bucket has."""

    def __init__(self, bucket: TokenBucket | None, prepaid: int) -> None:
        self._bucket, self._prepaid = bucket, prepaid

    def take(self) -> bool:
        if self._bucket is None:
            return True
        if self._prepaid > 0:
            self._prepaid -= 1
            return True
        return self._bucket.take() == 0.0

    def release(self) -> None:
        """Give unused prepaid calls back (e.g. the verification stopped before its report fetch)."""
        if self._bucket is not None and self._prepaid > 0:
            self._bucket.give_back(self._prepaid)
            self._prepaid = 0


class UpstreamBudget:
    """Per gateway: ``per_minute`` calls (burst: the same number); 0 = unlimited."""

    CALLS_PER_VERIFICATION = 2

    def __init__(self, per_minute: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = per_minute > 0
        self._buckets = _Buckets(per_minute, max(float(per_minute), self.CALLS_PER_VERIFICATION), clock, max_names=1000)

    def ticket(self, gateway: str) -> CallTicket:
        if not self.enabled:
            return CallTicket(None, 0)
        bucket = self._buckets.bucket(gateway)
        wait = bucket.take(self.CALLS_PER_VERIFICATION)
        if wait:
            raise Limited(
                429,
                "upstream_budget_exhausted",
                f"the upstream call budget for {gateway} is spent (each verification needs "
                f"{self.CALLS_PER_VERIFICATION} calls); retry in {math.ceil(wait)} s",
                wait,
            )
        return CallTicket(bucket, self.CALLS_PER_VERIFICATION)


class ByteAdmission:
    """At most ``limit`` bytes reserved at once; FIFO, so a large reservation is not starved by small ones."""

    def __init__(self, limit: int, *, wait: float) -> None:
        self.limit, self.wait = limit, wait
        self.in_use = 0
        self._cond = asyncio.Condition()
        self._queue: list[object] = []

    async def reserve(self, n: int) -> None:
        n = min(n, self.limit)  # one reservation may take the whole budget, never more
        token = object()
        async with self._cond:
            self._queue.append(token)
            try:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self._queue[0] is token and self.in_use + n <= self.limit), self.wait
                )
            except TimeoutError:
                raise Limited(
                    503,
                    "overloaded",
                    f"the service holds {self.in_use} bytes of evidence in flight (limit {self.limit}); retry shortly",
                    self.wait,
                ) from None
            finally:
                self._queue.remove(token)
                self._cond.notify_all()
            self.in_use += n

    async def release(self, n: int) -> None:
        async with self._cond:
            self.in_use -= min(n, self.limit)
            self._cond.notify_all()

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[Lease]:
        lease = Lease(self)
        try:
            yield lease
        finally:
            await self.release(lease.held)


class Lease:
    """The bytes one verification holds; all released together when it ends. A lease never holds more than the
    whole budget, so one verification alone always gets through (it may then exceed the budget by its own size)."""

    def __init__(self, admission: ByteAdmission) -> None:
        self._admission = admission
        self.held = 0

    async def reserve(self, n: int) -> None:
        n = max(0, min(n, self._admission.limit - self.held))
        await self._admission.reserve(n)
        self.held += n
