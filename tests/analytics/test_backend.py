"""The backend's analytics routes (admin only) and the report page under the page's CSP.

The browser test renders ``/page/analytics`` in headless chromium (skipped without it):
the charts must draw under ``style-src 'self'`` (no inline style) and nothing may be
fetched from another origin. ``AICO_UPDATE_SCREENSHOT=1`` also writes
``docs/images/analytics-report.png``.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aico.ai.memory import MemoryManager
from aico.data.repositories import FactRepository, FeedbackRepository, TaskRepository

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))

from backend_support import Api, backend_test_config, start_api
from history import write_history

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
DOCS_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "analytics-report.png"


def seed(memory: MemoryManager) -> None:
    """A history with something in every section of the report."""
    write_history(memory, ["maya", "bob"], messages=600, per_session=12, days=21)
    for session in memory.log.sessions_of_user("maya")[:20]:
        memory.end_session(session)
    core = memory.store.connection("core")
    facts = FactRepository(core)
    for i, category in enumerate(("family", "food", "goals", "family", "places")):
        facts.remember("maya", f"maya fact {i}", category=category)
    feedback = FeedbackRepository(core)
    for rating in (5, 4, 4, 3, 5):
        feedback.record("maya", "rating", rating=rating)
    feedback.record("bob", "thumbs_up")
    for i in range(12):
        started = time.perf_counter()
        bundle = memory.assemble_context("maya", "ctx-session", f"message {i * 7} of h")
        memory.analytics.record_context("maya", bundle, time.perf_counter() - started)
    tasks = TaskRepository(core)
    for name in ("maintenance", "backup"):
        job = tasks.schedule(name, name, every=3600)
        now = time.time()
        tasks.record_run(job, status="completed", started_at=now - 1.5, finished_at=now)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    api = start_api(tmp_path_factory.mktemp("analytics-api") / "data", backend_test_config())
    seed(api.memory.sync)
    yield api
    api.server.stop()


def test_admin_routes(api: Api) -> None:
    with api.client("admin") as admin:
        assert admin.get("/v1/analytics/views/activity_daily").status_code == 404  # no copy
        exported = admin.post("/v1/analytics/export")
        assert exported.status_code == 200, exported.text
        assert exported.json()["added"]["messages"] >= 600
        names = {v["name"] for v in admin.get("/v1/analytics/views").json()}
        assert {"activity_daily", "usage_by_model", "search_latency"} <= names
        rows = admin.get("/v1/analytics/views/activity_daily", params={"user_id": "maya"})
        assert rows.status_code == 200
        assert sum(r["messages"] for r in rows.json()["rows"]) == 300
        page = admin.get("/v1/analytics/report")
        assert page.status_code == 200
        assert "content-security-policy" in page.headers
        assert page.text.count("<svg") >= 7
        assert "style=" not in page.text and "<style" not in page.text
        assert "data:" not in page.text
        assert admin.get("/page/analytics.css").headers["content-type"].startswith("text/css")
    with api.client("maya") as maya:
        for path in ("/v1/analytics/views", "/v1/analytics/report"):
            assert maya.get(path).status_code == 403
        assert maya.post("/v1/analytics/export").status_code == 403
    with api.client() as anonymous:
        assert anonymous.get("/v1/analytics/views").status_code == 401


def test_the_page(api: Api) -> None:
    with api.client() as browser:
        browser.cookies.set("aico_token", api.tokens["admin"])
        assert 'id="analytics-link"' in browser.get("/").text
        moved = browser.post(
            "/page/analytics/export",
            headers={"Origin": api.url, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert moved.status_code == 303 and moved.headers["location"] == "/page/analytics"
        page = browser.get("/page/analytics")
        assert page.status_code == 200 and 'id="analytics-export"' in page.text
        foreign = browser.post(
            "/page/analytics/export",
            headers={
                "Origin": "http://evil.example",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert foreign.status_code == 403
    with api.client() as maya:
        maya.cookies.set("aico_token", api.tokens["maya"])
        assert maya.get("/page/analytics").status_code == 403


def _browser() -> Any:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,3900",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def test_the_report_renders_in_a_browser(api: Api, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with api.client("admin") as admin:
        admin.post("/v1/analytics/export")
    driver = _browser()

    def present(by: str, value: str) -> list:
        # The page logs in and renders with fetch(): wait for it (a loaded CI host is slow).
        return WebDriverWait(driver, 20).until(lambda d: d.find_elements(by, value))

    try:
        driver.get(api.url + "/")
        driver.find_element(By.ID, "token").send_keys(api.tokens["admin"])
        driver.find_element(By.ID, "login").click()
        present(By.ID, "analytics-link")[0].click()
        charts = present(By.CSS_SELECTOR, "figure svg")
        assert len(charts) >= 7
        assert all(c.size["width"] > 200 and c.size["height"] > 100 for c in charts)
        # The stylesheet applied (its grid), and a bar is drawn in its colour, not black.
        grid = driver.find_element(By.CSS_SELECTOR, "div.grid")
        assert grid.value_of_css_property("display") == "grid"
        bar = driver.find_element(By.CSS_SELECTOR, "figure svg path[fill='#4c78a8']")
        assert bar.value_of_css_property("fill") == "rgb(76, 120, 168)"
        violations = [
            e["message"] for e in driver.get_log("browser") if "Content Security" in e["message"]
        ]
        assert violations == []
        shot = tmp_path / "analytics-report.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
        if os.environ.get("AICO_UPDATE_SCREENSHOT") == "1":
            DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, DOCS_IMAGE)
    finally:
        driver.quit()
