"""Property: no body a caller can send makes the service answer 5xx (10 000+ generated bodies, in-process).

The service runs in-process (aiohttp test server and client on one loop) against a fake gateway that answers
fast and badly (a 404 signature, a 503 report), so bodies that pass validation still run the whole pipeline and
commit a verdict. The first property posts 10 000 arbitrary bodies (500 examples of 20: generation stays cheap),
nearly all answered by validation before any upstream call; the second posts 150 near-valid ones that mostly
reach the pipeline.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_env import bearer, clock, make_keys

from verifier.app.keys import Role
from verifier.demo import simulator_settings
from verifier.web import create_app

FIELDS = ["request", "request_b64", "response", "response_b64", "model", "chat_id", "gateway", "signing_algo"]


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.statuses: dict[int, int] = {}
        self.loop.run_until_complete(self._start(tmp))

    async def _start(self, tmp: Path) -> None:
        async def no_signature(request: web.Request) -> web.Response:
            return web.json_response({"detail": "not found"}, status=404)

        async def no_report(request: web.Request) -> web.Response:
            return web.json_response({"error": "down"}, status=503)

        fake = web.Application()
        fake.router.add_get("/v1/signature/{id}", no_signature)
        fake.router.add_get("/v1/attestation/report", no_report)
        self.gateway = TestServer(fake)
        await self.gateway.start_server()
        url = str(self.gateway.make_url("")).rstrip("/")
        db = tmp / "v.db"
        key = make_keys(db)[Role.SUBMIT]
        app = create_app(
            simulator_settings(
                db,
                url,
                dcap_workers=1,
                signature_deadline=0.0,
                upstream_timeout=2.0,
                upstream_per_minute=0,
                rate_per_minute=0,
                offline=True,
            ),
            clock=clock,
        )
        self.client = TestClient(TestServer(app), headers=bearer(key))
        await self.client.start_server()
        self.url = url

    def post(self, data: bytes) -> int:
        async def go() -> int:
            resp = await self.client.post("/v1/verifications", data=data, headers={"Content-Type": "application/json"})
            await resp.read()
            return resp.status

        status = self.loop.run_until_complete(go())
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return status

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.run_until_complete(self.gateway.close())
        self.loop.close()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tmp_path_factory.mktemp("prop"))
    yield h
    h.close()


SURROGATES = st.text(
    alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]), min_size=1, max_size=2
)
TEXT = st.text(max_size=12) | st.builds(lambda a, s, b: a + s + b, st.text(max_size=3), SURROGATES, st.text(max_size=3))
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | TEXT
# one level of nesting keeps generation cheap (10 000 examples); deep nesting is the JSON loader's own property test
JSON_VALUES = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(TEXT, SCALARS, max_size=3)
NAMES = TEXT | st.sampled_from(["sim/echo-1", "c-1", " ", "a\nb", "\u2028", "x" * 300])


def field_value(name: str) -> st.SearchStrategy[Any]:
    if name.endswith("_b64"):
        return st.binary(max_size=32).map(lambda b: base64.b64encode(b).decode()) | TEXT | JSON_VALUES
    if name in ("model", "chat_id"):
        return NAMES | JSON_VALUES
    if name == "gateway":
        return st.sampled_from(["http://127.0.0.1:99999", "http://[::1", "https://api.redpill.ai", "x"]) | JSON_VALUES
    if name == "signing_algo":
        return st.sampled_from(["ecdsa", "ed25519", "rsa"]) | JSON_VALUES
    if name == "response":
        return st.builds(lambda cid: json.dumps({"id": cid}), NAMES) | TEXT | JSON_VALUES
    return TEXT | JSON_VALUES


BODIES = st.one_of(
    st.fixed_dictionaries({}, optional={name: field_value(name) for name in FIELDS}).map(
        lambda d: json.dumps(d).encode()
    ),
    st.dictionaries(st.sampled_from([*FIELDS, "colour", "", "request "]), JSON_VALUES, max_size=5).map(
        lambda d: json.dumps(d).encode()
    ),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=80),
)


PLAIN = st.from_regex(r"[a-z0-9/._-]{1,16}", fullmatch=True)
VALID_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)  # any text UTF-8 can carry
# valid in every field the validator checks, varied in everything else: each one runs the whole pipeline
NEAR_VALID = st.fixed_dictionaries(
    {
        "request": VALID_TEXT,
        "response": VALID_TEXT,
        "model": PLAIN,
        "chat_id": PLAIN.filter(lambda c: c not in (".", "..")),
    },  # dot segments are refused: a 400 naming chat_id
    optional={"signing_algo": st.sampled_from(["ecdsa", "ed25519"]), "response_b64": st.none()},
).map(lambda d: json.dumps(d).encode())


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(bodies=st.lists(BODIES, min_size=20, max_size=20))
def test_no_generated_body_is_answered_with_a_5xx(harness: Harness, bodies: list[bytes]) -> None:
    for body in bodies:
        status = harness.post(body)
        assert status in (201, 400, 413), (status, body[:200])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=NEAR_VALID)
def test_no_near_valid_body_is_answered_with_a_5xx_through_the_pipeline(harness: Harness, body: bytes) -> None:
    status = harness.post(body)
    assert status == 201, (status, body[:200])


def test_the_generated_bodies_reached_both_validation_and_the_pipeline(harness: Harness) -> None:
    # runs after the two properties (file order): the cheap path and the whole pipeline were both exercised
    assert sum(harness.statuses.values()) >= 10_150
    assert harness.statuses.get(400, 0) > 5_000 and harness.statuses.get(201, 0) >= 150, harness.statuses
