"""Issue 15, items 7 and 12: every run page shows the run's state and only the actions that work on it; the runs
page links back to itself (the dashboard trend's one line per dataset: tests/web/test_charts.py). Pages checked in
headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CHROMIUM, CHROMIUM_SKIP, copy_db, launch_chromium

from labelgate import store
from labelgate.web.app import create_app
from labelgate.web.server import EmbeddedServer

pytestmark = [pytest.mark.browser, pytest.mark.flow]

FAILED = "20200101T000000-faiiled"
MESSAGE = "only 1 class remains among the 12 valid rows ('billing': 12)"


@pytest.fixture
def server(warm_run: dict, tmp_path: Path) -> Iterator[tuple[str, dict]]:
    """The warm (completed) run plus a run that failed in validation, served on a free port."""
    db = copy_db(warm_run, tmp_path)
    with store.connect(db) as con:
        con.execute(
            """INSERT INTO runs (run_id, dataset, input_path, params_json, status, message, started_at, finished_at,
                                 metrics_json)
               VALUES (?, 'broken', '/tmp/broken.csv', '{}', 'failed', ?, current_timestamp, current_timestamp,
                       '{"rows_in": 12}')""",
            [FAILED, MESSAGE],
        )
    srv = EmbeddedServer.start(create_app(db), host="127.0.0.1", port=0, token=None)
    try:
        yield srv.url, warm_run
    finally:
        srv.stop()


@pytest.fixture
def page() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(CHROMIUM_SKIP)
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        pg = context.new_page()
        pg.problems = []
        pg.on("pageerror", lambda err: pg.problems.append(str(err)))
        yield pg
        context.close()
        browser.close()


def test_a_failed_run_shows_why_and_no_review_actions(server: tuple[str, dict], page: Any) -> None:
    url, _ = server
    assert page.goto(f"{url}/runs/{FAILED}").status == 200
    state = page.locator("#run-state")
    assert "failed" in state.inner_text() and MESSAGE in state.inner_text()
    body = page.locator("main").inner_text()
    assert "No row matches these filters" not in body
    assert "labelgate export" not in body  # an export of a run without detection fails: never suggest it
    assert page.locator("#finish").count() == 0 and page.locator("#filters").count() == 0
    assert page.problems == []


def test_a_completed_run_offers_export_not_finish(server: tuple[str, dict], page: Any) -> None:
    url, warm = server
    assert page.goto(f"{url}/runs/{warm['run_id']}").status == 200
    assert page.locator("#finish").count() == 0  # "Finish review" only while a flow waits for it
    state = page.locator("#run-state").inner_text()
    assert "completed" in state and f"labelgate export --run {warm['run_id']}" in state
    assert page.locator("#items tr.item").count() > 0
    assert page.problems == []


def test_the_runs_page_has_a_runs_link_in_its_header(server: tuple[str, dict], page: Any) -> None:
    url, _ = server
    assert page.goto(f"{url}/dashboard").status == 200
    page.click("text=Runs")
    assert page.url.rstrip("/") == url.rstrip("/")
    nav = page.locator("header nav a")
    assert [a.strip() for a in nav.all_inner_texts()] == ["Runs", "Dashboard"]
    page.click("header nav >> text=Dashboard")
    assert page.url.endswith("/dashboard")
