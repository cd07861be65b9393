"""`labelgate evaluate` from the command line: the side-by-side table and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from conftest import REPO, copy_db

from labelgate.cli import main


def test_evaluate_prints_the_side_by_side_table(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    test = str(REPO / "data" / "sample_test.csv")
    res = CliRunner().invoke(main, ["evaluate", "--db", db, "--test", test])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split() == ["raw", "cleaned", "delta"])
    metrics = [line.split()[0] for line in lines[header + 1 :]]
    assert metrics == ["train", "accuracy", "macro-F1", "F1", "F1", "F1", "F1"]
    assert "scored on 120 test rows" in res.output
    res = CliRunner().invoke(main, ["evaluate", "--db", db, "--test", test, "--json"])
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["run_id"] == warm_run["run_id"] and set(out) >= {"raw", "cleaned", "n_test", "model", "test_sha256"}


def test_evaluate_without_a_test_file_says_how(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    res = CliRunner().invoke(main, ["evaluate", "--db", db])
    assert res.exit_code == 2
    assert res.output.strip() == (
        "labelgate: error: no test file: pass --test FILE (a held-out file with the same columns as the input)"
    )
