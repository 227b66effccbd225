"""Batch re-verification jobs: verdicts recorded through the service (simulator), re-appraised by a job under a
stricter policy or fresh Intel collateral; exactly-once across a crash, a kill -9 and a resume; the dual clock."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from verifier.adapters.ledger import Ledger, check_ledger
from verifier.adapters.ledger.jobs import JobStore
from verifier.app.job_pool import InlineExecutor, StoredJob, process_pool, reverify_stored
from verifier.app.job_spec import JobSpecError, parse_spec
from verifier.app.jobs import JobError
from verifier.app.services import open_services
from verifier.appraise.policy import parse_policy
from verifier.demo import run_demo, serve, simulator_settings
from verifier.simulator import SimulatorWorld
from verifier.simulator.gateway import SimulatedGateway, SimulatorConfig

NOW = 1_790_000_000
LATER = NOW + 30
BANNED_DRIVER = '[policy]\nid = "no-old-drivers"\n[gpu]\nmin_driver = "600.0"\n'


def _clock() -> float:
    return float(NOW)


def _record(tmp_path: Path, rounds: int, world: SimulatorWorld | None = None) -> Path:
    results = asyncio.run(run_demo(config=SimulatorConfig(clock=_clock), db_dir=tmp_path, rounds=rounds, world=world))
    assert [r.verdict["status"] for r in results] == ["pass"] * rounds
    return results[0].db_path


def _exactly_once(db: Path, job_id: str) -> None:
    """Every selected verdict has one item in the job and exactly one verdict superseding it."""
    with Ledger.open(db) as ledger:
        selection = [r[0] for r in ledger.db.execute("SELECT verdict_id FROM job_selection WHERE job_id = ?", [job_id])]
        items = [r[0] for r in ledger.db.execute("SELECT verdict_id FROM job_items WHERE job_id = ?", [job_id])]
        successors = {
            v: ledger.db.execute("SELECT count(*) FROM verdicts WHERE supersedes = ?", [v]).fetchone()[0]
            for v in selection
        }
    assert sorted(items) == sorted(selection)
    assert successors == dict.fromkeys(selection, 1)
    with Ledger.open_readonly(db) as ledger:  # and the job's rows are the ones its new verdicts give
        problems = check_ledger(ledger).problems
    assert problems == [], problems


async def _job(
    db: Path,
    body: dict[str, Any],
    *,
    clock: float = LATER,
    url: str = "http://127.0.0.1:1",
    offline: bool = True,
    **run: Any,
) -> dict[str, Any]:
    settings = simulator_settings(db, url, dcap_workers=1, offline=offline)
    async with open_services(settings, clock=lambda: clock) as svc:
        job = await svc.jobs.create(parse_spec(body))
        return await svc.jobs.run(job["id"], **run)


def test_a_stricter_policy_job_supersedes_every_verdict_and_sums_the_changes(tmp_path: Path) -> None:
    db = _record(tmp_path, 3)
    job = asyncio.run(_job(db, {"policy": BANNED_DRIVER, "at": "captured"}))
    assert (job["state"], job["total"], job["done"], job["changed"], job["errors"]) == ("done", 3, 3, 3, 0)
    assert job["by_change"] == {"pass→fail": 3}
    assert len(job["by_reason"]) == 1 and next(iter(job["by_reason"].values())) == 3
    assert job["clocks"] == {"captured": {"fail": 3}, "job": {"fail": 3}}
    _exactly_once(db, job["id"])
    with Ledger.open(db) as ledger:
        heads = JobStore(ledger).select(trust_profile="simulator")
        new = [ledger.get(v) for v in heads]
    assert all(v is not None and v["status"] == "fail" and v["policy"]["id"] == "no-old-drivers" for v in new)
    # a second --all job selects only the new heads: a superseded verdict is never re-verified again
    again = asyncio.run(_job(db, {}))
    assert again["total"] == 3 and again["by_change"] == {"fail→pass": 3}


def test_fresh_out_of_date_collateral_turns_pass_into_fail_on_the_job_clock_only(tmp_path: Path) -> None:
    world = SimulatorWorld()
    db = _record(tmp_path, 1, world)

    class LaterIntel(SimulatedGateway):  # Intel's TCB recovery: the same platform is now rated OutOfDate
        def _collateral(self, fmspc: str) -> str | None:
            return self.world.collateral_json(LATER, tcb_status="OutOfDate", advisory_ids=("INTEL-SA-01192",))

    async def run() -> dict[str, Any]:
        async with serve(LaterIntel(world, SimulatorConfig(clock=lambda: float(LATER))).app()) as url:
            return await _job(db, {"at": "now", "collateral": "refresh"}, url=url, offline=False)

    job = asyncio.run(run())
    assert (job["state"], job["by_change"], job["by_reason"]) == (
        "done",
        {"pass→fail": 1},
        {"tcb_status_not_allowed": 1},
    )
    assert job["clocks"] == {"captured": {"pass": 1}, "job": {"fail": 1}}
    with Ledger.open(db) as ledger:
        (item,) = JobStore(ledger).items(job["id"])
        verdict = ledger.get(item["new_verdict_id"])
        kept = ledger.evidence(item["new_verdict_id"])
    assert verdict is not None and verdict["status"] == "fail"
    clocks = verdict["claims"]["reverification"]["clocks"]
    assert clocks["captured"] == {"at": NOW, "status": "pass", "reasons": [], "collateral": "recorded"}
    assert clocks["job"] == {
        "at": LATER,
        "status": "fail",
        "reasons": ["tcb_status_not_allowed"],
        "collateral": "refresh",
    }
    (collateral,) = (json.loads(v) for k, v in kept.items() if k.startswith("collateral/"))  # the new evidence
    assert json.loads(collateral["tcb_info"])["tcbLevels"][0]["tcbStatus"] == "OutOfDate"
    # the claim index: which verdicts rest on a platform affected by the advisory, or rated OutOfDate (one query)
    with Ledger.open_readonly(db) as ledger:
        for claims in (
            {"advisory": "INTEL-SA-01192"},
            {"tcb_status": "OutOfDate"},
            {"fmspc": verdict["collateral"][0]["fmspc"], "tcb_status": "OutOfDate"},
        ):
            assert [r["id"] for r in ledger.list(claims=claims)[0]] == [item["new_verdict_id"]]
        assert [r["id"] for r in ledger.list(claims={"tcb_status": "UpToDate"})[0]] == [item["verdict_id"]]


def test_refresh_while_offline_is_indeterminate_not_a_pass(tmp_path: Path) -> None:
    db = _record(tmp_path, 1)
    job = asyncio.run(_job(db, {"at": "now", "collateral": "refresh"}))
    assert job["clocks"] == {"captured": {"pass": 1}, "job": {"indeterminate": 1}}
    assert "collateral_unavailable" in job["by_reason"]


def test_a_job_crashing_after_its_first_batch_resumes_and_processes_each_verdict_once(tmp_path: Path) -> None:
    db = _record(tmp_path, 5)

    class Crash(Exception):
        pass

    def crash(job: dict[str, Any]) -> None:
        raise Crash

    async def first() -> str:
        settings = simulator_settings(db, "http://127.0.0.1:1", dcap_workers=1, offline=True)
        async with open_services(settings, clock=lambda: float(LATER)) as svc:
            job = await svc.jobs.create(parse_spec({"policy": BANNED_DRIVER}))
            with pytest.raises(Crash):
                await svc.jobs.run(job["id"], batch=2, progress=crash)
            assert (await svc.jobs.get(job["id"]))["done"] == 2
            return str(job["id"])

    job_id = asyncio.run(first())

    async def resume() -> dict[str, Any]:
        settings = simulator_settings(db, "http://127.0.0.1:1", dcap_workers=1, offline=True)
        async with open_services(settings, clock=lambda: float(LATER)) as svc:
            return await svc.jobs.run(job_id, batch=2)

    job = asyncio.run(resume())
    assert (job["state"], job["total"], job["done"], job["by_change"]) == ("done", 5, 5, {"pass→fail": 5})
    _exactly_once(db, job_id)
    assert asyncio.run(resume())["done"] == 5  # running a done job again changes nothing
    _exactly_once(db, job_id)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "verifier", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_kill_9_halfway_then_jobs_resume_processes_every_verdict_exactly_once(tmp_path: Path) -> None:
    db = _record(tmp_path, 12)
    policy = tmp_path / "strict.toml"
    policy.write_text(BANNED_DRIVER)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "verifier",
            "reverify",
            "--all",
            "--policy",
            str(policy),
            "--trust",
            "simulator",
            "--batch",
            "1",
            "--db",
            str(db),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    done = 0
    while time.monotonic() < deadline and done < 2:
        time.sleep(0.01)
        with Ledger.open_readonly(db) as ledger:
            if ledger.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'job_items'").fetchone():
                done = ledger.db.execute("SELECT count(*) FROM job_items").fetchone()[0]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    listed = _cli("jobs", "list", "--db", str(db), "--json")
    assert listed.returncode == 0, listed.stderr
    (job,) = json.loads(listed.stdout)
    assert 2 <= job["done"] < job["total"] == 12 and job["state"] == "interrupted"
    resumed = _cli("jobs", "resume", job["id"], "--db", str(db), "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert {k: summary[k] for k in ("job", "total", "changed", "by_change")} == {
        "job": job["id"],
        "total": 12,
        "changed": 12,
        "by_change": {"pass→fail": 12},
    }
    assert sum(summary["by_reason"].values()) == 12
    _exactly_once(db, job["id"])
    shown = json.loads(_cli("jobs", "show", job["id"], "--db", str(db), "--json").stdout)
    assert (shown["state"], shown["done"]) == ("done", 12)


def test_cli_reverify_where_and_cancel_and_one_id_still_works(tmp_path: Path) -> None:
    db = _record(tmp_path, 2)
    with Ledger.open_readonly(db) as ledger:
        first, second = sorted(r[0] for r in ledger.db.execute("SELECT id FROM verdicts"))
    out = _cli("reverify", "--where", f"ids={first}", "--trust", "simulator", "--db", str(db), "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["total"], summary["changed"], summary["by_change"], summary["by_reason"]) == (1, 0, {}, {})
    cancelled = _cli("jobs", "cancel", summary["job"], "--db", str(db), "--json")
    assert json.loads(cancelled.stdout)["state"] == "done"  # a finished job stays done
    one = _cli("reverify", second, "--at", str(NOW), "--db", str(db), "--json")
    assert one.returncode == 0 and json.loads(one.stdout)["supersedes"] == second
    bad = _cli("reverify", "--where", "colour=red", "--db", str(db))
    assert bad.returncode == 1 and "colour=red" in bad.stderr
    neither = _cli("reverify", "--db", str(db))
    assert neither.returncode == 1 and "--all" in neither.stderr


def test_a_cancelled_job_stops_and_is_not_resumed_by_a_service_restart(tmp_path: Path) -> None:
    db = _record(tmp_path, 3)

    async def go() -> tuple[dict[str, Any], list[str]]:
        settings = simulator_settings(db, "http://127.0.0.1:1", dcap_workers=1, offline=True)
        async with open_services(settings, clock=lambda: float(LATER)) as svc:
            job = await svc.jobs.create(parse_spec({}))
            cancelled = await svc.jobs.cancel(job["id"])
            ran = await svc.jobs.run(job["id"])
            assert ran["done"] == 0
            return cancelled, await svc.jobs.resume_unfinished()

    cancelled, resumed = asyncio.run(go())
    assert cancelled["state"] == "cancelled" and resumed == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "delete"}, "kind"),
        ({"at": "yesterday"}, "at"),
        ({"at": -1}, "at"),
        ({"collateral": "cached"}, "collateral"),
        ({"filter": {"status": "maybe"}}, "filter.status"),
        ({"filter": {"colour": "red"}}, "filter"),
        ({"filter": {"ids": ["x"]}}, "filter.ids"),
        ({"filter": {"since": "yesterday"}}, "filter.since"),
        ({"policy": ""}, "policy"),
        ({"surprise": 1}, "surprise"),
        ([], "body"),
    ],
)
def test_bad_job_requests_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(JobSpecError) as info:
        parse_spec(body)
    assert info.value.field == field


def test_a_policy_that_is_neither_the_services_id_nor_toml_is_refused(tmp_path: Path) -> None:
    db = _record(tmp_path, 1)
    with pytest.raises(JobSpecError, match="neither the service's policy id"):
        asyncio.run(_job(db, {"policy": "strict-2027"}))


def test_early_collateral_asks_intel_for_the_early_tcb_update_and_warns_before_enforcement(tmp_path: Path) -> None:
    world = SimulatorWorld()
    db = _record(tmp_path, 1, world)
    asked: list[tuple[str, str]] = []

    class EarlyIntel(SimulatedGateway):  # the standard update still rates the platform UpToDate; the early one not
        def app(self) -> Any:
            app = super().app()

            @web.middleware
            async def remember(request: web.Request, handler: Any) -> Any:
                if "/certification/" in request.path:
                    asked.append((request.path, request.query.get("update", "standard")))
                return await handler(request)

            app.middlewares.append(remember)
            return app

        def _collateral(self, fmspc: str) -> str | None:
            early = bool(asked) and asked[-1][1] == "early"
            return self.world.collateral_json(LATER, tcb_status="OutOfDate" if early else "UpToDate")

    async def run() -> dict[str, Any]:
        async with serve(EarlyIntel(world, SimulatorConfig(clock=lambda: float(LATER))).app()) as url:
            return await _job(db, {"at": "now", "collateral": "early"}, url=url, offline=False)

    job = asyncio.run(run())
    assert ("/tdx/certification/v4/tcb", "early") in asked and ("/tdx/certification/v4/qe/identity", "early") in asked
    assert (job["collateral"], job["by_change"], job["by_reason"]) == (
        "early",
        {"pass→fail": 1},
        {"tcb_status_not_allowed": 1},
    )
    with Ledger.open_readonly(db) as ledger:
        (item,) = JobStore(ledger).items(job["id"])
        verdict = ledger.get(item["new_verdict_id"])
    assert verdict is not None and verdict["claims"]["reverification"]["clocks"]["job"]["collateral"] == "early"


def test_a_job_made_with_the_services_policy_refuses_to_run_under_another_policy_or_trust_profile(
    tmp_path: Path,
) -> None:
    db = _record(tmp_path, 1)
    strict = tmp_path / "strict.toml"
    strict.write_text(BANNED_DRIVER)
    base = simulator_settings(db, "http://127.0.0.1:1", dcap_workers=1, offline=True)

    async def create() -> str:
        async with open_services(base, clock=lambda: float(LATER)) as svc:
            return str((await svc.jobs.create(parse_spec({})))["id"])

    job_id = asyncio.run(create())

    async def run(settings: Any) -> None:
        async with open_services(settings, clock=lambda: float(LATER)) as svc:
            await svc.jobs.run(job_id)

    with pytest.raises(JobError, match="appraises with policy default"):
        asyncio.run(run(replace(base, policy_path=str(strict))))
    with pytest.raises(JobError, match="re-verifies simulator verdicts"):
        asyncio.run(run(replace(base, trust_profile="production", refs_path=None)))
    with Ledger.open_readonly(db) as ledger:
        assert JobStore(ledger).items(job_id) == []


def test_cli_cancel_stops_a_queued_job_and_resume_leaves_it_cancelled(tmp_path: Path) -> None:
    db = _record(tmp_path, 2)
    with Ledger.open(db) as ledger:
        store = JobStore(ledger)
        job_id = store.create(
            spec={},
            selection=store.select(trust_profile="simulator"),
            policy_text=BANNED_DRIVER,
            policy_id="no-old-drivers",
            policy_sha256="0" * 64,
            trust_profile="simulator",
            at=None,
            collateral="recorded",
        )
    cancelled = _cli("jobs", "cancel", job_id, "--db", str(db), "--json")
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["state"] == "cancelled"
    resumed = _cli("jobs", "resume", job_id, "--db", str(db), "--json")
    assert resumed.returncode == 3 and json.loads(resumed.stdout)["done"] == 0
    unknown = _cli("jobs", "show", "j_0000000000000000000000000Z", "--db", str(db))
    assert unknown.returncode == 1 and "no job" in unknown.stderr


def test_a_job_in_two_worker_processes_gives_the_same_verdicts_as_in_process(tmp_path: Path) -> None:
    db = _record(tmp_path, 4)
    job = asyncio.run(_job(db, {"policy": BANNED_DRIVER}, processes=2, concurrency=2, batch=3))
    assert (job["state"], job["done"], job["by_change"]) == ("done", 4, {"pass→fail": 4})
    _exactly_once(db, job["id"])
    back = asyncio.run(_job(db, {}))  # in process, default policy: each worker-made verdict passes again
    assert back["by_change"] == {"fail→pass": 4}
    with Ledger.open_readonly(db) as ledger:
        made = [ledger.get(i["new_verdict_id"]) for i in JobStore(ledger).items(job["id"])]
    assert all(v is not None and v["claims"]["reverification"]["job"] == job["id"] for v in made)


def test_workers_read_their_items_by_id_each_exactly_once_and_name_the_kept_evidence_by_digest(tmp_path: Path) -> None:
    db = _record(tmp_path, 3)
    policy = parse_policy(BANNED_DRIVER.encode(), source="test")
    with Ledger.open(db) as ledger:
        store = JobStore(ledger)
        selection = store.select(trust_profile="simulator")
        job_id = store.create(
            spec={},
            selection=selection,
            policy_text=BANNED_DRIVER,
            policy_id=policy.id,
            policy_sha256=policy.sha256,
            trust_profile="simulator",
            at=None,
            collateral="recorded",
        )
        recorded = {v: ledger.evidence_with_digests(v) for v in selection}
    missing = "v_00000000000000000000000000"
    stored = StoredJob(db_path=str(db), job_id=job_id, policy=policy, at=None, retain_bodies="full")
    with process_pool(2, trust_profile="simulator", refs_path=None, dcap_timeout=10.0, stored=stored) as pool:
        items = list(pool.map(reverify_stored, [*selection, missing]))
    assert [i.verdict_id for i in items] == [*selection, missing]
    *made, lost = items
    assert lost.new_verdict is None and lost.error is not None and "vanished" in lost.error
    for item in made:
        assert item.new_verdict is not None and item.new_verdict["supersedes"] == item.verdict_id
        assert (item.old_status, item.job_status, item.error) == ("pass", "fail", None)
        # nothing new with recorded collateral: every kept file is named by the digest the worker read, no bytes
        assert item.evidence == {}
        assert item.stored == {name: sha for name, (sha, _) in recorded[item.verdict_id].items()}
    with Ledger.open(db) as ledger:
        first = JobStore(ledger).commit(job_id, made)
        again = JobStore(ledger).commit(job_id, made)  # a batch committed twice is stored once
        assert [i.verdict_id for i in first] == selection and again == []
        for item in first:
            assert item.new_verdict is not None
            kept = ledger.evidence_with_digests(item.new_verdict["id"])
            assert kept == recorded[item.verdict_id]
        assert check_ledger(ledger).ok
    _exactly_once(db, job_id)


def test_the_inline_executor_runs_each_call_at_once_and_hands_errors_to_the_awaiting_caller() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(InlineExecutor(), sum, [1, 2]) == 3
        with pytest.raises(ZeroDivisionError):
            await loop.run_in_executor(InlineExecutor(), divmod, 1, 0)

    asyncio.run(run())


@pytest.mark.parametrize("processes", [0, 2])
def test_a_cancel_seen_after_a_batch_commits_drops_the_batch_evaluated_ahead(tmp_path: Path, processes: int) -> None:
    db = _record(tmp_path, 5)
    seen: list[int] = []

    def cancel_after_the_first_batch(job: dict[str, Any]) -> None:
        seen.append(job["done"])
        if len(seen) == 1:  # another process cancels: seen once the batch being evaluated now has committed
            with Ledger.open(db) as ledger:
                JobStore(ledger).event(job["id"], "cancelled")

    job = asyncio.run(
        _job(db, {"policy": BANNED_DRIVER}, processes=processes, batch=2, progress=cancel_after_the_first_batch)
    )
    assert (job["state"], job["done"], seen) == ("cancelled", 4, [2, 4])
    with Ledger.open_readonly(db) as ledger:
        items = JobStore(ledger).items(job["id"])
        selection = [
            r[0] for r in ledger.db.execute("SELECT verdict_id FROM job_selection WHERE job_id = ?", [job["id"]])
        ]
        successors = {
            v: ledger.db.execute("SELECT count(*) FROM verdicts WHERE supersedes = ?", [v]).fetchone()[0]
            for v in selection
        }
    assert [i["verdict_id"] for i in items] == selection[:4]
    # the third batch was evaluated while the second committed, then dropped: nothing of it was stored
    assert successors == {v: int(v in selection[:4]) for v in selection}
