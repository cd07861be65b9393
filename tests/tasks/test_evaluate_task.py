"""evaluate_run on a copy of the warmed database: scores per trainer and variant, leaks left out of both sides."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, copy_db

from labelgate import store
from labelgate.config import CurateParams
from labelgate.errors import ConfigError
from labelgate.services.evaluate import evaluate_run, evaluations_frame

pytestmark = pytest.mark.flow

SAMPLE_TEST = REPO / "data" / "sample_test.csv"


def test_scores_are_stored_and_replaced_on_a_rerun(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    run_id = warm_run["run_id"]
    params = CurateParams(test_path=str(SAMPLE_TEST))
    summary = evaluate_run(db, run_id, params)
    comparisons = summary.comparisons
    assert [c.trainer for c in comparisons] == ["proxy", "proxy-c4"]  # the default: two regularisation strengths
    comparison = comparisons[0]
    with store.connect(db, read_only=True) as con:
        excluded = (store.latest_decisions(con, run_id)["action"] == "exclude").sum()
    for c in comparisons:
        assert c.raw.n_train == warm_run["rows_valid"]  # every valid row with its given label
        assert c.cleaned.n_train == warm_run["rows_valid"] - excluded  # what the export writes
        assert c.n_test == 120
        assert 0.5 < c.raw.accuracy <= 1 and 0.5 < c.cleaned.accuracy <= 1
        assert set(c.cleaned.per_class_f1) == {"account", "billing", "shipping", "technical"}
    assert comparisons[1].model.endswith("C=4)") and comparisons[1].raw != comparison.raw
    evaluate_run(db, run_id, params)
    df = evaluations_frame(db, run_id)
    assert sorted(zip(df["trainer"], df["variant"])) == [
        ("proxy", "cleaned"),
        ("proxy", "raw"),
        ("proxy-c4", "cleaned"),
        ("proxy-c4", "raw"),
    ]
    row = df[(df["trainer"] == "proxy") & (df["variant"] == "cleaned")].iloc[0]
    assert row["accuracy"] == pytest.approx(comparison.cleaned.accuracy)
    assert json.loads(row["per_class_f1"]) == pytest.approx(comparison.cleaned.per_class_f1)
    assert row["n_test"] == 120 and row["test_path"] == str(SAMPLE_TEST.resolve())
    assert row["seconds"] > 0
    with store.connect(db, read_only=True) as con:
        metrics = store.run_record(con, run_id)["metrics_json"]
        latest = store.latest_evaluations(con, run_id)
    ev = metrics["evaluation"]
    assert list(ev["trainers"]) == ["proxy", "proxy-c4"] and ev["n_test"] == 120
    assert ev["trainers"]["proxy"]["cleaned"]["accuracy"] == pytest.approx(comparison.cleaned.accuracy)
    assert summary.test_sha256 == row["test_sha256"] == ev["test_sha256"]
    assert latest["trainer"].tolist() == ["proxy", "proxy-c4"]
    first = latest.iloc[0]
    assert (first["raw_n_train"], first["cleaned_n_train"]) == (comparison.raw.n_train, comparison.cleaned.n_train)
    assert first["cleaned_accuracy"] == pytest.approx(comparison.cleaned.accuracy)
    assert first["seconds"] > 0


def test_a_second_evaluation_keeps_the_other_trainers_of_the_same_test_file(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    run_id = warm_run["run_id"]
    params = CurateParams(test_path=str(SAMPLE_TEST), eval_trainers=["proxy-c4"])
    summary = evaluate_run(db, run_id, params)
    assert list(summary.trainers) == ["proxy-c4"]
    summary = evaluate_run(db, run_id, params, trainers=["proxy"])
    (only,) = summary.comparisons  # this call's trainers only; the stored summary keeps the earlier one
    assert only.trainer == "proxy" and list(summary.trainers) == ["proxy-c4", "proxy"]
    other = tmp_path / "other.csv"  # another test file: its evaluation replaces the run's summary
    pd.read_csv(SAMPLE_TEST, dtype=str).head(60).to_csv(other, index=False)
    summary = evaluate_run(db, run_id, params, test_path=str(other))
    assert list(summary.trainers) == ["proxy-c4"] and summary.n_test == 60
    assert len(evaluations_frame(db, run_id)) == 6  # both test files stay in the table


def test_rows_leaking_the_test_set_train_neither_side(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    with store.connect(db, read_only=True) as con:
        valid = store.valid_rows(con, warm_run["run_id"])
    test = tmp_path / "test.csv"
    pd.concat([pd.read_csv(SAMPLE_TEST, dtype=str), valid[["text", "label"]].head(30)]).to_csv(test, index=False)
    summary = evaluate_run(db, warm_run["run_id"], CurateParams(test_path=str(test)), trainers=["proxy"])
    (comparison,) = summary.comparisons
    leaked = valid["text"].isin(set(valid["text"].head(30))).sum()  # the 30 rows and any exact repeats of them
    assert leaked >= 30 and summary.leakage_excluded == leaked
    assert comparison.raw.n_train == len(valid) - leaked
    assert comparison.cleaned.n_train == summary.trainers["proxy"]["cleaned"]["n_train"] <= comparison.raw.n_train


def test_no_test_file_is_a_clear_error(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    with pytest.raises(ConfigError, match="no test file: pass --test FILE"):
        evaluate_run(db, warm_run["run_id"], CurateParams())


def test_an_unknown_trainer_is_refused_before_any_work(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    with pytest.raises(ConfigError, match="unknown trainer 'svm'"):
        evaluate_run(db, warm_run["run_id"], CurateParams(test_path=str(SAMPLE_TEST)), trainers=["svm"])
    assert evaluations_frame(db, warm_run["run_id"]).empty
