"""Adversarial review of the key log / trigger / stored-verdict checks (commit 4dd8346) and the dashboard's job pages
(branch h-uijobs). An attacker here has write access to the SQLite file and can drop and recreate the append-only
triggers (``untriggered``), or just INSERT (the triggers refuse updates and deletes only), or is a dashboard user.

Each test asserts the SECURE outcome; ``xfail(strict=True, reason="FINDING: …")`` marks a hole still open."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_attacks_edges import cli, untriggered
from tests_support import reverified, save_one
from ui_env import csrf_of, finished_job, login
from web_env import Env, post, start

from verifier.adapters.ledger import Ledger
from verifier.adapters.ledger.jobs import JobStore
from verifier.adapters.ledger.key_log import key_link
from verifier.app.keys import KeyStore, Role

# ============================================================================ helpers


def _ledger(tmp_path: Path) -> tuple[Path, str, str, str]:
    """A ledger with a submit key, a verdict and a finished job that re-verified it pass→fail.

    Returns (path, the key's secret, the old verdict id, the job id)."""
    db = tmp_path / "v.db"
    with Ledger.open(db) as ledger:
        _, secret = KeyStore(ledger).create(Role.SUBMIT, "k")
    old = save_one(db)
    with Ledger.open(db) as ledger:
        store = JobStore(ledger)
        job = store.create(
            spec={"kind": "reverify"},
            selection=[old],
            policy_text=None,
            policy_id="default",
            policy_sha256="cc" * 32,
            trust_profile="production",
            at=None,
            collateral="recorded",
        )
        store.event(job, "running", owner="elsewhere:1")
        store.commit(job, [reverified(job, old)])
        store.event(job, "done")
    assert _check(db).exit_code == 0
    return db, secret, old, job


def _check(db: Path) -> Any:
    return cli("ledger", "check", "--db", str(db))


def _sql(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    conn.close()


def _recreate(db: Path, table: str, create: str, *edits: str) -> None:
    """Drop ``table``'s triggers, rebuild it as ``create`` (same rows), edit it, put the triggers back."""
    conn = sqlite3.connect(db, isolation_level=None)
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", [table])
    saved = triggers.fetchall()
    for name, _ in saved:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute(f"ALTER TABLE {table} RENAME TO _old")
    conn.execute(create)
    conn.execute(f"INSERT INTO {table} SELECT * FROM _old")
    conn.execute("DROP TABLE _old")
    for edit in edits:
        conn.execute(edit)
    for _, sql in saved:
        conn.execute(sql)
    conn.close()


def _assert_reported(result: Any) -> None:
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # never a traceback
    assert result.exit_code == 2, result.output


# ============================================================================ findings: ledger check vs authentication


def test_a_duplicate_api_key_row_that_makes_a_submit_key_admin_is_reported(tmp_path: Path) -> None:
    """api_keys rebuilt without its primary key: an admin copy of a submit key's row first, the original second.
    Authentication reads the first row (admin); the key-log replay kept only the last row per id (the original)."""
    db, secret, _, _ = _ledger(tmp_path)
    _recreate(
        db,
        "api_keys",
        "CREATE TABLE api_keys (id TEXT, key_sha256 TEXT NOT NULL, role TEXT NOT NULL, name TEXT NOT NULL,"
        " created_at REAL NOT NULL) STRICT",
        "CREATE TABLE _k AS SELECT * FROM api_keys",
        "DELETE FROM api_keys",
        "INSERT INTO api_keys SELECT id, key_sha256, 'admin', name, created_at FROM _k",
        "INSERT INTO api_keys SELECT * FROM _k",
        "DROP TABLE _k",
    )
    with Ledger.open_readonly(db) as ledger:
        found = KeyStore(ledger).authenticate(secret)
    assert found is not None and found.role is Role.ADMIN  # the tampering took effect
    _assert_reported(_check(db))


def test_a_second_reuse_row_for_another_gateway_is_reported(tmp_path: Path) -> None:
    """attestations rebuilt without its primary key, a second row citing the verdict's attestation for another
    gateway: the check compared only the first row per verdict, the reuse lookup finds the second."""
    db, _, old, _ = _ledger(tmp_path)
    _recreate(
        db,
        "attestations",
        "CREATE TABLE attestations (verdict_id TEXT, signer TEXT NOT NULL, signing_algo TEXT, model TEXT,"
        " trust_profile TEXT, captured_at INTEGER NOT NULL, report_sha256 TEXT NOT NULL, nonce TEXT, gateway TEXT)"
        " STRICT",
        f"INSERT INTO attestations SELECT verdict_id, signer, signing_algo, model, trust_profile, captured_at,"
        f" report_sha256, nonce, 'https://evil.example' FROM attestations WHERE verdict_id = '{old}'",
    )
    with Ledger.open_readonly(db) as ledger:
        found = ledger.find_reusable_attestation(
            signer="0xabc", signing_algo="ecdsa", model="m1", gateway="https://evil.example", now=1.7e9, max_age=60
        )
    assert found is not None and found["verdict_id"] == old  # the tampering took effect
    _assert_reported(_check(db))


def test_a_second_create_event_that_upgrades_a_key_is_reported(tmp_path: Path) -> None:
    """The key log is append-only, not insert-proof: a second ``create`` of an existing key with role admin (its link
    computed, no trigger needed) plus the api_keys row edited to match. The verifier never creates a key twice."""
    db, secret, _, _ = _ledger(tmp_path)
    conn = sqlite3.connect(db, isolation_level=None)
    seq, at, key_id, sha, name, previous = conn.execute(
        "SELECT seq, at, key_id, key_sha256, name, chain_sha256 FROM key_log ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    event = {"seq": seq + 1, "at": at, "event": "create", "key_id": key_id, "key_sha256": sha}
    event |= {"role": "admin", "name": name}
    conn.execute("INSERT INTO key_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [*event.values(), key_link(previous, event)])
    conn.close()
    untriggered(db, "api_keys", f"UPDATE api_keys SET role = 'admin' WHERE id = '{key_id}'")
    with Ledger.open_readonly(db) as ledger:
        found = KeyStore(ledger).authenticate(secret)
    assert found is not None and found.role is Role.ADMIN
    _assert_reported(_check(db))


# ============================================================================ findings: ledger check vs the claim index


@pytest.mark.parametrize("edit", ["delete", "insert"])
def test_an_edited_claim_index_is_reported(tmp_path: Path, edit: str) -> None:
    """``verdict_claims`` decides which verdicts a job ``--where advisory=…`` re-verifies and what
    ``GET /v1/verifications?advisory=`` lists; an INSERT needs no trigger at all."""
    db = tmp_path / "v.db"
    vid = save_one(db, collateral=[{"fmspc": "00906ED50000"}])
    if edit == "delete":
        untriggered(db, "verdict_claims", "DELETE FROM verdict_claims")
    else:
        _sql(db, f"INSERT INTO verdict_claims VALUES ('{vid}', 'advisory', 'INTEL-SA-00000')")
    _assert_reported(_check(db))


# ============================================================================ findings: ledger check vs the job tables


@pytest.mark.parametrize(
    "table, edit",
    [
        ("job_items", "UPDATE job_items SET job_status = 'pass', old_status = 'pass'"),  # the change vanishes
        ("jobs", "UPDATE jobs SET policy_text = '[policy]\nid = \"lenient\"\n', policy_id = 'lenient'"),
        ("job_selection", "DELETE FROM job_selection"),
    ],
)
def test_an_edited_job_is_reported(tmp_path: Path, table: str, edit: str) -> None:
    db, _, _, _ = _ledger(tmp_path)
    untriggered(db, table, edit)
    _assert_reported(_check(db))


def test_insert_or_replace_cannot_rewrite_an_append_only_row(tmp_path: Path) -> None:
    db, _, _, _ = _ledger(tmp_path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        _sql(
            db,
            "INSERT OR REPLACE INTO job_items SELECT job_id, verdict_id, new_verdict_id, done_at, 'fail',"
            " captured_at, captured_status, job_at, job_status, reasons_json, error FROM job_items",
        )


# ============================================================================ findings: ledger check on a broken file


def _loose(table: str, columns: str) -> str:
    return f"CREATE TABLE {table} ({columns})"


@pytest.mark.parametrize(
    "tamper",
    [
        "drop attestations",
        "drop checks",
        "drop verdict_evidence",
        "drop api_keys",
        "integer key id",
        "text key_log time",
        "blob key_log hash",
    ],
)
def test_ledger_check_reports_a_broken_ledger_without_a_traceback(tmp_path: Path, tamper: str) -> None:
    db, _, _, _ = _ledger(tmp_path)
    key_log = "seq, at, event, key_id, key_sha256, role, name, chain_sha256"
    if tamper.startswith("drop "):
        table = tamper.split()[1]
        _sql(db, *(["DROP TABLE api_key_revocations"] if table == "api_keys" else []), f"DROP TABLE {table}")
    elif tamper == "integer key id":
        _recreate(
            db,
            "api_keys",
            _loose("api_keys", "id, key_sha256, role, name, created_at"),
            "INSERT INTO api_keys VALUES (5, 'x', 'admin', 'n', 1.0)",
        )
    elif tamper == "text key_log time":
        _recreate(
            db, "key_log", _loose("key_log", key_log), "INSERT INTO key_log VALUES (2, 'x', 'revoke', 'k', 0, 0, 0, 0)"
        )
    else:
        _recreate(
            db,
            "key_log",
            _loose("key_log", key_log),
            "INSERT INTO key_log VALUES (2, 1.0, 'create', 'k', x'00', 0, 0, 0)",
        )
    _assert_reported(_check(db))


# ============================================================================ the dashboard's job pages


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path)


async def _job(env: Env) -> str:
    for _ in range(2):
        await post(env)
    return str((await finished_job(env))["id"])


def _tamper_job(db: Path, job_id: str, tamper: str) -> None:
    if tamper == "appended running event, pid out of range":  # an INSERT: no trigger in the way
        pid = "9" * 30
        _sql(db, f"INSERT INTO job_events VALUES ('{job_id}', 1.9e9, 'running', '{socket.gethostname()}:{pid}')")
    elif tamper == "appended done event, time out of range":
        _sql(db, f"INSERT INTO job_events VALUES ('{job_id}', 1e20, 'done', NULL)")
    elif tamper == "events deleted":
        untriggered(db, "job_events", "DELETE FROM job_events")
    elif tamper == "reasons not JSON":
        untriggered(db, "job_items", "UPDATE job_items SET reasons_json = 'x'")
    elif tamper == "spec not an object":
        untriggered(db, "jobs", "UPDATE jobs SET spec_json = '[1]', at = 5")
    else:
        untriggered(db, "job_items", "UPDATE job_items SET captured_at = 99999999999999")


TAMPERS = [
    "appended running event, pid out of range",
    "appended done event, time out of range",
    "events deleted",
    "reasons not JSON",
    "spec not an object",
    "captured time out of range",
]


@pytest.mark.parametrize("tamper", TAMPERS)
async def test_a_tampered_job_is_never_a_500(env: Env, tamper: str) -> None:
    job_id = await _job(env)
    _tamper_job(env.db_path, job_id, tamper)
    await login(env, Role.READ)
    for path in ("/ui/jobs", f"/ui/jobs/{job_id}", "/v1/jobs", f"/v1/jobs/{job_id}"):
        resp = await env.client.get(path, headers=env.auth(Role.READ) if path.startswith("/v1") else {})
        assert resp.status in (200, 409), (path, resp.status, (await resp.text())[:300])


@pytest.mark.parametrize("fmt", ["csv", "json"])
async def test_a_tampered_job_does_not_hang_the_jobs_export(env: Env, fmt: str) -> None:
    """The export answered 200 and streamed nothing more: the error came after the headers, the client hung."""
    job_id = await _job(env)
    _tamper_job(env.db_path, job_id, "reasons not JSON")
    await login(env, Role.READ)
    resp = await env.client.get(f"/ui/jobs.{fmt}", timeout=aiohttp.ClientTimeout(total=10))
    body = await asyncio.wait_for(resp.read(), 10)
    assert resp.status == 409, (resp.status, body[:300])


# ============================================================================ refused today: the job pages


HOSTILE = '<img src=x onerror="alert(1)">'


async def test_hostile_policy_and_job_text_is_escaped_on_the_job_pages(env: Env) -> None:
    for _ in range(2):
        await post(env)
    policy = f'[policy]\nid = "{HOSTILE.replace(chr(34), chr(39))}"\n[gpu]\nmin_driver = "600.0"\n'
    job_id = str((await finished_job(env, {"policy": policy, "filter": {"status": "pass"}}))["id"])
    reasons = json.dumps([HOSTILE])
    untriggered(env.db_path, "job_items", f"UPDATE job_items SET reasons_json = '{reasons}', error = '{HOSTILE}'")
    await login(env, Role.READ)
    for path in ("/ui/jobs", f"/ui/jobs/{job_id}"):
        page = await (await env.client.get(path)).text()
        assert "<img" not in page and "&lt;img" in page, path


async def test_a_csrf_token_from_another_admin_session_does_not_cancel_a_job(env: Env) -> None:
    job = await (await env.client.post("/v1/jobs", json={}, headers=env.auth(Role.ADMIN))).json()
    await login(env, Role.ADMIN)
    theirs = await csrf_of(env, f"/ui/jobs/{job['id']}")
    env.client.session.cookie_jar.clear()
    await login(env, Role.ADMIN)  # a second session of the same key: its own token
    for action in ("cancel", "resume"):
        resp = await env.client.post(f"/ui/jobs/{job['id']}/{action}", data={"csrf": theirs}, allow_redirects=False)
        assert resp.status == 403, action


@pytest.mark.parametrize(
    "path",
    [
        "/ui/jobs?before=j_0000000000000000000000000I",  # I is not Crockford base32
        "/ui/jobs?before=J_00000000000000000000000000",
        "/ui/jobs?limit=-1",
        "/ui/jobs?limit=" + "9" * 400,
        "/ui/jobs?limit=1&limit=2&before=",
        "/ui/jobs?job=x",
        "/ui/jobs.csv?before=x",
        "/ui/jobs/j_0000000000000000000000000Z%00",
        "/ui/jobs/j_0000000000000000000000000Z?after=v_0000000000000000000000000I",
        "/ui/jobs/j_0000000000000000000000000Z?after=" + "v" * 5000,
        "/ui/verifications?job=j_" + "Z" * 27,
        "/ui/verifications?job=j_0000000000000000000000000Z&job=x",
    ],
)
async def test_crafted_job_parameters_are_a_4xx_page_never_a_500(env: Env, path: str) -> None:
    await login(env, Role.READ)
    resp = await env.client.get(path)
    assert 400 <= resp.status < 500 or resp.status == 200, (path, resp.status)
    assert "Traceback" not in await resp.text()
