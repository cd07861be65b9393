"""``labelgate serve``: refuses unsafe binds, serves the review app in a real process, token enforced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from conftest import copy_db

from labelgate.cli import main

pytestmark = pytest.mark.flow


def test_a_non_loopback_host_without_token_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "x.duckdb"), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "labelgate: error: refusing to serve the review app on non-loopback host '0.0.0.0' without a token; "
        "pass --token (or set LABELGATE_TOKEN), or bind 127.0.0.1"
    ]


def test_a_missing_database_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "none.duckdb").exists()


def test_serve_runs_in_a_real_process_and_needs_the_token(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    env = {**os.environ, "LABELGATE_TOKEN": "tok-123"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "labelgate.cli", "serve", "--db", db, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith(f"labelgate serve for {db}"), first + proc.stderr.read()
        addresses = dict(proc.stdout.readline().split() for _ in range(3))  # issue 15, item 15: every page
        url = addresses["review"]
        base = url.rsplit("/runs/", 1)[0]
        assert url.startswith("http://127.0.0.1:") and addresses["dashboard"] == f"{base}/dashboard"
        assert httpx.get(url, timeout=30).status_code == 401
        assert httpx.get(f"{base}/api/runs/latest/issues", timeout=30).status_code == 401
        auth = {"Authorization": "Bearer tok-123"}
        page = httpx.get(url, headers=auth, timeout=30)
        assert page.status_code == 200 and warm_run["run_id"] in page.text
        assert httpx.get(addresses["dashboard"], headers=auth, timeout=30).status_code == 200
        assert httpx.get(addresses["runs"], headers=auth, timeout=30).status_code == 200
        body = {"id": "t0229", "action": "exclude", "reviewer": "cli"}
        posted = httpx.post(f"{base}/api/runs/latest/decisions", json=body, headers=auth, timeout=30)
        assert posted.status_code == 200
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    from labelgate import store

    with store.connect(db) as con:  # the server closed the file again: another process can open it
        latest = store.latest_decisions(con, warm_run["run_id"]).set_index("row_id")
    assert latest.loc["t0229", "reviewer"] == "cli"


@pytest.mark.parametrize("port", ["-1", "70000"])
def test_port_must_be_valid(tmp_path: Path, port: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--db", str(tmp_path / "x.duckdb"), "--port", port])
    assert result.exit_code == 2
