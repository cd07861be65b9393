"""`labelgate run` end to end: a class left out of the export is loud (summary, --json, manifest, runs)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import copy_db

from labelgate.cli import main

pytestmark = pytest.mark.flow


def _with_small_class(sample_csv: Path, tmp_path: Path) -> Path:
    """The sample's first 200 rows (cached vectors) plus a class 'refund' of 2 rows."""
    with sample_csv.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))[:200]
    rows += [
        {**rows[0], "id": "r1", "text": "Please refund my last order, it never arrived.", "label": "refund"},
        {**rows[0], "id": "r2", "text": "I want my money back for the duplicate charge.", "label": "refund"},
    ]
    path = tmp_path / "small_class.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_dropped_class_is_a_warning_everywhere(warm_run: dict, sample_csv: Path, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    path = _with_small_class(sample_csv, tmp_path)
    res = CliRunner().invoke(main, ["run", str(path), "--db", db, "--out", str(tmp_path / "out"), "--json"])
    assert res.exit_code == 0, res.output
    assert "WARNING: class 'refund' (2 rows) dropped" in res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["dropped_classes"] == {"refund": 2}
    assert "--folds 2" in summary["warnings"][0]
    manifest = json.loads(Path(summary["manifest"]).read_text(encoding="utf-8"))
    assert manifest["dropped_classes"] == {"refund": 2} and manifest["warnings"] == summary["warnings"]
    runs = json.loads(CliRunner().invoke(main, ["runs", "--db", db, "--json"]).output)
    latest = next(r for r in runs if r["run_id"] == summary["run_id"])
    assert latest["warnings"] == summary["warnings"] and "refund" in latest["message"]


def test_strict_makes_it_an_error_before_any_embedding(warm_run: dict, sample_csv: Path, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    path = _with_small_class(sample_csv, tmp_path)
    res = CliRunner().invoke(main, ["run", str(path), "--db", db, "--strict"])
    assert res.exit_code == 2, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("labelgate: error:"))
    assert "'refund' (2 rows)" in line and "--strict" in line and "--folds 2" in line
