"""Issue 15, items 9, 10 and 11 on the review page, in headless Chromium:

- 9: a duplicate or conflict shows the row it points at (text, label, decision) inline, and the link reaches it;
- 10: a label issue's reason is plain words first, the statistics on demand; the confidence bar shows the number
  the decision used (the one the auto policy compared);
- 11: at 900, 1280 and 1920 px the header's parts do not overlap and the Actions column is not cut off.
"""

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

if not CHROMIUM.exists():
    pytest.skip(CHROMIUM_SKIP, allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture
def served(warm_run: dict, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(url, db path) of a copy of the warm run (auto gate: every flagged row has the policy's decision)."""
    db = copy_db(warm_run, tmp_path)
    srv = EmbeddedServer.start(create_app(db, reviewer="chromium"), host="127.0.0.1", port=0, token=None)
    try:
        yield srv.url, db
    finally:
        srv.stop()


def _page(browser: Any, width: int = 1400) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda err: pg.errors.append(str(err)))
    return pg


def _facts(db: str) -> tuple[str, dict, dict, dict]:
    """run id, valid rows by id, the label issue rows by id, the latest decision by id."""
    with store.connect(db) as con:
        run_id = store.resolve_run(con)
        rows = store.query_df(con, "SELECT row_id, text, label FROM valid_rows WHERE run_id = ?", [run_id])
        label = store.query_df(
            con,
            "SELECT row_id, suggested_prob, model_prob FROM issues WHERE run_id = ? AND issue_type = 'label'",
            [run_id],
        )
        latest = store.latest_decisions(con, run_id)
    return (
        run_id,
        rows.set_index("row_id").to_dict(orient="index"),
        label.set_index("row_id").to_dict(orient="index"),
        latest.set_index("row_id").to_dict(orient="index"),
    )


@pytest.mark.parametrize("issue_type", ["exact_duplicate", "near_duplicate", "conflicting_label"])
def test_a_duplicate_shows_the_row_it_points_at_and_reaches_it(
    browser: Any, served: tuple[str, str], issue_type: str
) -> None:
    url, db = served
    _, rows, _, latest = _facts(db)
    page = _page(browser)
    page.goto(f"{url}/runs/latest?issue_type={issue_type}")
    items = page.locator("tr.item")
    assert items.count() > 0
    for i in range(items.count()):
        related = items.nth(i).locator(".related")
        assert related.count() == 1, f"row {items.nth(i).get_attribute('data-id')} shows no related row"
        other = related.get_attribute("data-related")
        assert related.locator(".related-text").inner_text() == rows[other]["text"].strip()
        assert related.locator(".label").inner_text() == rows[other]["label"]
        if other in latest:
            assert related.locator(".related-dec").count() == 1

    first = items.first
    other = first.locator(".related").get_attribute("data-related")
    first.locator("a.related-link").click()
    target = page.locator(f'tr.item[data-id="{other}"]')
    sync_api.expect(target).to_have_count(1)  # on this page, or on the page the link opened
    if page.url.startswith(f"{url}/runs/latest?issue_type"):
        sync_api.expect(target).to_have_class(__import__("re").compile(r"\bactive\b"))
    assert page.errors == []
    page.context.close()


def test_label_reasons_are_plain_words_first_and_the_bar_shows_the_decisions_number(
    browser: Any, served: tuple[str, str]
) -> None:
    url, db = served
    _, _, label, latest = _facts(db)
    page = _page(browser)
    page.goto(f"{url}/runs/latest?issue_type=label")
    items = page.locator("tr.item")
    assert items.count() > 5
    relabelled = 0
    for i in range(items.count()):
        row = items.nth(i)
        rid = row.get_attribute("data-id")
        given, suggested = row.get_attribute("data-given"), row.get_attribute("data-suggested")
        first = row.locator(".reasons li").first
        model = label[rid]["model_prob"]
        assert first.inner_text() == f"the model thinks this is {suggested} ({100 * model:.0f}%); given {given}"
        assert "model disagrees" not in row.locator(".reasons").inner_text()  # the statistics are on demand
        stats = row.locator("details.stats")
        assert not stats.locator("p").first.is_visible()

        bar = row.locator(".conf")
        value = float(bar.get_attribute("data-value"))
        shown = row.locator(".conf-num").inner_text()
        assert shown == f"{100 * value:.0f}%"
        assert float(row.locator(".conf progress").get_attribute("value")) == pytest.approx(value, abs=1e-6)
        assert value in (pytest.approx(label[rid]["suggested_prob"]), pytest.approx(model))
        decision = latest.get(rid)
        if decision and decision["source"] == "policy" and decision["action"] == "relabel":
            relabelled += 1
            assert value >= 0.5, f"{rid} was relabelled on a number the bar does not show ({shown})"
            assert "relabel" in row.locator(".conf-why").inner_text()
    assert relabelled > 0

    row = items.first
    row.locator("details.stats summary").click()
    sync_api.expect(row.locator("details.stats p").first).to_contain_text("model disagrees")
    assert page.errors == []
    page.context.close()


def _overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"] + 0.5
        or b["x"] + b["width"] <= a["x"] + 0.5
        or a["y"] + a["height"] <= b["y"] + 0.5
        or b["y"] + b["height"] <= a["y"] + 0.5
    )


@pytest.mark.parametrize("width", [900, 1280, 1920])
def test_the_page_fits_900_1280_and_1920_pixels(browser: Any, served: tuple[str, str], width: int) -> None:
    url, _ = served
    page = _page(browser, width)
    page.goto(f"{url}/runs/latest")
    parts = page.locator("header.topbar > *")
    boxes = [parts.nth(i).bounding_box() for i in range(parts.count())]
    boxes = [b for b in boxes if b and b["width"] > 0]
    assert len(boxes) >= 5
    for i, a in enumerate(boxes):
        assert a["x"] >= 0 and a["x"] + a["width"] <= width + 0.5, f"header part {i} leaves the window at {width}px"
        for j in range(i + 1, len(boxes)):
            assert not _overlap(a, boxes[j]), f"header parts {i} and {j} overlap at {width}px"
    info = page.locator(".runinfo").bounding_box()
    for part in (".dataset", ".runid", ".badge"):  # nothing of the run's name spills out of its box
        box = page.locator(f".runinfo {part}").bounding_box()
        assert box["x"] + box["width"] <= info["x"] + info["width"] + 0.5, f"{part} spills over at {width}px"
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"the page scrolls sideways at {width}px"
    row = page.locator("tr.item").first
    for selector in (".act-accept", ".act-keep", ".act-exclude", ".cls"):
        box = row.locator(selector).first.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, f"{selector} cut off at {width}px"
    table = page.locator("#items").bounding_box()
    assert table["x"] + table["width"] <= width
    header = page.locator("header.topbar").bounding_box()
    first_th = page.locator("#items th").first.bounding_box()
    page.mouse.wheel(0, 600)
    page.wait_for_timeout(200)
    stuck = page.locator("#items th").first.bounding_box()
    assert stuck["y"] >= page.locator("header.topbar").bounding_box()["height"] - 1  # headings never hide under it
    assert first_th and header
    assert page.errors == []
    page.context.close()
