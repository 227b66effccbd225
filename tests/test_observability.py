"""Metrics (Prometheus text format, official client) and structured logs (one JSON object per line)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from web_env import API_KEY, Env, post, start

from verifier.app.keys import Role, key_id
from verifier.app.logs import JsonFormatter
from verifier.app.metrics import MAX_MODELS, Metrics


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_verdicts_upstream_latency_ledger_writes_and_loop_lag(env: Env) -> None:
    verdict = await (await post(env)).json()
    resp = await env.client.get("/metrics", headers=env.auth(Role.READ))
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    got = samples(await resp.text())
    assert got[("verifier_verifications_total", (("model", "sim/echo-1"), ("reason", "none"), ("status", "pass")))] == 1
    assert verdict["status"] == "pass"
    assert got[("verifier_check_results_total", (("check", "tdx.quote"), ("reason", "none"), ("status", "pass")))] == 1
    for endpoint in ("signature", "report", "pcs", "nras_attest", "nras_jwks"):
        assert got[("verifier_upstream_request_seconds_count", (("endpoint", endpoint), ("outcome", "ok")))] >= 1, (
            endpoint
        )
    assert got[("verifier_ledger_write_seconds_count", ())] == 1
    assert ("verifier_event_loop_lag_seconds_count", ()) in got
    assert got[("verifier_dcap_worker_restarts_total", ())] == 0
    assert got[("verifier_dcap_worker_timeouts_total", ())] == 0
    assert got[("verifier_http_requests_total", (("route", "/v1/verifications"), ("status", "201")))] == 1


def test_caller_chosen_model_labels_are_bounded() -> None:
    metrics = Metrics()
    labels = {metrics.model_label(f"m{i}") for i in range(MAX_MODELS + 50)}
    assert len(labels) == MAX_MODELS + 1 and "other" in labels
    assert metrics.model_label("m0") == "m0"  # a model already seen keeps its label


async def test_each_request_is_one_json_log_line_with_key_id_never_the_key(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    verdict = await (await post(env, role=Role.SUBMIT)).json()
    access = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "verifier.access"]
    line = next(a for a in access if a["route"] == "/v1/verifications" and a["method"] == "POST")
    assert line["status"] == 201 and line["verdict_id"] == verdict["id"] and line["verdict_status"] == "pass"
    assert line["key_id"] == key_id(env.keys[Role.SUBMIT]) and line["request_id"] and line["duration_ms"] > 0
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert env.keys[Role.SUBMIT] not in text and API_KEY not in text


def test_the_formatter_escapes_every_user_controlled_field() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "model %s", ("a\nb\u2028\ud800",), None)
    record.path = "/v1/\r\n{fake}"
    line = JsonFormatter().format(record)
    assert "\n" not in line and "\r" not in line and line.isascii()
    parsed = json.loads(line)
    assert parsed["message"] == "model a\nb\u2028\ud800" and parsed["path"] == "/v1/\r\n{fake}"
