"""DcapPool through the real dcap-qvl worker (fixtures/tdx/manifest.json is the oracle) and through
fake workers that crash, hang, answer garbage or never start (the pool must never pass on doubt)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from verifier.adapters.dcap.errors import reason_for
from verifier.adapters.dcap.pool import DcapPool
from verifier.core.errors import CheckFailed, Indeterminate
from verifier.core.trust import production_anchors
from verifier.simulator.world import SimulatorWorld

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tdx"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
CASES = {case["id"]: case for case in MANIFEST["cases"]}
TODAY = 1_796_083_200  # 2026-12-01: every fixture's collateral has expired by then
ROOT = production_anchors().intel_root_ca_der
MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")


def _load(case_id: str) -> tuple[bytes, str]:
    case = CASES[case_id]
    return (FIXTURES / case["quote"]).read_bytes(), (FIXTURES / case["collateral"]).read_text()


SAMPLE = "dcapqvl-tdx-v4-uptodate"
SAMPLE_QUOTE, SAMPLE_COLLATERAL = _load(SAMPLE)
SAMPLE_AT = CASES[SAMPLE]["verify_at"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[DcapPool]:
    async with DcapPool(size=2, timeout=10.0) as p:
        yield p


# ------------------------------------------------------------------ real worker, recorded fixtures

RESULTS = [(cid, key) for cid, case in CASES.items() for key in case["results"]]


@MODULE_LOOP
@pytest.mark.parametrize(("case_id", "result_key"), RESULTS, ids=[f"{c}-{k}" for c, k in RESULTS])
async def test_every_manifest_result_is_reproduced_by_the_worker(pool: DcapPool, case_id: str, result_key: str) -> None:
    case, expected = CASES[case_id], CASES[case_id]["results"][result_key]
    quote, collateral = _load(case_id)
    if expected["ok"]:
        result = await pool.verify(quote, collateral, expected["t"], ROOT)
        assert result.status == expected["status"]
        assert list(result.advisory_ids) == expected["advisory_ids"]
        summary = case["claims_summary"]
        assert result.tcb_eval_data_number == summary["tcb"]["eval_data_number"]
        assert result.tcb_date == summary["tcb_date"]
        assert result.claims["tcb"]["status"] == expected["status"]
    else:
        with pytest.raises(CheckFailed) as info:
            await pool.verify(quote, collateral, expected["t"], ROOT)
        error = info.value.details["dcap_error"]
        assert error.replace("\n", " | ") == expected["error"]  # the manifest records newlines as " | "
        assert info.value.reason == reason_for(error) != "dcap_error"
        assert info.value.message == f"dcap-qvl: {error}"


@MODULE_LOOP
@pytest.mark.parametrize("case_id", list(CASES))
async def test_every_fixture_fails_today_because_its_collateral_expired(pool: DcapPool, case_id: str) -> None:
    quote, collateral = _load(case_id)
    with pytest.raises(CheckFailed) as info:
        await pool.verify(quote, collateral, TODAY, ROOT)
    assert info.value.reason in {"crl_expired", "collateral_expired"}


@MODULE_LOOP
async def test_a_simulator_quote_is_up_to_date_under_the_simulator_root_only(pool: DcapPool) -> None:
    world = SimulatorWorld(b"test-dcap-pool")
    quote, collateral = world.tdx_quote(bytes(range(64))), world.collateral_json(TODAY)
    result = await pool.verify(quote, collateral, TODAY, world.anchors.intel_root_ca_der)
    assert result.status == "UpToDate"
    assert result.advisory_ids == ()
    assert isinstance(result.tcb_eval_data_number, int)
    assert result.claims["report"]["TD10"]["report_data"] == bytes(range(64)).hex()
    with pytest.raises(CheckFailed) as info:  # its CRL is not signed by Intel's real root
        await pool.verify(quote, collateral, TODAY, ROOT)
    assert info.value.reason == "crl_invalid"


@MODULE_LOOP
async def test_a_flipped_td_report_byte_is_quote_signature_invalid(pool: DcapPool) -> None:
    quote = bytearray(SAMPLE_QUOTE)
    quote[48 + 136] ^= 0x01  # first byte of MRTD (reference §4.1)
    with pytest.raises(CheckFailed) as info:
        await pool.verify(bytes(quote), SAMPLE_COLLATERAL, SAMPLE_AT, ROOT)
    assert info.value.reason == "quote_signature_invalid"


@MODULE_LOOP
@pytest.mark.parametrize("garbage", [b"", b"\x00" * 7, b"not a quote at all", SAMPLE_QUOTE[:100]])
async def test_garbage_quote_bytes_are_quote_malformed(pool: DcapPool, garbage: bytes) -> None:
    with pytest.raises(CheckFailed) as info:
        await pool.verify(garbage, SAMPLE_COLLATERAL, SAMPLE_AT, ROOT)
    assert info.value.reason == "quote_malformed"


@MODULE_LOOP
async def test_collateral_that_is_not_quote_collateral_json_is_collateral_invalid(pool: DcapPool) -> None:
    with pytest.raises(CheckFailed) as info:
        await pool.verify(SAMPLE_QUOTE, '{"tcb_info": "{}"}', SAMPLE_AT, ROOT)
    assert info.value.reason == "collateral_invalid"


@MODULE_LOOP
async def test_an_out_of_range_time_is_indeterminate_not_a_verdict(pool: DcapPool) -> None:
    with pytest.raises(Indeterminate) as info:
        await pool.verify(SAMPLE_QUOTE, SAMPLE_COLLATERAL, -1, ROOT)
    assert info.value.reason == "dcap_worker_failed"
    assert pool.alive()  # a rejected request does not cost the worker


async def test_twenty_concurrent_verifies_on_two_workers_all_succeed() -> None:
    async with DcapPool(size=2) as pool:
        results = await asyncio.gather(
            *(pool.verify(SAMPLE_QUOTE, SAMPLE_COLLATERAL, SAMPLE_AT, ROOT) for _ in range(20))
        )
        assert pool.alive() and pool.version() == "0.7.0"
    assert {r.status for r in results} == {"UpToDate"}


async def test_clean_shutdown_leaves_no_child_process() -> None:
    async with DcapPool(size=2) as pool:
        await pool.verify(SAMPLE_QUOTE, SAMPLE_COLLATERAL, SAMPLE_AT, ROOT)
        pids = pool.pids()
        assert len(pids) == 2 and all(_exists(pid) for pid in pids)
        started = time.monotonic()
    assert time.monotonic() - started < 1.5  # the workers exit on stdin EOF; no kill after the grace period
    assert not any(_exists(pid) for pid in pids)
    assert not pool.alive()
    with pytest.raises(Indeterminate):
        await pool.verify(SAMPLE_QUOTE, SAMPLE_COLLATERAL, SAMPLE_AT, ROOT)


async def test_a_worker_killed_while_idle_is_replaced_transparently() -> None:
    async with DcapPool(size=1) as pool:
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert not pool.alive()
        result = await pool.verify(SAMPLE_QUOTE, SAMPLE_COLLATERAL, SAMPLE_AT, ROOT)
        assert result.status == "UpToDate" and pool.alive() and pool.pids() != [pid]


# ------------------------------------------------------------------ fake workers

FAKE_WORKER = """
import json, os, sys, time
mode, marker = sys.argv[1], sys.argv[2]
if mode == "no_hello":
    time.sleep(60)
