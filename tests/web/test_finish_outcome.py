"""Issue 15, item 8: after "Finish review" in `labelgate run --gate human`, the page shows the outcome (files written,
counts) before the process and its server stop, instead of "exporting" forever. A real process and headless Chromium.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import CHROMIUM, CHROMIUM_SKIP, copy_db, launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.flow]

if not CHROMIUM.exists():
    pytest.skip(CHROMIUM_SKIP, allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")


def _review_url(proc: subprocess.Popen) -> str:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if line.strip().startswith("open "):
            return line.split()[1]
    raise AssertionError(f"no review URL printed; exit {proc.poll()}")


def _start_human_run(sample_csv: Path, db: str, tmp_path: Path, out_dir: Path) -> subprocess.Popen:
    """``labelgate run --gate human --json`` of the sample in a process of its own (its own Prefect home, any free
    review port); stdout and stderr are pipes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), LABELGATE_REVIEW_PORT="0")
    command = [sys.executable, "-m", "labelgate.cli", "run", str(sample_csv), "--gate", "human", "--db", db]
    return subprocess.Popen(
        [*command, "--json", "--out", str(out_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_the_page_shows_the_files_written_after_finish_review(warm_run: dict, tmp_path: Path, sample_csv: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    out_dir = tmp_path / "exports"
    proc = _start_human_run(sample_csv, db, tmp_path, out_dir)
    try:
        url = _review_url(proc)
        rest: list[str] = []  # drain stderr meanwhile: a full pipe would stop the process
        drain = threading.Thread(target=lambda: rest.extend(proc.stderr), daemon=True)
        drain.start()
        with sync_api.sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            failed: list[str] = []  # requests the page saw fail: what to look at when the outcome never shows
            page.on("requestfailed", lambda r: failed.append(f"{r.method} {r.url}: {r.failure}"))
            page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}: {r.text()[:300]}"))
            # every row: the database already holds a run of this dataset, so the page would open on new rows
            page.goto(url + ("&" if "?" in url else "?") + "novelty=all")
            page.keyboard.press("e")  # exclude the first row
            sync_api.expect(page.locator("tr.item").first.locator(".state")).to_have_text("excluded")
            page.click("#finish")
            page.click("#finish-go")
            outcome = page.locator("#outcome")
            sync_api.expect(outcome).to_be_visible(timeout=120_000)  # once the Prefect API resumed the flow run
            try:
                sync_api.expect(outcome).to_contain_text("Exported", timeout=240_000)
            except AssertionError as err:
                code = proc.poll()  # None: the process still runs
                proc.kill()
                drain.join(10)
                tail = "".join(rest)[-4000:]
                raise AssertionError(f"{err}\nrequests that failed: {failed}\nexit {code}, stderr:\n{tail}") from None
            text = outcome.inner_text()
            files = page.locator("#outcome .outcome-files li").all_inner_texts()
            badge = page.locator(".runinfo .badge").inner_text()
            browser.close()
        out = proc.stdout.read()
        proc.wait(timeout=120)
        drain.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(rest)
    assert errors == []
    assert "exclude 1" in text
    assert badge == "completed"
    written = sorted(str(f.resolve()) for f in out_dir.rglob("*") if f.is_file())
    assert sorted(files) == written and any(f.endswith("manifest.json") for f in files)
    summary = json.loads(out.strip().splitlines()[-1])
    assert set(summary["export_files"]) <= set(files)


def test_the_page_says_the_process_stopped_when_it_dies_during_the_export(
    warm_run: dict, tmp_path: Path, sample_csv: Path
) -> None:
    """The process is killed right after "Finish review": its server goes with it and the page, once its polls get
    no answer at all, says so and names the command that shows the run."""
    db = copy_db(warm_run, tmp_path)
    proc = _start_human_run(sample_csv, db, tmp_path, tmp_path / "exports")
    try:
        url = _review_url(proc)
        for pipe in (proc.stdout, proc.stderr):  # drained: a full pipe would stop the process
            threading.Thread(target=lambda pipe=pipe: list(pipe), daemon=True).start()
        with sync_api.sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + ("&" if "?" in url else "?") + "novelty=all")
            page.click("#finish")
            with page.expect_response(lambda r: r.url.endswith("/finish")):
                page.click("#finish-go")
            proc.kill()  # before the export (seconds of work) can end
            proc.wait(30)
            outcome = page.locator("#outcome")
            sync_api.expect(outcome).to_contain_text("The run's process stopped", timeout=30_000)
            sync_api.expect(outcome.locator("code")).to_contain_text(f"labelgate runs --db {db}")
            assert "outcome-gone" in (outcome.get_attribute("class") or "")
            browser.close()
    finally:
        if proc.poll() is None:
            proc.kill()
