"""Prometheus metrics (the official ``prometheus_client``), one registry per running service (no globals).

Served at ``GET /metrics`` in the text exposition format. Label values that come from callers (the model)
are bounded: past ``MAX_MODELS`` distinct models, further ones are counted as ``other``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

MAX_MODELS = 100
CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class _DcapCollector:
    """dcap-qvl worker restarts and timeouts, read from the pool at scrape time."""

    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield CounterMetricFamily(
            "verifier_dcap_worker_restarts", "dcap-qvl workers killed and replaced", value=stats.get("restarts", 0)
        )
        yield CounterMetricFamily(
            "verifier_dcap_worker_timeouts", "dcap-qvl requests that timed out", value=stats.get("timeouts", 0)
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.verifications = Counter(
            "verifier_verifications",
            "Verdicts recorded, by status, the reason of the first "
            "required check that did not pass (none for a pass) and model",
            ["status", "reason", "model"],
            registry=r,
        )
        self.checks = Counter(
            "verifier_check_results", "Check results in recorded verdicts", ["check", "status", "reason"], registry=r
        )
        self.upstream_seconds = Histogram(
            "verifier_upstream_request_seconds",
            "Upstream call latency by endpoint and outcome",
            ["endpoint", "outcome"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ledger_write_seconds = Histogram(
            "verifier_ledger_write_seconds",
            "Time to commit one verdict (queue + write)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.loop_lag_seconds = Histogram(
            "verifier_event_loop_lag_seconds", "How late the event loop ran a timer", buckets=_LAG_BUCKETS, registry=r
        )
        self.loop_lag_last = Gauge(
            "verifier_event_loop_lag_last_seconds", "The latest event-loop lag sample", registry=r
        )
        self.rejections = Counter("verifier_limit_rejections", "Requests refused by a limit", ["limit"], registry=r)
        self.http_requests = Counter(
            "verifier_http_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "verifier_http_request_seconds",
            "HTTP request duration by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._models: set[str] = set()

    def watch_dcap(self, stats: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_DcapCollector(stats))

    def model_label(self, model: object) -> str:
        if not isinstance(model, str) or not model:
            return "none"
        if model in self._models or len(self._models) < MAX_MODELS:
            self._models.add(model)
            return model
        return "other"

    def verdict(self, verdict: dict[str, Any]) -> None:
        checks = verdict.get("checks") or []
        first = next((c for c in checks if c.get("severity") == "required" and c.get("status") != "pass"), None)
        reason = "none" if first is None else str(first.get("reason") or "none")
        app: dict[str, Any] = next((c for c in checks if c.get("id") == "tdx.app"), {})
        pinned = app.get("status") == "pass" and (app.get("details") or {}).get("model_pinned")
        # a caller chooses the model name: only a model whose app identity is pinned (configuration) gets a label
        model = self.model_label((verdict.get("subject") or {}).get("model")) if pinned else "unpinned"
        self.verifications.labels(status=str(verdict.get("status")), reason=reason, model=model).inc()
        for check in checks:
            self.checks.labels(
                check=str(check.get("id")), status=str(check.get("status")), reason=str(check.get("reason") or "none")
            ).inc()

    def upstream(self, endpoint: str, seconds: float, outcome: str) -> None:
        self.upstream_seconds.labels(endpoint=endpoint, outcome=outcome).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    async def watch_loop_lag(self, interval: float = 0.25) -> None:
        """Sample the event-loop lag forever (cancel to stop): how late a timer of ``interval`` fires."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(interval)
            lag = max(0.0, loop.time() - start - interval)
            self.loop_lag_seconds.observe(lag)
            self.loop_lag_last.set(lag)


@contextlib.asynccontextmanager
async def lag_watcher(metrics: Metrics) -> Any:
    task = asyncio.create_task(metrics.watch_loop_lag())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