print(json.dumps({"hello": True, "dcap_qvl": "fake"}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if mode == "crash_once" and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    if mode == "hang" or (mode == "hang_once" and not os.path.exists(marker)):
        open(marker, "w").close()
        time.sleep(60)
    if mode == "garbage":
        print("this is not json", flush=True)
        continue
    answer = {"id": req["id"] + (mode == "wrong_id"), "ok": True, "status": "UpToDate", "advisory_ids": [],
              "tcb_eval_data_number": 19, "tcb_date": None, "claims": {}}
    if mode == "half_answer":
        answer = {"id": req["id"], "ok": True, "status": "UpToDate"}
    print(json.dumps(answer), flush=True)
"""


def _fake(tmp_path: Path, mode: str) -> list[str]:
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    return [sys.executable, str(script), mode, str(tmp_path / "crashed")]


async def _verify(pool: DcapPool) -> Any:
    return await pool.verify(b"quote", "{}", 1, b"root")


def _exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def test_a_worker_that_exits_mid_call_is_indeterminate_and_the_next_call_succeeds(tmp_path: Path) -> None:
    async with DcapPool(size=1, command=_fake(tmp_path, "crash_once")) as pool:
        (pid,) = pool.pids()
        with pytest.raises(Indeterminate) as info:
            await _verify(pool)
        assert info.value.reason == "dcap_worker_failed"
        assert pool.alive() and pool.pids() != [pid]  # replaced already
        assert (await _verify(pool)).status == "UpToDate"


async def test_a_hanging_worker_times_out_and_is_killed(tmp_path: Path) -> None:
    async with DcapPool(size=1, timeout=0.5, command=_fake(tmp_path, "hang")) as pool:
        (pid,) = pool.pids()
        started = time.monotonic()
        with pytest.raises(Indeterminate) as info:
            await _verify(pool)
        assert info.value.reason == "dcap_worker_timeout"
        assert time.monotonic() - started < 3
        assert not _exists(pid) and pool.alive() and pool.pids() != [pid]


@pytest.mark.parametrize("mode", ["garbage", "wrong_id", "half_answer"])
async def test_a_worker_answering_garbage_is_indeterminate_never_a_pass(tmp_path: Path, mode: str) -> None:
    async with DcapPool(size=1, command=_fake(tmp_path, mode)) as pool:
        for _ in range(2):  # the replacement is the same broken fake: still no pass
            with pytest.raises(Indeterminate) as info:
                await _verify(pool)
            assert info.value.reason == "dcap_worker_failed"


@pytest.mark.parametrize("mode", ["no_hello", "missing_executable"])
async def test_a_worker_that_cannot_start_does_not_wedge_the_pool(tmp_path: Path, mode: str) -> None:
    command = ["/nonexistent/python"] if mode == "missing_executable" else _fake(tmp_path, mode)
    async with DcapPool(size=1, timeout=0.5, command=command, start_timeout=0.5) as pool:
        assert not pool.alive() and pool.version() is None
        for _ in range(2):  # each call tries to start a worker again and fails fast
            with pytest.raises(Indeterminate) as info:
                await asyncio.wait_for(_verify(pool), 5)
            assert info.value.reason == "dcap_worker_failed"
    assert pool.pids() == []


async def test_a_cancelled_call_does_not_leave_a_worker_out_of_step(tmp_path: Path) -> None:
    async with DcapPool(size=1, timeout=5, command=_fake(tmp_path, "hang_once")) as pool:
        (pid,) = pool.pids()
        task = asyncio.create_task(_verify(pool))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not _exists(pid)  # its late answer could be read as the next call's: killed instead
        assert (await _verify(pool)).status == "UpToDate"  # the empty slot is refilled on the next call
        assert pool.alive()


def test_the_pool_module_does_not_load_dcap_qvl_into_the_service() -> None:
    code = "import sys, verifier.adapters.dcap.pool, verifier.adapters.dcap.errors; sys.exit('dcap_qvl' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


async def test_waiting_callers_are_served_in_turn_not_starved(tmp_path: Path) -> None:
    order: list[str] = []

    async def lane(pool: DcapPool, name: str) -> None:
        for _ in range(4):
            await _verify(pool)
            order.append(name)

    async with DcapPool(size=1, command=_fake(tmp_path, "ok")) as pool:
        await asyncio.gather(lane(pool, "a"), lane(pool, "b"))
    assert order == ["a", "b"] * 4  # a caller giving the worker back does not take it straight back
