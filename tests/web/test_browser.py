"""The review page driven in a real headless Chromium (Debian's /usr/bin/chromium through Playwright).

Skipped with a reason when Chromium or the playwright package is missing (.ci/run installs both).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CHROMIUM, CHROMIUM_SKIP, copy_db, launch_chromium

from labelgate import store
from labelgate.web.app import create_app
from labelgate.web.server import EmbeddedServer

pytestmark = [pytest.mark.browser, pytest.mark.flow]

if not CHROMIUM.exists():
    pytest.skip(CHROMIUM_SKIP, allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")

TOKEN = "browser-token-123"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def db(warm_run: dict, tmp_path: Path) -> str:
    """A copy of the warm run with no decision yet: every flagged row starts 'not reviewed'."""
    path = copy_db(warm_run, tmp_path)
    with store.connect(path) as con:
        con.execute("DELETE FROM decisions")
    return path


def _serve(db: str, token: str | None = None) -> EmbeddedServer:
    return EmbeddedServer.start(create_app(db, token=token, reviewer="chromium"), host="127.0.0.1", port=0, token=token)


@pytest.fixture
def url(db: str) -> Iterator[str]:
    server = _serve(db)
    yield server.url
    server.stop()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda err: pg.errors.append(str(err)))
    yield pg
    context.close()


def _latest(db: str) -> dict:
    with store.connect(db) as con:
        run_id = store.resolve_run(con)
        return store.latest_decisions(con, run_id).set_index("row_id").to_dict(orient="index")


def test_pressing_w_accepts_the_suggestion_and_the_decision_survives_a_reload(page: object, url: str, db: str) -> None:
    page.goto(f"{url}/runs/latest?issue_type=label")  # label issues: every row has a suggestion to accept
    duplicate = page.locator('tr.item[data-accept="exclude"]').first  # W on an excluded duplicate: exclude
    sync_api.expect(duplicate.locator(".keyhelp")).to_contain_text("W: exclude")
    first = page.locator('tr.item[data-accept="relabel"]').first
    row_id = first.get_attribute("data-id")
    suggested = first.get_attribute("data-suggested")
    sync_api.expect(first.locator(".keyhelp")).to_contain_text(f"W: relabel → {suggested}")
    sync_api.expect(first.locator(".state")).to_have_text("not reviewed")
    first.locator(".c-sev").click()  # make it the active row
    page.keyboard.press("w")
    sync_api.expect(first).to_have_class("item decided act-relabel")
    sync_api.expect(page.locator("#progress-text")).to_contain_text("1 / ")

    page.reload()
    again = page.locator(f'tr.item[data-id="{row_id}"]')
    sync_api.expect(again.locator(".state")).to_have_text(f"→ {suggested}")
    sync_api.expect(again.locator(".who")).to_have_text("chromium")
    decision = _latest(db)[row_id]
    assert (decision["action"], decision["label"], decision["source"], decision["reviewer"]) == (
        "relabel",
        suggested,
        "human",
        "chromium",
    )
    assert page.errors == []


def test_keys_move_keep_exclude_relabel_and_undo(page: object, url: str, db: str) -> None:
    page.goto(f"{url}/runs/latest")
    rows = page.locator("tr.item")
    ids = [rows.nth(i).get_attribute("data-id") for i in range(4)]
    sync_api.expect(rows.nth(0)).to_have_class("item active")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    sync_api.expect(rows.nth(1)).to_have_class("item active")
    page.keyboard.press("q")  # keep row 1, move to row 2
    sync_api.expect(rows.nth(1).locator(".state")).to_contain_text("kept")
    page.keyboard.press("e")  # exclude row 2, move to row 3
    sync_api.expect(rows.nth(2).locator(".state")).to_have_text("excluded")
    page.keyboard.press("2")  # class 2 = billing
    sync_api.expect(rows.nth(3).locator(".state")).not_to_have_text("not reviewed")
    latest = _latest(db)
    assert latest[ids[1]]["action"] == "keep"
    assert latest[ids[2]]["action"] == "exclude"
    assert latest[ids[3]]["label"] == "billing"

    page.keyboard.press("u")
    sync_api.expect(rows.nth(3).locator(".state")).to_have_text("not reviewed")
    sync_api.expect(page.locator("#progress-text")).to_contain_text("2 / ")
    assert page.errors == []


def test_accept_top_k_shown_in_bulk(page: object, url: str, db: str) -> None:
    page.goto(f"{url}/runs/latest?given=billing&issue_type=label")
    rows = page.locator("tr.item")
    assert rows.count() >= 2
    page.fill("#topk", "2")
    page.click("#bulk-topk")
    expected = [rows.nth(i).get_attribute("data-accept") for i in range(2)]  # relabel, or exclude for a duplicate
    sync_api.expect(rows.nth(1)).to_have_class(f"item decided act-{expected[1]}")
    sync_api.expect(rows.nth(0)).to_have_class(f"item active decided act-{expected[0]}")
    ids = [rows.nth(i).get_attribute("data-id") for i in range(2)]
    latest = _latest(db)
    assert all(latest[i]["source"] == "human" and latest[i]["action"] == a for i, a in zip(ids, expected))
    assert all(latest[i]["reason"].startswith("bulk: accept suggestions for the top 2") for i in ids)


def test_script_in_a_text_renders_as_text(page: object, url: str) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{url}/runs/latest?scope=all&q=alert(1)")
    body = page.locator("tr.item .body")
    sync_api.expect(body).to_have_count(1)
    assert "printed <script>alert(1)</script> back at me" in body.inner_text()
    assert page.locator("tbody script").count() == 0
    page.wait_for_timeout(300)
    assert dialogs == []
    assert page.errors == []


def test_a_run_that_is_not_paused_has_no_finish_button_and_names_the_export(page: object, url: str) -> None:
    """Issue 15, item 7: "Finish review" (and its dialog) only while a flow waits; a completed run names the export."""
    page.goto(f"{url}/runs/latest")
    assert page.locator("#finish").count() == 0
    sync_api.expect(page.locator("#run-state")).to_contain_text("labelgate export --run")


def test_without_the_token_requests_get_401_and_the_login_lets_you_in(browser: object, db: str) -> None:
    server = _serve(db, token=TOKEN)
    context = browser.new_context()
    try:
        page = context.new_page()
        response = page.goto(f"{server.url}/runs/latest")
        assert response.status == 401
        assert page.locator("tr.item").count() == 0
        api = context.request.get(f"{server.url}/api/runs/latest/issues")
        assert api.status == 401
        post = context.request.post(
            f"{server.url}/api/runs/latest/decisions", data={"id": "t0297", "action": "exclude"}
        )
        assert post.status == 401

        page.fill('input[name="token"]', TOKEN)
        page.click('button[type="submit"]')
        page.wait_for_url(f"{server.url}/runs/latest")
        assert page.locator("tr.item").count() > 0
        assert context.request.get(f"{server.url}/api/runs/latest/issues").status == 200
    finally:
        context.close()
        server.stop()
