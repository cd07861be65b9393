"""evaluate_run on a copy of the warmed database: scores stored per variant, leaks left out of both sides."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, copy_db

from labelgate import store
from labelgate.config import CurateParams
from labelgate.errors import ConfigError
from labelgate.tasks.evaluate import evaluate_run, evaluations_frame

SAMPLE_TEST = REPO / "data" / "sample_test.csv"


def test_scores_are_stored_and_replaced_on_a_rerun(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    run_id = warm_run["run_id"]
    params = CurateParams(test_path=str(SAMPLE_TEST))
    comparison, summary = evaluate_run(db, run_id, params)
    with store.connect(db, read_only=True) as con:
        excluded = (store.latest_decisions(con, run_id)["action"] == "exclude").sum()
    assert comparison.raw.n_train == warm_run["rows_valid"]  # every valid row with its given label
    assert comparison.cleaned.n_train == warm_run["rows_valid"] - excluded  # what the export writes
    assert comparison.n_test == 120
    assert 0.5 < comparison.raw.accuracy <= 1 and 0.5 < comparison.cleaned.accuracy <= 1
    assert set(comparison.cleaned.per_class_f1) == {"account", "billing", "shipping", "technical"}
    evaluate_run(db, run_id, params)
    df = evaluations_frame(db, run_id)
    assert sorted(df["variant"]) == ["cleaned", "raw"]
    row = df[df["variant"] == "cleaned"].iloc[0]
    assert row["accuracy"] == pytest.approx(comparison.cleaned.accuracy)
    assert json.loads(row["per_class_f1"]) == pytest.approx(comparison.cleaned.per_class_f1)
    assert row["n_test"] == 120 and row["test_path"] == str(SAMPLE_TEST.resolve())
    with store.connect(db, read_only=True) as con:
        metrics = store.run_record(con, run_id)["metrics_json"]
    assert metrics["evaluation"]["cleaned"]["accuracy"] == pytest.approx(comparison.cleaned.accuracy)
    assert summary["test_sha256"] == row["test_sha256"]


def test_rows_leaking_the_test_set_train_neither_side(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    with store.connect(db, read_only=True) as con:
        valid = store.valid_rows(con, warm_run["run_id"])
    test = tmp_path / "test.csv"
    pd.concat([pd.read_csv(SAMPLE_TEST, dtype=str), valid[["text", "label"]].head(30)]).to_csv(test, index=False)
    comparison, summary = evaluate_run(db, warm_run["run_id"], CurateParams(test_path=str(test)))
    leaked = valid["text"].isin(set(valid["text"].head(30))).sum()  # the 30 rows and any exact repeats of them
    assert leaked >= 30 and summary["leakage_excluded"] == leaked
    assert comparison.raw.n_train == len(valid) - leaked
    assert comparison.cleaned.n_train == summary["cleaned"]["n_train"] <= comparison.raw.n_train


def test_no_test_file_is_a_clear_error(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    with pytest.raises(ConfigError, match="no test file: pass --test FILE"):
        evaluate_run(db, warm_run["run_id"], CurateParams())
