"""A stored verdict edited outside the verifier into something that is not a verdict: the API, the dashboard and
the exports answer a clear error or show what they can, never a 500."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ui_env import login, seed
from web_env import Env, start

from verifier.app.keys import Role


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path)


def tamper(db: Path, vid: str, text: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'verdicts'")
    saved = triggers.fetchall()
    for name, _ in saved:
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("UPDATE verdicts SET verdict_json = ? WHERE id = ?", [text, vid])
    for _, sql in saved:
        conn.execute(sql)
    conn.close()


@pytest.mark.parametrize(
    "tampered",
    [{}, {"status": "pass", "checks": ["x"]}, {"status": "pass", "checks": [{"id": 1}], "notes": "n", "claims": []}],
)
async def test_a_tampered_stored_verdict_never_gives_a_500(env: Env, tampered: dict[str, Any]) -> None:
    (good, *_), failed = await seed(env, passes=1)
    tamper(env.db_path, failed, json.dumps({"id": failed, **tampered}))
    await login(env, Role.READ)
    for path, status in (
        (f"/v1/verifications/{failed}", 409),
        (f"/v1/verifications/{failed}/bundle", 409),
        (f"/ui/verifications/{failed}", 409),
        ("/v1/verifications", 200),
        ("/ui/verifications", 200),
        ("/ui/", 200),
        ("/ui/verifications.csv", 200),
        ("/ui/verifications.json", 200),
        (f"/ui/verifications/{good}", 200),
    ):
        resp = await env.client.get(path, headers=env.auth(Role.READ) if path.startswith("/v1") else {})
        assert resp.status == status, (path, resp.status, (await resp.text())[:300])
        if status == 409:
            error = (await resp.json())["error"]
            assert error["code"] == "ledger_corrupt" and "not one the verifier wrote" in error["message"]
