"""`verifier demo --serve`: the service stays up over a ledger with passes and failures, and its read key opens
the dashboard."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from verifier.demo import DEMO_FAULTS, serving_demo


async def test_the_serving_demo_leaves_passes_and_failures_the_dashboard_shows(tmp_path: Path) -> None:
    async with (
        serving_demo(db_dir=tmp_path, passes=1) as running,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client,
    ):  # an IP host
        assert [v["status"] for v in running.verdicts] == ["pass"] + ["fail"] * len(DEMO_FAULTS)
        async with client.post(
            f"{running.service_url}/ui/login", data={"key": running.read_key}, allow_redirects=False
        ) as login:
            assert login.status == 303
        async with client.get(f"{running.service_url}/ui/verifications?status=fail") as page:
            text = await page.text()
            assert page.status == 200 and f"{len(DEMO_FAULTS)} matching" in text and "SIMULATOR LEDGER" in text
    assert (tmp_path / "verifier.db").is_file()
