"""Ingest and validate tasks: quarantine reasons counted by kind from structured data (issue 15, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelgate import store
from labelgate.config import CurateParams
from labelgate.errors import ValidationError
from labelgate.tasks.ingest import ingest
from labelgate.tasks.run import start_run
from labelgate.tasks.validate import validate

pytestmark = pytest.mark.flow


def _stages(path: Path, db: Path, **options: object) -> dict:
    params = CurateParams(**options)
    run_id = start_run.fn(str(db), str(path), params)
    metrics = {"run_id": run_id}
    metrics.update(ingest.fn(str(db), run_id, str(path), params).to_json())
    metrics.update(validate.fn(str(db), run_id, params).to_json())
    return metrics


def _csv_rows(n: int, label: str, prefix: str) -> list[str]:
    return [f"{prefix} {i} has a few words,{label}" for i in range(n)]


def test_reasons_are_counted_by_kind_one_per_failed_check(tmp_path: Path) -> None:
    """A 2-row class and a blank text: 3 rows, 3 reasons, named by kind (was 4 'reasons' cut from messages)."""
    lines = ["text,label", *_csv_rows(25, "billing", "bill"), *_csv_rows(25, "technical", "tech")]
    lines += [*_csv_rows(2, "account", "acct"), " ,billing"]
    path = tmp_path / "small_class.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    metrics = _stages(path, tmp_path / "db.duckdb")
    assert metrics["rows_quarantined"] == 3
    assert metrics["quarantine_reasons"] == {"class with fewer than 5 valid rows": 2, "text is blank": 1}
    with store.connect(tmp_path / "db.duckdb", read_only=True) as con:
        reasons = [
            r[0] for r in con.execute("SELECT reason FROM quarantine WHERE run_id = ?", [metrics["run_id"]]).fetchall()
        ]
    small = [r for r in reasons if r.startswith("class 'account'")]
    assert len(small) == 2
    # no fold count that the run may not use (auto folds are chosen later, up to 20)
    assert all("-fold" not in r for r in small), small


def test_ingest_reasons_keep_their_kind_not_a_fragment_of_the_message(tmp_path: Path) -> None:
    """A broken JSON line counts as 'invalid JSON' (was 'invalid JSON: Expecting: 1')."""
    good = [json.dumps({"text": f"text number {i} about {lab}", "label": lab}) for lab in ("a", "b") for i in range(8)]
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join([*good, '{"text": "oops", "label": ', "[1, 2]"]) + "\n", encoding="utf-8")
    metrics = _stages(path, tmp_path / "db.duckdb")
    assert metrics["quarantine_reasons"] == {"invalid JSON": 1, "line is not a JSON object": 1}
    assert sum(metrics["quarantine_reasons"].values()) == metrics["rows_quarantined"]


def _small_class_csv(tmp_path: Path) -> Path:
    lines = ["text,label", *_csv_rows(25, "billing", "bill"), *_csv_rows(25, "technical", "tech")]
    lines += _csv_rows(3, "account", "acct")
    path = tmp_path / "small_class.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_class_dropped_whole_is_a_warning_naming_the_fix(tmp_path: Path) -> None:
    """Item 1: a class quarantined whole is recorded as a warning with the fix (fewer folds, merge the class)."""
    metrics = _stages(_small_class_csv(tmp_path), tmp_path / "db.duckdb")
    assert metrics["dropped_classes"] == {"account": 3}
    (warning,) = metrics["warnings"]
    assert "'account' (3 rows)" in warning and "--folds 3" in warning and "merge" in warning
    with store.connect(tmp_path / "db.duckdb", read_only=True) as con:
        stored = store.run_record(con, metrics["run_id"])["metrics_json"]
    assert stored["warnings"] == [warning]


def test_strict_stops_the_run_instead(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"'account' \(3 rows\).*--strict"):
        _stages(_small_class_csv(tmp_path), tmp_path / "db.duckdb", strict=True)


def test_no_warning_when_every_class_is_kept(tmp_path: Path) -> None:
    metrics = _stages(_small_class_csv(tmp_path), tmp_path / "db.duckdb", n_folds=3)
    assert metrics["dropped_classes"] == {} and metrics["warnings"] == []


def test_one_nul_byte_quarantines_its_row_not_the_file(tmp_path: Path) -> None:
    """Item 3: a NUL byte inside one text quarantines that row (was: the whole file rejected)."""
    lines = ["text,label", *_csv_rows(10, "billing", "bill"), *_csv_rows(10, "technical", "tech")]
    lines.insert(7, "a corrupt\x00 text,billing")
    path = tmp_path / "nul.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    metrics = _stages(path, tmp_path / "db.duckdb")
    assert (metrics["rows_in"], metrics["rows_valid"]) == (21, 20)
    assert metrics["quarantine_reasons"] == {"NUL byte in the record": 1}
    with store.connect(tmp_path / "db.duckdb", read_only=True) as con:
        ((line, reason),) = con.execute(
            "SELECT source_line, reason FROM quarantine WHERE run_id = ?", [metrics["run_id"]]
        ).fetchall()
    assert line == 8 and "NUL byte" in reason
