"""The claim index (verdict_claims, filled by a trigger from the stored verdict JSON, backfilled by 0004_jobs):
filters on the ledger, the HTTP list endpoint, `verifier list --claim` and job selections."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from web_env import Env, post, start

from verifier.adapters.ledger import Ledger
from verifier.adapters.ledger.claims import normalize_claim
from verifier.adapters.ledger.jobs import JobStore
from verifier.adapters.ledger.schema import _CLAIMS_BACKFILL_0004
from verifier.app.keys import Role
from verifier.cli import main
from verifier.demo import run_demo
from verifier.simulator.gateway import SimulatorConfig

NOW = 1_790_000_000


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    results = asyncio.run(
        run_demo(config=SimulatorConfig(clock=lambda: float(NOW)), db_dir=tmp_path_factory.mktemp("c"), rounds=2)
    )
    return results[0].db_path, results[0].verdict


def _claims(verdict: dict[str, Any]) -> dict[str, str]:
    (app,) = verdict["claims"]["app"].values()
    (tdx,) = verdict["claims"]["tdx"].values()
    return {
        "tcb_status": tdx["dcap"]["status"],
        "fmspc": verdict["collateral"][0]["fmspc"],
        "app_id": app["app_id"],
        "compose_hash": app["compose_hash"],
        "driver": verdict["claims"]["gpus"][0]["driver_version"],
    }


def test_every_indexed_claim_of_a_recorded_verdict_finds_it_and_a_wrong_value_finds_nothing(recorded: Any) -> None:
    db, verdict = recorded
    with Ledger.open_readonly(db) as ledger:
        everyone = {r["id"] for r in ledger.list()[0]}
        assert len(everyone) == 2
        for name, value in _claims(verdict).items():
            assert {r["id"] for r in ledger.list(claims={name: value})[0]} == everyone, name
            assert ledger.list(claims={name: value + "0"})[0] == [], name
        assert ledger.list(claims={"advisory": "INTEL-SA-01192"})[0] == []
        fmspc = _claims(verdict)["fmspc"]
        assert {
            r["id"] for r in ledger.list(claims={"fmspc": fmspc.lower()})[0]
        } == everyone  # hex case does not matter
        assert JobStore(ledger).select(trust_profile="simulator", claims={"driver": "1.0"}) == []


def test_the_backfill_of_an_older_ledger_indexes_exactly_what_the_trigger_does(recorded: Any, tmp_path: Path) -> None:
    db, _ = recorded
    copy = tmp_path / "copy.db"
    with Ledger.open_readonly(db) as ledger:
        ledger.db.conn.execute(f"VACUUM INTO '{copy}'")
    conn = sqlite3.connect(copy)
    by_trigger = sorted(conn.execute("SELECT verdict_id, name, value FROM verdict_claims"))
    conn.execute("DROP TRIGGER verdict_claims_no_delete")
    conn.execute("DELETE FROM verdict_claims")
    conn.execute(_CLAIMS_BACKFILL_0004)
    assert sorted(conn.execute("SELECT verdict_id, name, value FROM verdict_claims")) == by_trigger and by_trigger
    conn.close()


_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(claims=st.dictionaries(st.sampled_from(["tdx", "app", "gpus", "nras"]), _junk, max_size=4), collateral=_junk)
def test_verdict_json_of_any_shape_is_stored_and_only_text_claims_are_indexed(
    claims: dict[str, Any], collateral: Any
) -> None:
    with Ledger.open(":memory:") as ledger:
        verdict_id = ledger.save(
            {"id": None, "status": "fail", "checks": [], "claims": claims, "collateral": collateral}, {}
        )
        rows = list(ledger.db.execute("SELECT name, value FROM verdict_claims WHERE verdict_id = ?", [verdict_id]))
    assert all(isinstance(value, str) for _, value in rows)


def test_an_unknown_claim_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not an indexed claim"):
        normalize_claim("colour", "red")


def test_verifier_list_claim_filters(recorded: Any) -> None:
    db, verdict = recorded
    runner = CliRunner()
    hit = runner.invoke(
        main, ["list", "--db", str(db), "--json", "--claim", f"tcb_status={_claims(verdict)['tcb_status']}"]
    )
    assert hit.exit_code == 0 and len(json.loads(hit.output)["items"]) == 2
    miss = runner.invoke(main, ["list", "--db", str(db), "--json", "--claim", "tcb_status=OutOfDate"])
    assert miss.exit_code == 0 and json.loads(miss.output)["items"] == []


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path)


async def test_the_list_endpoint_filters_by_claims_and_a_job_selects_by_them(env: Env) -> None:
    verdict = await (await post(env)).json()
    claims = _claims(verdict)
    for name, value in claims.items():
        got = await (
            await env.client.get("/v1/verifications", params={name: value}, headers=env.auth(Role.READ))
        ).json()
        assert [i["id"] for i in got["items"]] == [verdict["id"]], name
    none = await (
        await env.client.get("/v1/verifications", params={"advisory": "INTEL-SA-01192"}, headers=env.auth())
    ).json()
    assert none["items"] == []
    job = await (
        await env.client.post("/v1/jobs", json={"filter": {"driver": claims["driver"]}}, headers=env.auth())
    ).json()
    assert job["total"] == 1 and job["spec"]["filter"] == {"driver": claims["driver"]}
    empty = await (
        await env.client.post("/v1/jobs", json={"filter": {"tcb_status": "Revoked"}}, headers=env.auth())
    ).json()
    assert empty["total"] == 0
