"""The verdict ledger: round trips, dedupe, append-only, paging, migrations, corruption, secrets, reuse."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import sqlite3
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier.adapters.ledger import MAX_LIMIT, REUSE_REQUIRES, Ledger, LedgerCorruptionError, check_ledger

REPORT = b'{"signing_address": "0xabc", "intel_quote": "04000200"}'
BUNDLE = {
    "meta.json": b'{"model": "m1"}',
    "request.body": b'{"messages": []}',
    "response.body": b'{"choices": []}',
    "signature.json": b'{"text": "x", "signature": "0x1"}',
    "report.json": REPORT,
    "collateral/tdx-90C06F000000.json": b"{}" * 200,
}
PASSING: list[dict[str, Any]] = [
    {"id": c, "status": "pass", "severity": "required", "reason": None, "message": "", "details": {}}
    for c in (*REUSE_REQUIRES, "request.hash")
]


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_verdict(**overrides: Any) -> dict[str, Any]:
    verdict: dict[str, Any] = {
        "id": None,
        "status": "pass",
        "trust_profile": "production",
        "simulator": False,
        "subject": {
            "model": "m1",
            "chat_id": "chat-1",
            "gateway": "https://gw.example",
            "signing_algo": "ecdsa",
            "signer": "0xabc",
            "request_sha256": "aa" * 32,
            "response_sha256": "bb" * 32,
            "signed_text": "aa:bb",
        },
        "nonce": {"value": "11" * 32, "origin": "minted"},
        "times": {"verified_at": 1_700_000_000, "captured_at": 1_700_000_000, "evaluated_at": 1.5, "duration_ms": 3.25},
        "policy": {"id": "default", "sha256": "cc" * 32},
        "versions": {"verifier": "0.1.0", "dcap_qvl": "0.7.0", "python": "3.11"},
        "checks": copy.deepcopy(PASSING),
        "claims": {"tcb_status": "UpToDate"},
        "notes": [],
        "collateral": [],
        "attestation": {
            "format": "dstack",
            "paths": ["$"],
            "hops": [],
            "origin": "fetched",
            "fetched_at": 1_700_000_000,
            "reused_from": None,
            "age_s": None,
        },
        "supersedes": None,
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            verdict[section][field] = value
        else:
            verdict[key] = value
    return verdict


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(clock: Clock) -> Iterator[Ledger]:
    with Ledger.open(":memory:", clock=clock) as opened:
        yield opened


def test_round_trip_verdict_and_evidence(ledger: Ledger) -> None:
    verdict = make_verdict()
    verdict_id = ledger.save(verdict, BUNDLE)
    assert verdict_id.startswith("v_") and len(verdict_id) == 28
    assert ledger.get(verdict_id) == {**verdict, "id": verdict_id}
    assert verdict["id"] is None  # the caller's dict is left alone
    assert ledger.evidence(verdict_id) == BUNDLE
    assert ledger.get("v_00000000000000000000000000") is None
    with pytest.raises(KeyError):
        ledger.evidence("v_00000000000000000000000000")


def test_checks_rows_are_written_for_faceting(ledger: Ledger) -> None:
    failing = {"id": "tdx.tcb", "status": "fail", "severity": "required", "reason": "tcb_out_of_date", "message": "m"}
    ledger.save(make_verdict(status="fail", checks=[*PASSING, failing]), {})
    ledger.save(make_verdict(subject__model="m2"), {})
    assert ledger.check_counts()["tdx.tcb"] == {"fail": 1}
    assert ledger.check_counts()["tdx.quote"] == {"pass": 2}
    assert ledger.check_counts(model="m2") == {c["id"]: {"pass": 1} for c in PASSING}
    row = next(ledger.db.query("SELECT * FROM checks WHERE check_id = 'tdx.tcb'"))
    assert row["reason"] == "tcb_out_of_date" and row["severity"] == "required"


def test_evidence_blobs_deduplicated_across_verdicts(ledger: Ledger) -> None:
    first = ledger.save(make_verdict(), BUNDLE)
    second = ledger.save(make_verdict(), {**BUNDLE, "response.body": b"another response"})
    assert ledger.db.table("evidence").count == len(BUNDLE) + 1
    report_rows = list(
        ledger.db.query("SELECT count(*) AS n FROM evidence WHERE data IS NOT NULL AND size = ?", [len(REPORT)])
    )
    assert report_rows == [{"n": 1}]
    assert ledger.evidence(first)["response.body"] == BUNDLE["response.body"]
    assert ledger.evidence(second)["response.body"] == b"another response"
    assert ledger.evidence(second)["report.json"] == REPORT


def test_evidence_is_stored_zlib_compressed(ledger: Ledger) -> None:
    ledger.save(make_verdict(), BUNDLE)
    row = next(ledger.db.query("SELECT * FROM evidence WHERE size = 400"))
    assert row["encoding"] == "zlib" and len(row["data"]) < 400


def test_supersedes_links_and_earlier_verdict_is_unchanged(ledger: Ledger) -> None:
    earlier = ledger.save(make_verdict(status="indeterminate"), BUNDLE)
    before = ledger.get(earlier)
    later = ledger.save(make_verdict(supersedes=earlier), BUNDLE)
    assert ledger.get(earlier) == before
    assert ledger.get(later)["supersedes"] == earlier  # type: ignore[index]
    rows, _ = ledger.list()
    assert [(r["id"], r["supersedes"]) for r in rows] == [(later, earlier), (earlier, None)]


def test_unknown_supersedes_rejected_and_nothing_written(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="v_NOPE"):
        ledger.save(make_verdict(supersedes="v_NOPE"), BUNDLE)
    assert ledger.db.table("verdicts").count == 0
    assert ledger.db.table("evidence").count == 0


def test_verdict_rows_cannot_be_updated_or_deleted(ledger: Ledger) -> None:
    verdict_id = ledger.save(make_verdict(), {})
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.db.execute("UPDATE verdicts SET status = 'fail' WHERE id = ?", [verdict_id])
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.db.execute("DELETE FROM verdicts")
    assert ledger.get(verdict_id)["status"] == "pass"  # type: ignore[index]


@pytest.mark.parametrize(
    ("verdict", "message"),
    [
        (make_verdict(id="v_already"), "already has id"),
        (make_verdict(status="skipped"), "status"),
        (make_verdict(claims={"x": float("nan")}), "JSON"),
        (make_verdict(checks={"tdx.quote": "pass"}), "checks"),
        (make_verdict(checks=[{"status": "pass"}]), "checks"),
    ],
)
def test_invalid_verdicts_rejected(ledger: Ledger, verdict: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ledger.save(verdict, {})
    assert ledger.db.table("verdicts").count == 0


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../x", "a/../../x", "a\\b", "a\0b"])
def test_unsafe_evidence_names_rejected(ledger: Ledger, name: str) -> None:
    with pytest.raises(ValueError, match="relative path"):
        ledger.save(make_verdict(), {name: b"x"})


def test_ids_sort_by_creation_even_when_the_clock_stalls_or_goes_back(ledger: Ledger, clock: Clock) -> None:
    ids = []
    for step in (0, 0, 0, -5, 0, 10):
        clock.now += step
        ids.append(ledger.save(make_verdict(), {}))
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def _populate(ledger: Ledger, clock: Clock, n: int) -> list[str]:
    ids = []
    for i in range(n):
        clock.now = 1_700_000_000.0 + i
        ids.append(
            ledger.save(
                make_verdict(
                    status=("pass", "fail", "indeterminate")[i % 3],
                    subject__model=f"m{i % 2}",
                    subject__signer=f"0x{i % 4}",
                ),
                {},
            )
        )
    return ids


def test_list_filters_by_status_model_signer(ledger: Ledger, clock: Clock) -> None:
    ids = _populate(ledger, clock, 12)
    rows, cursor = ledger.list(status="fail")
    assert [r["id"] for r in rows] == [ids[i] for i in (10, 7, 4, 1)] and cursor is None
    rows, _ = ledger.list(model="m0", signer="0x2")
    assert [r["id"] for r in rows] == [ids[i] for i in (10, 6, 2)]
    rows, _ = ledger.list(status="pass", model="m1")
    assert [r["id"] for r in rows] == [ids[i] for i in (9, 3)]
    assert ledger.list(status="pass", model="nope") == ([], None)
    assert set(rows[0]) == {
        "id",
        "status",
        "model",
        "signer",
        "created_at",
        "verified_at",
        "trust_profile",
        "supersedes",
    }


def test_list_filters_by_since_until_on_created_at(ledger: Ledger, clock: Clock) -> None:
    ids = _populate(ledger, clock, 12)
    rows, _ = ledger.list(since=1_700_000_003.0, until=1_700_000_006.0)  # since inclusive, until exclusive
    assert [r["id"] for r in rows] == [ids[5], ids[4], ids[3]]
    assert [r["created_at"] for r in rows] == [1_700_000_005.0, 1_700_000_004.0, 1_700_000_003.0]


def test_cursor_paging_across_120_verdicts_without_duplicates_or_gaps(ledger: Ledger, clock: Clock) -> None:
    ids = _populate(ledger, clock, 120)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        rows, cursor = ledger.list(limit=7, cursor=cursor)
        seen += [r["id"] for r in rows]
        pages += 1
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert pages == 18  # 17 full pages + 1 page of 1; no trailing empty page
    fails = []
    cursor = None
    while True:
        rows, cursor = ledger.list(status="fail", limit=11, cursor=cursor)
        fails += [r["id"] for r in rows]
        if cursor is None:
            break
    assert fails == ids[1::3][::-1]


def test_list_limit_is_capped_and_bad_cursors_rejected(ledger: Ledger, clock: Clock) -> None:
    _populate(ledger, clock, MAX_LIMIT + 5)
    rows, cursor = ledger.list(limit=10_000)
    assert len(rows) == MAX_LIMIT and cursor is not None
    for bad in ("not base64!", base64.urlsafe_b64encode(b"x' OR 1=1 --").decode(), "\u00e9"):
        with pytest.raises(ValueError, match="invalid cursor"):
            ledger.list(cursor=bad)
    with pytest.raises(ValueError, match="limit"):
        ledger.list(limit=0)


def test_migrations_idempotent_when_opened_twice(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger.open(path).close()
    with Ledger.open(path) as again:
        applied = list(
            again.db.query("SELECT name FROM _sqlite_migrations WHERE migration_set = 'verifier.adapters.ledger'")
        )
        names = [row["name"] for row in applied]
        assert names == [
            "0001_initial",
            "0002_append_only_keys_chain",
            "0003_reuse_key_gateway",
            "0004_jobs",
            "0005_tlog",
            "0006_key_log",
            "0007_no_replace",
        ]
        assert {
            "verdicts",
            "checks",
            "evidence",
            "verdict_evidence",
            "attestations",
            "heartbeat",
            "api_keys",
            "api_key_revocations",
            "collateral_cache",
        } <= set(again.db.table_names())


def test_file_db_reopened_keeps_everything(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path, clock=clock) as ledger:
        first = ledger.save(make_verdict(), BUNDLE)
        clock.now += 1
        second = ledger.save(make_verdict(supersedes=first), BUNDLE)
    with Ledger.open(path, clock=clock) as reopened:
        assert reopened.get(first) == {**make_verdict(), "id": first}
        assert reopened.evidence(second) == BUNDLE
        assert [r["id"] for r in reopened.list()[0]] == [second, first]
        assert (
            reopened.find_reusable_attestation(
                signer="0xabc",
                signing_algo="ecdsa",
                model="m1",
                gateway="https://gw.example",
                now=clock.now,
                max_age=60,
            )
            is not None
        )
        clock.now -= 100  # a stale clock on restart still yields ids after the stored ones
        assert reopened.save(make_verdict(), {}) > second


def test_wal_mode_busy_timeout_and_foreign_keys_on(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        assert ledger.db.journal_mode == "wal"
        assert ledger.db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert ledger.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_corruption_of_a_blob_detected(ledger: Ledger) -> None:
    verdict_id = ledger.save(make_verdict(), BUNDLE)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger.db.execute("UPDATE evidence SET data = ?", [b"x"])
    ledger.db.execute("DROP TRIGGER evidence_no_update")  # what someone editing the file by hand can do
    ledger.db.execute(
        "UPDATE evidence SET data = ? WHERE size = ?", [zlib.compress(REPORT.replace(b"abc", b"abd")), len(REPORT)]
    )
    with pytest.raises(LedgerCorruptionError, match=r"report\.json.*sha256"):
        ledger.evidence(verdict_id)
    ledger.db.execute("UPDATE evidence SET data = ? WHERE size = ?", [b"garbage", len(REPORT)])
    with pytest.raises(LedgerCorruptionError, match="does not decompress"):
        ledger.evidence(verdict_id)


@pytest.mark.parametrize(
    ("verdict", "evidence", "secret"),
    [
        (make_verdict(notes=[{"code": "x", "message": "sent Bearer sk-live-123456"}]), {}, "Bearer sk-live-123456"),
        (make_verdict(), {"meta.json": b'{"auth": "sk-live-123456"}'}, "Bearer sk-live-123456"),  # bare token
        (make_verdict(claims={"h": 'k"ey\u00e9'}), {}, 'k"ey\u00e9'),  # JSON-escaped form
        (make_verdict(), {"sk-live-123456.txt": b""}, "sk-live-123456"),  # in a file name
    ],
)
def test_secrets_refused(ledger: Ledger, verdict: dict[str, Any], evidence: dict[str, bytes], secret: str) -> None:
    with pytest.raises(ValueError, match="secret") as excinfo:
        ledger.save(verdict, evidence, secrets=[secret])
    assert secret not in str(excinfo.value)
    assert ledger.db.table("verdicts").count == 0


def test_absent_or_empty_secrets_do_not_block(ledger: Ledger) -> None:
    assert ledger.save(make_verdict(), BUNDLE, secrets=["", "   ", "Bearer ", "sk-not-in-there"])


def _reuse(ledger: Ledger, **overrides: Any) -> dict[str, Any] | None:
    query: dict[str, Any] = {
        "signer": "0xabc",
        "signing_algo": "ecdsa",
        "model": "m1",
        "gateway": "https://gw.example",
        "now": 1_700_000_100.0,
        "max_age": 300,
    }
    return ledger.find_reusable_attestation(**{**query, **overrides})


def test_find_reusable_attestation_honours_max_age(ledger: Ledger) -> None:
    old = ledger.save(make_verdict(attestation__fetched_at=1_700_000_000), BUNDLE)
    new = ledger.save(make_verdict(attestation__fetched_at=1_700_000_050), BUNDLE)
    assert _reuse(ledger) == {
        "verdict_id": new,
        "captured_at": 1_700_000_050,
        "age_s": 50,
        "report_sha256": hashlib.sha256(REPORT).hexdigest(),
        "nonce": "11" * 32,
    }
    assert _reuse(ledger, max_age=50)["verdict_id"] == new  # type: ignore[index]
    assert _reuse(ledger, max_age=49) is None
    assert _reuse(ledger, now=1_700_000_040.0)["verdict_id"] == old  # type: ignore[index]  # never one from the future
    assert _reuse(ledger, now=1_700_000_400.0) is None


def test_find_reusable_attestation_matches_signer_algo_model_gateway_and_profile(ledger: Ledger) -> None:
    ledger.save(make_verdict(trust_profile="simulator"), BUNDLE)
    assert _reuse(ledger) is not None
    assert _reuse(ledger, signer="0xdef") is None
    assert _reuse(ledger, signing_algo="ed25519") is None
    assert _reuse(ledger, model="m2") is None
    assert _reuse(ledger, model=None) is None
    assert _reuse(ledger, gateway="https://other.example") is None
    assert _reuse(ledger, gateway=None) is None
    assert _reuse(ledger, trust_profile="production") is None
    assert _reuse(ledger, trust_profile="simulator") is not None


@pytest.mark.parametrize("check_id", REUSE_REQUIRES)
@pytest.mark.parametrize("status", ["fail", "indeterminate", "skipped", "missing"])
def test_find_reusable_attestation_requires_the_passing_checks(ledger: Ledger, check_id: str, status: str) -> None:
    checks = [c if c["id"] != check_id else {**c, "status": status, "reason": "r"} for c in PASSING]
    ledger.save(make_verdict(checks=[c for c in checks if c["status"] != "missing"]), BUNDLE)
    assert _reuse(ledger) is None


@pytest.mark.parametrize(
    "verdict",
    [
        make_verdict(nonce={"value": "22" * 32, "origin": "supplied"}),
        make_verdict(nonce={"value": None, "origin": None}),
        make_verdict(attestation__reused_from="v_X", attestation__origin="reused", attestation__age_s=9),
        make_verdict(attestation__reused_from="v_X"),
        make_verdict(attestation__origin="recorded"),
        make_verdict(attestation__origin="reused"),
        make_verdict(attestation__fetched_at=None),
    ],
    ids=[
        "supplied-nonce",
        "no-nonce",
        "reused",
        "reused-from-only",
        "recorded-not-fetched",
        "origin-reused",
        "no-fetch-time",
    ],
)
def test_find_reusable_attestation_needs_a_fresh_minted_fetch_by_this_verifier(
    ledger: Ledger, verdict: dict[str, Any]
) -> None:
    ledger.save(verdict, BUNDLE)
    assert _reuse(ledger) is None


def test_a_reverification_never_becomes_a_reuse_source(ledger: Ledger) -> None:
    original = ledger.save(make_verdict(attestation__origin="recorded", attestation__fetched_at=None), BUNDLE)
    ledger.save(make_verdict(supersedes=original), BUNDLE)  # even one claiming a fresh fetch
    assert _reuse(ledger) is None


def test_reusable_attestation_needs_the_report_in_the_bundle(ledger: Ledger) -> None:
    ledger.save(make_verdict(), {k: v for k, v in BUNDLE.items() if k != "report.json"})
    assert _reuse(ledger) is None


def test_healthy_when_writable_and_not_after_close(clock: Clock) -> None:
    ledger = Ledger.open(":memory:", clock=clock)
    assert ledger.healthy()
    assert not ledger.db.conn.in_transaction
    ledger.close()
    assert not ledger.healthy()


def test_healthy_is_false_while_another_writer_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(path) as ledger:
        ledger.db.execute("PRAGMA busy_timeout = 50")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            assert not ledger.healthy()
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert ledger.healthy()


def test_verdict_without_checks_or_evidence(ledger: Ledger) -> None:
    verdict_id = ledger.save(make_verdict(status="indeterminate", checks=[]), {})
    assert ledger.get(verdict_id)["checks"] == []  # type: ignore[index]
    assert ledger.evidence(verdict_id) == {}
    assert _reuse(ledger) is None


def test_two_writers_on_one_file_serialise_with_increasing_ids(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger.open(path).close()
    service, cli = Ledger.open(path), Ledger.open(path)

    def save_many(ledger: Ledger) -> list[str]:
        return [ledger.save(make_verdict(), BUNDLE) for _ in range(25)]

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            batches = list(pool.map(save_many, (service, cli)))
        assert all(batch == sorted(batch) for batch in batches)
        saved = batches[0] + batches[1]
        listed, _ = service.list(limit=100)
        assert sorted(r["id"] for r in listed) == sorted(saved) and len(set(saved)) == 50
    finally:
        service.close()
        cli.close()


def test_connection_usable_from_another_thread(ledger: Ledger) -> None:
    with ThreadPoolExecutor(max_workers=1) as writer:
        verdict_id = writer.submit(ledger.save, make_verdict(), BUNDLE).result()
    assert ledger.get(verdict_id) is not None


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)
OPTIONAL_TEXT = st.none() | st.text()


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    extra=st.dictionaries(st.text().filter(lambda k: k not in {"id", "status", "supersedes"}), JSON_VALUES, max_size=5),
    status=st.sampled_from(["pass", "fail", "indeterminate"]),
    model=OPTIONAL_TEXT,
    signer=OPTIONAL_TEXT,
    details=st.dictionaries(st.text(), JSON_VALUES, max_size=3),
    evidence=st.dictionaries(
        st.from_regex(r"[a-z]{1,8}(/[a-z0-9_-]{1,8})?(\.[a-z]{1,4})?", fullmatch=True),
        st.binary(max_size=64),
        max_size=4,
    ),
)
def test_hypothesis_arbitrary_json_verdicts_round_trip(
    ledger: Ledger,
    extra: dict[str, Any],
    status: str,
    model: str | None,
    signer: str | None,
    details: dict[str, Any],
    evidence: dict[str, bytes],
) -> None:
    verdict = make_verdict(status=status, subject__model=model, subject__signer=signer)
    verdict["checks"][0]["details"] = details
    verdict.update(extra)
    expected = json.loads(json.dumps(verdict))
    verdict_id = ledger.save(verdict, evidence)
    assert ledger.get(verdict_id) == {**expected, "id": verdict_id}
    assert ledger.evidence(verdict_id) == evidence


def test_a_save_blocked_past_the_busy_timeout_is_ledger_busy_and_writes_nothing(tmp_path: Path) -> None:
    from verifier.adapters.ledger import LedgerBusy

    path = tmp_path / "ledger.db"
    with Ledger.open(path, busy_timeout_ms=50) as ledger:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(LedgerBusy):
                ledger.save(make_verdict(), BUNDLE)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert ledger.db.table("verdicts").count == 0 and not ledger.db.conn.in_transaction
        assert ledger.save(make_verdict(), BUNDLE)


@pytest.mark.parametrize("kind", ["missing folder", "directory", "not sqlite"])
def test_a_path_that_is_not_a_ledger_is_a_ledger_error_naming_it(tmp_path: Path, kind: str) -> None:
    from verifier.adapters.ledger import LedgerError

    path = {"missing folder": tmp_path / "no" / "x.db", "directory": tmp_path, "not sqlite": tmp_path / "x.db"}[kind]
    if kind == "not sqlite":
        path.write_bytes(b"plain text, not a database" * 50)
    for opener in (Ledger.open, Ledger.open_readonly):
        with pytest.raises(LedgerError, match=str(path.name)):
            opener(path)


def test_strings_with_lone_surrogates_round_trip_and_index_columns_stay_storable(ledger: Ledger) -> None:
    verdict = make_verdict(subject__model="m\ud800", notes=[{"code": "x", "message": "upstream said \udfff"}])
    verdict_id = ledger.save(verdict, BUNDLE)
    assert ledger.get(verdict_id) == {**verdict, "id": verdict_id}
    row = next(ledger.db.query("SELECT model FROM verdicts WHERE id = ?", [verdict_id]))
    assert row["model"] == "m\\ud800"


def test_stored_evidence_is_referenced_by_digest_and_reads_back_the_same_bytes(ledger: Ledger) -> None:
    earlier = ledger.save(make_verdict(), BUNDLE)
    recorded = ledger.evidence_with_digests(earlier)
    assert {n: d for n, (_, d) in recorded.items()} == BUNDLE
    assert all(sha == hashlib.sha256(d).hexdigest() for sha, d in recorded.values())
    blobs = ledger.db.table("evidence").count
    later = ledger.save(
        make_verdict(supersedes=earlier),
        {"collateral/new.json": b"{}"},
        stored_evidence={n: sha for n, (sha, _) in recorded.items()},
    )
    assert ledger.evidence(later) == {**BUNDLE, "collateral/new.json": b"{}"}
    assert ledger.db.table("evidence").count == blobs + 1
    assert check_ledger(ledger).ok


@pytest.mark.parametrize(
    ("evidence", "stored", "secrets", "message"),
    [
        ({}, {"report.json": "ab" * 32}, (), "holds no blob"),
        ({}, {"report.json": "AB" * 32}, (), "expected a sha256"),
        ({}, {"report.json": "ab"}, (), "expected a sha256"),
        ({}, {"../x": hashlib.sha256(REPORT).hexdigest()}, (), "relative path"),
        ({"report.json": REPORT}, {"report.json": hashlib.sha256(REPORT).hexdigest()}, (), "both as bytes"),
        ({}, {"report.json": hashlib.sha256(REPORT).hexdigest()}, ("sk-secret",), "cannot be searched"),
    ],
)
def test_stored_evidence_that_is_not_held_or_not_checkable_is_refused_and_nothing_written(
    ledger: Ledger, evidence: dict[str, bytes], stored: dict[str, str], secrets: tuple[str, ...], message: str
) -> None:
    ledger.save(make_verdict(), BUNDLE)
    verdicts, links = ledger.db.table("verdicts").count, ledger.db.table("verdict_evidence").count
    with pytest.raises(ValueError, match=message):
        ledger.save(make_verdict(), evidence, stored_evidence=stored, secrets=secrets)
    assert (ledger.db.table("verdicts").count, ledger.db.table("verdict_evidence").count) == (verdicts, links)
