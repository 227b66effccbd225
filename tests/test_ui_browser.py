"""The dashboard in a real browser: Debian's headless Chromium driven by selenium through Debian's chromedriver
(never a downloaded browser; `.ci/run` installs both). The service runs on the test's event loop; every browser
step runs in a worker thread so the loop keeps serving. Screenshots go to the test's tmp folder."""

from __future__ import annotations

import asyncio
import io
import shutil
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from ui_env import finished_job, seed
from web_env import Env, post, start

from verifier.app.keys import Role

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
T = TypeVar("T")


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    path = tmp_path / "downloads"
    path.mkdir()
    return path


@pytest.fixture
def browser(downloads: Path) -> Iterator[WebDriver]:
    assert CHROMIUM and CHROMEDRIVER, "the browser tests need Debian's chromium and chromium-driver (see .ci/run)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def env(aiohttp_client: Any, aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[Env]:
    yield await start(aiohttp_client, aiohttp_server, tmp_path)


async def step(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking browser call off the loop (the service under test is on the loop)."""
    return await asyncio.to_thread(fn, *args)


def find(driver: WebDriver, by: str, value: str) -> WebElement:
    """The element once the page shows it (a click's navigation may still be under way)."""
    return WebDriverWait(driver, 10).until(expected_conditions.presence_of_element_located((by, value)))


def base(env: Env) -> str:
    return str(env.client.make_url("/")).rstrip("/")


def _log_in(driver: WebDriver, url: str, key: str) -> None:
    driver.get(url + "/ui/")
    assert "/ui/login" in driver.current_url
    field = driver.find_element(By.ID, "key")
    field.clear()
    if key:
        field.send_keys(key)
    driver.find_element(By.ID, "login-submit").click()


async def test_the_browser_login_is_refused_without_a_key_and_with_a_submit_key(env: Env, browser: WebDriver) -> None:
    await step(_log_in, browser, base(env), "")
    assert "an API key is required" in (await step(find, browser, By.ID, "login-error")).text
    await step(_log_in, browser, base(env), env.keys[Role.SUBMIT])
    assert "has no dashboard" in (await step(find, browser, By.ID, "login-error")).text
    await step(browser.get, base(env) + "/ui/verifications")
    assert "/ui/login" in browser.current_url  # still no session


def _count(driver: WebDriver) -> str:
    return str(find(driver, By.ID, "match-count").text)


def _read_flow(driver: WebDriver, url: str, key: str, shots: Path, downloads: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    _log_in(driver, url, key)
    WebDriverWait(driver, 10).until(expected_conditions.url_matches(r"/ui/$"))
    seen["banner"] = find(driver, By.ID, "chart") and driver.find_element(By.ID, "trust-banner").text
    driver.save_screenshot(str(shots / "overview.png"))
    driver.get(url + "/ui/verifications")
    seen["count_before"] = _count(driver)
    driver.save_screenshot(str(shots / "list.png"))
    driver.find_element(By.CSS_SELECTOR, 'a[data-facet="status"][data-value="fail"]').click()
    WebDriverWait(driver, 10).until(expected_conditions.url_contains("status=fail"))
    seen["count_after"] = _count(driver)
    driver.find_element(By.CSS_SELECTOR, "a.verdict-link").click()
    row = find(driver, By.CSS_SELECTOR, 'tr[data-check="tdx.binds_nonce"]')
    seen["expected"] = row.find_element(By.CSS_SELECTOR, "td.expected").text
    seen["got"] = row.find_element(By.CSS_SELECTOR, "td.got").text
    seen["verdict_url"] = driver.current_url
    driver.save_screenshot(str(shots / "failing-verdict.png"))
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})  # the print stylesheet
    seen["printed"] = (
        driver.find_element(By.CSS_SELECTOR, "header.top").is_displayed(),
        driver.find_element(By.ID, "reverify").is_displayed(),
        driver.find_element(By.ID, "checks").is_displayed(),
        driver.find_element(By.ID, "trust-banner").is_displayed(),
    )
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    driver.find_element(By.ID, "bundle-link").click()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not [p for p in downloads.iterdir() if p.suffix == ".zip"]:
        time.sleep(0.1)
    seen["downloads"] = sorted(p.name for p in downloads.iterdir())
    driver.find_element(By.ID, "reverify-submit").click()
    message = find(driver, By.ID, "error-message").text
    seen["admin_form"] = driver.find_element(By.TAG_NAME, "h1").text, message
    return seen


async def test_the_browser_read_key_filters_opens_a_failing_verdict_prints_and_downloads_it_and_is_refused_admin(
    env: Env, browser: WebDriver, tmp_path: Path, downloads: Path
) -> None:
    _, failed = await seed(env)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    seen = await step(_read_flow, browser, base(env), env.keys[Role.READ], shots, downloads)
    assert "SIMULATOR LEDGER" in seen["banner"]
    assert (seen["count_before"], seen["count_after"]) == ("3 matching", "1 matching")
    verdict = await (await env.client.get(f"/v1/verifications/{failed}", headers=env.auth(Role.READ))).json()
    check = next(c for c in verdict["checks"] if c["id"] == "tdx.binds_nonce")
    assert seen["verdict_url"].endswith(f"/ui/verifications/{failed}")
    assert (seen["expected"], seen["got"]) == (check["details"]["expected"], check["details"]["got"])
    assert seen["printed"] == (False, False, True, True)  # printed: no navigation or forms; the checks and banner stay
    assert seen["downloads"] == [f"{failed}.zip"]
    api = await (await env.client.get(f"/v1/verifications/{failed}/bundle", headers=env.auth(Role.READ))).read()
    assert (downloads / f"{failed}.zip").read_bytes() == api
    assert zipfile.ZipFile(io.BytesIO(api)).namelist()
    assert seen["admin_form"][0] == "Error 403" and "a read key may not use this page" in seen["admin_form"][1]
    for name in ("overview.png", "list.png", "failing-verdict.png"):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _jobs_flow(driver: WebDriver, url: str, key: str, job_id: str, shots: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    _log_in(driver, url, key)
    WebDriverWait(driver, 10).until(expected_conditions.url_matches(r"/ui/$"))
    find(driver, By.LINK_TEXT, "Jobs").click()  # the navigation
    row = find(driver, By.CSS_SELECTOR, f'tr[data-job="{job_id}"]')
    seen["listed"] = (
        row.find_element(By.CSS_SELECTOR, "td.changed").text,
        row.find_element(By.CSS_SELECTOR, "td.done").text,
    )
    driver.save_screenshot(str(shots / "jobs.png"))
    row.find_element(By.CSS_SELECTOR, "a.job-link").click()
    seen["changed"] = find(driver, By.ID, "job-changed").text
    seen["progress"] = driver.find_element(By.ID, "job-progress").get_attribute("value")
    seen["by_change"] = driver.find_element(By.ID, "by-change").text
    seen["forms"] = driver.find_elements(By.CSS_SELECTOR, "form#cancel, form#resume")
    driver.save_screenshot(str(shots / "job.png"))
    driver.find_element(By.CSS_SELECTOR, "a.new-verdict").click()
    seen["new_verdict"] = find(driver, By.CSS_SELECTOR, "p.verdict-status .status").text, driver.current_url
    return seen


async def test_the_browser_jobs_page_shows_a_finished_jobs_changed_count_and_leads_to_its_new_verdicts(
    env: Env, browser: WebDriver, tmp_path: Path
) -> None:
    for _ in range(2):
        await post(env)
    job = await finished_job(env)  # the passes under a stricter policy: each one pass→fail
    shots = tmp_path / "screenshots"
    shots.mkdir()
    seen = await step(_jobs_flow, browser, base(env), env.keys[Role.READ], job["id"], shots)
    assert seen["listed"] == ("2", "2") and seen["changed"] == "2"
    assert float(seen["progress"]) == 100.0 and "pass→fail: 2" in seen["by_change"]
    assert seen["forms"] == []  # a finished job can be neither cancelled nor resumed
    assert seen["new_verdict"][0] == "fail" and "/ui/verifications/v_" in seen["new_verdict"][1]
    for name in ("jobs.png", "job.png"):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
