"""The command line: summaries, JSON contract, listings, and one-line errors (never a traceback)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import copy_db

from labelgate.cli import main
from labelgate.flows.curate import SUMMARY_KEYS

pytestmark = pytest.mark.flow


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def test_demo_prints_summary_truth_score_and_json(runner: CliRunner, warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    res = runner.invoke(main, ["demo", "--db", db, "--out", str(tmp_path / "out"), "--json"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    summary = json.loads(lines[-1])
    for key in SUMMARY_KEYS:
        assert key in summary
    assert summary["rows_valid"] + summary["rows_quarantined"] == summary["rows_in"]
    assert all(Path(p).exists() for p in summary["export_files"])
    assert summary["texts_embedded"] == 0  # the copied database already holds the vectors
    assert "injected label errors flagged" in res.output
    assert "quarantined" in res.output and "label issues" in res.output


def test_issues_csv_has_the_contract_columns_worst_first(runner: CliRunner, warm_run: dict) -> None:
    res = runner.invoke(main, ["issues", "--db", warm_run["db_path"], "--run", "latest", "--format", "csv"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert {"id", "text", "given_label", "suggested_label", "label_score", "is_label_issue"} <= set(rows[0])
    assert len(rows) == warm_run["rows_flagged"]  # flagged = any issue type
    assert sum(r["is_label_issue"] == "True" for r in rows) == warm_run["label_issues"]
    severity = [float(r["severity"]) for r in rows]
    assert severity == sorted(severity, reverse=True)  # most severe first


def test_issues_table_and_runs_listing(runner: CliRunner, warm_run: dict) -> None:
    table = runner.invoke(main, ["issues", "--db", warm_run["db_path"], "--format", "table", "--limit", "5"])
    assert table.exit_code == 0 and f"run {warm_run['run_id']}: 5 flagged rows" in table.output
    runs = runner.invoke(main, ["runs", "--db", warm_run["db_path"], "--json"])
    listed = json.loads(runs.output)
    assert any(r["run_id"] == warm_run["run_id"] and r["status"] == "completed" for r in listed)
    shown = next(r for r in listed if r["run_id"] == warm_run["run_id"])
    assert shown["seconds_by_stage"] == warm_run["seconds_by_stage"] and shown["seconds_by_stage"]["detect"] > 0
    plain = runner.invoke(main, ["runs", "--db", warm_run["db_path"]])
    assert warm_run["run_id"] in plain.output


def test_export_again_writes_the_same_files(runner: CliRunner, warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    res = runner.invoke(
        main, ["export", "--db", db, "--run", warm_run["run_id"], "--out", str(tmp_path / "re"), "--json"]
    )
    assert res.exit_code == 0, res.output
    again = json.loads(res.output.strip().splitlines()[-1])
    for a, b in zip(sorted(warm_run["export_files"]), sorted(again["export_files"])):
        assert Path(a).read_bytes() == Path(b).read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["issues", "--db", "{missing}"], "does not exist"),
        (["issues", "--db", "{db}", "--run", "nope"], "no run 'nope'"),
        (["run", "{missing}", "--db", "{tmp}/x.duckdb"], "does not exist"),
        (["run", "{sample}", "--relabel-threshold", "2"], "--relabel-threshold"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(
    runner: CliRunner, warm_run: dict, tmp_path: Path, sample_csv: Path, args: list[str], message: str
) -> None:
    fill = {
        "missing": str(tmp_path / "missing.csv"),
        "db": warm_run["db_path"],
        "tmp": str(tmp_path),
        "sample": str(sample_csv),
    }
    res = runner.invoke(main, [a.format(**fill) for a in args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    err_lines = [line for line in res.output.splitlines() if line.startswith("labelgate: error:")]
    assert len(err_lines) == 1 and message in err_lines[0]


def test_a_real_process_shows_one_line_errors_and_a_json_last_line(
    warm_run: dict, tmp_path: Path, sample_csv: Path
) -> None:
    """What a user sees: no traceback on bad input; with --json the last stdout line is the JSON summary."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)  # the harness's API belongs to this process: use a fresh ephemeral one
    env.pop("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", None)  # set by conftest; a user's shell does not have it
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,category\nhello,a\n")
    exe = [sys.executable, "-m", "labelgate.cli"]
    res = subprocess.run(
        [*exe, "run", str(bad), "--db", str(tmp_path / "b.duckdb")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr + res.stdout
    assert res.stderr.strip().splitlines()[-1].startswith("labelgate: error: text column 'text' not found")
    db = copy_db(warm_run, tmp_path)
    ok = subprocess.run(
        [*exe, "run", str(sample_csv), "--db", db, "--out", str(tmp_path / "o"), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "Traceback" not in ok.stderr
    last = json.loads(ok.stdout.strip().splitlines()[-1])
    assert last["rows_in"] == 400 and last["texts_embedded"] == 0
    # the run records its start-up (process start to the first stage): the early ephemeral API of labelgate.warmup
    shown = runner_json(["runs", "--db", db, "--json"])
    (this,) = [r for r in shown if r["run_id"] == last["run_id"]]
    assert 0 < this["startup_seconds"] < 300 and this["metrics"]["startup_seconds"] == this["startup_seconds"]


def runner_json(args: list[str]) -> object:
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)
