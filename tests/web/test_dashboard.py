"""The monitoring dashboard: figures and page over HTTP (in-process client), and the page in headless Chromium,
which also writes the README screenshot ``docs/dashboard.png`` when ``LABELGATE_UPDATE_SCREENSHOTS=1``.

The history is real: a copy of the warm run (dataset ``sample``) plus curate runs of an incremental batch,
a shuffled batch the quality gate blocks, a batch that fails validation (with a hostile dataset name), and
a last clean batch.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import CHROMIUM, CHROMIUM_SKIP, REPO, copy_db, launch_chromium
from fastapi.testclient import TestClient

from labelgate import store
from labelgate.config import CurateParams
from labelgate.services import dashboard, notify
from labelgate.web.app import create_app
from labelgate.web.server import EmbeddedServer

pytestmark = pytest.mark.flow

HOSTILE = "<script>alert('x')</script>"
TOKEN = "dash-token-42"


def _csv(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def history(warm_run: dict, sample_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from labelgate.flows.curate import curate

    folder = tmp_path_factory.mktemp("dash")
    db = copy_db(warm_run, folder)
    base = pd.read_csv(sample_csv, dtype=str, keep_default_na=False)
    test = pd.read_csv(sample_csv.with_name("sample_test.csv"), dtype=str, keep_default_na=False)
    rng = np.random.default_rng(11)
    shuffled = base.copy()
    idx = rng.choice(len(base), int(0.7 * len(base)), replace=False)
    shuffled.loc[idx, "label"] = rng.permutation(shuffled.loc[idx, "label"].to_numpy())
    one_class = pd.DataFrame({"text": [f"note {i}" for i in range(12)], "label": "billing"})
    files = [
        ("batch2", _csv(pd.concat([base.iloc[30:], test.iloc[:20]]), folder / "batch2.csv"), "sample"),
        ("shuffled", _csv(shuffled, folder / "shuffled.csv"), "sample"),
        ("broken", _csv(one_class, folder / "broken.csv"), HOSTILE),
        ("batch3", _csv(pd.concat([base.iloc[:360], test.iloc[20:50]]), folder / "batch3.csv"), "sample"),
    ]
    runs: dict[str, Any] = {"db": db, "warm": warm_run["run_id"]}
    for name, path, dataset in files:
        state = curate(
            path,
            db_path=db,
            out_dir=str(folder / "out"),
            params=CurateParams(dataset=dataset, quality_gate=True, exclude_threshold=0.05),
            return_state=True,
        )
        with store.connect(db, read_only=True) as con:
            runs[name] = store.resolve_run(con, "latest")
        runs[f"{name}_state"] = state
    return runs


@pytest.fixture
def client(history: dict) -> TestClient:
    return TestClient(create_app(history["db"]))


def test_dashboard_data_has_every_run_with_outcomes(history: dict) -> None:
    data = dashboard.dashboard_data(history["db"])
    outcomes = {r["run_id"]: r["outcome"] for r in data["runs"]}
    assert outcomes == {
        history["warm"]: "exported",
        history["batch2"]: "exported",
        history["shuffled"]: "blocked",
        history["broken"]: "failed",
        history["batch3"]: "exported",
    }
    assert data["totals"] == {"runs": 5, "exported": 3, "blocked": 1, "failed": 1}
    assert data["datasets"][0] == "sample" and HOSTILE in data["datasets"]
    sel = data["selected"]
    assert sel["run_id"] == history["batch3"] and sel["outcome"] == "exported"
    assert sel["baseline_run_id"] == history["batch2"]  # the blocked batch in between is no baseline
    nm = sel["noise_matrix"]
    assert nm["classes"] == ["account", "billing", "shipping", "technical"]
    with store.connect(history["db"], read_only=True) as con:
        valid = store.scalar(con, "SELECT count(*) FROM valid_rows WHERE run_id = ?", [history["batch3"]])
    assert sum(map(sum, nm["matrix"])) == pytest.approx(valid, abs=1)
    dist = sel["class_distribution"]
    assert sum(v["before"] for v in dist.values()) == valid
    excluded = sum(v["before"] - v["after"] for v in dist.values())  # relabels move rows, exclusions remove them
    with store.connect(history["db"], read_only=True) as con:
        decided = store.latest_decisions(con, history["batch3"])
    assert sel["has_decisions"] and excluded == int((decided["action"] == "exclude").sum())
    assert all(v["previous"] > 0 for v in dist.values())


def test_dashboard_page_renders_history_charts_and_the_blocked_reason(client: TestClient, history: dict) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200
    html = page.text
    assert html.count('<tr class="hist') == 5
    for name in ("warm", "batch2", "shuffled", "broken", "batch3"):
        assert f'data-run="{history[name]}"' in html
    assert re.search(rf'data-run="{history["shuffled"]}" data-outcome="blocked"', html)
    for chart in ("chart-rates", "chart-classes", "chart-noise", "chart-reasons"):
        assert re.search(rf'<div id="{chart}"><svg class="chart"', html), chart
    assert html.count('class="cell"') == 16  # 4 x 4 heat map
    assert "<script" not in html.split("</head>", 1)[1].replace("&lt;script", "")  # no script at all

    blocked = client.get(f"/dashboard?run={history['shuffled']}").text
    assert 'id="gate-reasons"' in blocked and "flagged as label issues" in blocked
    assert "Quality gate blocked this run" in blocked
    failed = re.findall(r'<tr class="check-fail"[^>]*>\s*<td>([^<]+)</td>', blocked)
    assert failed == ["label-issue rate"]

    only = client.get("/dashboard", params={"dataset": "sample"}).text
    assert only.count('<tr class="hist') == 4


def test_hostile_names_are_escaped(client: TestClient) -> None:
    html = client.get("/dashboard").text
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def test_api_dashboard_and_errors(client: TestClient, history: dict) -> None:
    body = client.get("/api/dashboard", params={"dataset": "sample", "run": history["shuffled"][:-2]}).json()
    assert body["selected"]["run_id"] == history["shuffled"]
    assert body["selected"]["quality"]["passed"] is False and body["selected"]["quality"]["enforced"] is True
    assert len(body["runs"]) == 4 and "metrics" not in body["runs"][0]
    assert client.get("/api/dashboard?run=nope").status_code == 404
    missing = client.get("/dashboard?run=nope")
    assert missing.status_code == 404 and "no run" in missing.text


def test_the_dashboard_needs_the_token_when_one_is_set(history: dict) -> None:
    client = TestClient(create_app(history["db"], token=TOKEN))
    assert client.get("/dashboard").status_code == 401
    assert client.get("/api/dashboard").status_code == 401
    ok = client.get("/dashboard", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and "Run history" in ok.text
    assert "Content-Security-Policy" in ok.headers


def test_prefect_flow_run_links_when_the_ui_is_known(
    history: dict, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_UI_URL", "http://127.0.0.1:4200/")
    notify.prefect_ui_url.cache_clear()
    try:
        runs = client.get("/api/dashboard").json()["runs"]
    finally:
        notify.prefect_ui_url.cache_clear()
    with_id = [r for r in runs if r["prefect_flow_run_id"]]
    assert with_id and all(
        r["flow_run_url"] == f"http://127.0.0.1:4200/runs/flow-run/{r['prefect_flow_run_id']}" for r in with_id
    )


# --- headless Chromium (conftest.launch_chromium, as in tests/web/test_browser.py) -------------------


@pytest.fixture
def browser_page() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(CHROMIUM_SKIP)
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
        page = context.new_page()
        page.problems = []
        page.on("pageerror", lambda err: page.problems.append(str(err)))
        page.on("console", lambda msg: page.problems.append(msg.text) if msg.type in ("error", "warning") else None)
        yield page
        context.close()
        browser.close()


@pytest.mark.browser
def test_dashboard_in_chromium_and_the_readme_screenshot(
    browser_page: Any, history: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    # the screenshot shows what a user sees: ./labelgate.duckdb, without the hostile test dataset
    shutil.copyfile(history["db"], tmp_path / "labelgate.duckdb")
    with store.connect(tmp_path / "labelgate.duckdb") as con:
        con.execute("DELETE FROM runs WHERE dataset = ?", [HOSTILE])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PREFECT_UI_URL", "http://127.0.0.1:4200")
    notify.prefect_ui_url.cache_clear()
    server = EmbeddedServer.start(create_app("labelgate.duckdb"), host="127.0.0.1", port=0, token=None)
    page = browser_page
    try:
        response = page.goto(f"{server.url}/dashboard")
        assert response.status == 200
        expect(page.locator("#history tbody tr")).to_have_count(4)
        for chart in ("#chart-rates", "#chart-classes", "#chart-noise", "#chart-reasons"):
            box = page.locator(f"{chart} svg").bounding_box()
            assert box and box["width"] > 250 and box["height"] > 40, chart
        expect(page.locator("#chart-noise rect.cell")).to_have_count(16)
        expect(page.locator("#kpi-blocked")).to_have_text("1")
        # the stylesheet applied (a CSP block or a missing file would leave the KPI grid unstyled)
        assert page.locator(".kpis").evaluate("e => getComputedStyle(e).display") == "grid"
        # the README's screenshot is refreshed only on request: no test writes tracked files
        shot = REPO / "docs" / "dashboard.png" if os.environ.get("LABELGATE_UPDATE_SCREENSHOTS") else tmp_path / "d.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

        page.click(f'#history a[href*="run={history["shuffled"]}"]')
        expect(page.locator("#gate-reasons")).to_contain_text("flagged as label issues")
        expect(page.locator(".sel-head .badge")).to_have_text("blocked")
        link = page.locator(".sel-links a", has_text="Prefect flow run")
        assert link.get_attribute("href").startswith("http://127.0.0.1:4200/runs/flow-run/")
        assert page.problems == []
    finally:
        server.stop()
        notify.prefect_ui_url.cache_clear()


def test_the_latest_evaluation_per_trainer_is_on_the_dashboard(warm_run: dict, tmp_path: Path) -> None:
    from labelgate.services.evaluate import evaluate_run

    db = copy_db(warm_run, tmp_path)
    run_id = warm_run["run_id"]
    assert dashboard.dashboard_data(db)["selected"]["evaluations"] == []
    assert 'id="evaluations"' not in TestClient(create_app(db)).get("/dashboard").text
    comparisons = evaluate_run(db, run_id, CurateParams(test_path=str(REPO / "data" / "sample_test.csv"))).comparisons
    evals = dashboard.dashboard_data(db)["selected"]["evaluations"]
    assert [e["trainer"] for e in evals] == ["proxy", "proxy-c4"]
    for e, c in zip(evals, comparisons):
        assert (e["raw_n_train"], e["cleaned_n_train"], e["n_test"]) == (c.raw.n_train, c.cleaned.n_train, 120)
        assert e["cleaned_accuracy"] == pytest.approx(c.cleaned.accuracy)
        assert e["accuracy_delta"] == pytest.approx(c.cleaned.accuracy - c.raw.accuracy)
        assert e["seconds"] > 0 and isinstance(e["created_at"], str) and e["model"] == c.model
    api = TestClient(create_app(db)).get("/api/dashboard").json()
    assert [e["trainer"] for e in api["selected"]["evaluations"]] == ["proxy", "proxy-c4"]
    html = TestClient(create_app(db)).get("/dashboard").text
    table = html.split('id="evaluations"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr data-trainer="([^"]+)"', table)
    assert rows == ["proxy", "proxy-c4"]
    c4 = comparisons[1]
    assert f"{c4.raw.accuracy:.3f}" in table and f"{c4.cleaned.accuracy - c4.raw.accuracy:+.3f}" in table
