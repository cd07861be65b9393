"""Ingest and validate tasks: quarantine reasons counted by kind from structured data (issue 15, item 2)."""

from __future__ import annotations

import json
from pathlib import Path

from labelgate import store
from labelgate.config import CurateParams
from labelgate.tasks.ingest import ingest
from labelgate.tasks.run import start_run
from labelgate.tasks.validate import validate


def _stages(path: Path, db: Path, **options: object) -> dict:
    params = CurateParams(**options)
    run_id = start_run.fn(str(db), str(path), params)
    metrics = {"run_id": run_id}
    metrics.update(ingest.fn(str(db), run_id, str(path), params))
    metrics.update(validate.fn(str(db), run_id, params))
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
