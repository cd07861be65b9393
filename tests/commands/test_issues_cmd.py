"""`labelgate issues` on the tiny run: the decisions (who decided what) in every format; a table that fits the
terminal."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from labelgate.cli import main

pytestmark = pytest.mark.unit


def _issues(tiny_run, *args: str) -> str:
    res = CliRunner().invoke(main, ["issues", "--db", tiny_run.db_path, *args])
    assert res.exit_code == 0, res.output
    return res.output


def test_csv_and_json_carry_the_latest_decision(tiny_run) -> None:
    rows = list(csv.DictReader(io.StringIO(_issues(tiny_run, "--format", "csv"))))
    decided = [r for r in rows if r["decision"]]
    assert len(decided) == len(rows) == tiny_run.metrics["rows_flagged"], "the auto gate decided every flagged row"
    assert {r["decision"] for r in decided} <= {"keep", "relabel", "exclude"}
    assert all(r["decided_by"] == "policy" and r["decided_at"] for r in decided)
    assert all(r["decision_label"] for r in decided if r["decision"] == "relabel")
    records = json.loads(_issues(tiny_run, "--format", "json"))
    relabels = [r for r in records if r["decision"] == "relabel"]
    assert relabels and all(r["decision_label"] == r["suggested_label"] for r in relabels)


@pytest.mark.parametrize("width", [80, 120, 200])
def test_the_table_fits_the_width_left_aligned_with_decisions(tiny_run, width: int) -> None:
    out = _issues(tiny_run, "--format", "table", "--limit", "4", "--width", str(width)).splitlines()
    assert out[0].endswith("flagged rows, most severe first")
    header, rows = out[1], out[2:]
    assert header.startswith("id") and "decision" in header and "text" in header
    assert len(rows) == 4 < tiny_run.metrics["rows_flagged"]
    assert all(len(line) <= width for line in out[1:]), max(len(line) for line in out)
    assert all(not line.startswith(" ") for line in rows)  # left-aligned, not right-aligned text
    assert any("(policy)" in line for line in rows)


def test_label_issues_show_their_kind(tiny_run) -> None:
    rows = list(csv.DictReader(io.StringIO(_issues(tiny_run, "--format", "csv"))))
    labels = [r for r in rows if "label" in r["issue_types"].split(",")]
    assert labels and all(r["label_kind"] in ("mislabelled", "ambiguous") for r in labels)
    assert all(0.0 <= float(r["ambiguity"]) <= 1.0 for r in labels)
    assert all(not r["label_kind"] for r in rows if r not in labels)
    table = _issues(tiny_run, "--format", "table", "--width", "200").splitlines()
    assert " kind " in table[1]
    by_id = {line.split()[0]: line for line in table[2:]}
    assert all(f" {r['label_kind']} " in by_id[r["id"]] for r in labels)
