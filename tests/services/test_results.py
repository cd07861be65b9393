"""The services' typed results (issue 17): export_run, evaluate_run and the review progress return frozen
dataclasses, and the dict each one still writes (run metrics, ``--json``, the web API) keeps its keys."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
from unit_support import ROWS, tiny_params

from labelgate import store
from labelgate.core.metrics import EvaluationMetrics, ExportMetrics, RunMetrics
from labelgate.services import review
from labelgate.services.evaluate import EvaluationResult, evaluate_run
from labelgate.services.export import ExportResult, export_run

pytestmark = pytest.mark.unit

#: the keys of ``GET /api/runs/{run}/progress`` (:meth:`labelgate.services.review.ReviewProgress.to_dict`)
PROGRESS_KEYS = [
    "run_id",
    "status",
    "flagged",
    "reviewed",
    "carried",
    "remaining",
    "by_action",
    "policy",
    "other_reviewed",
    "carried_total",
    "new_flagged",
    "remaining_new",
]


def _stored_metrics(db: str, run_id: str) -> dict:
    with store.connect(db, read_only=True) as con:
        return store.run_record(con, run_id)["metrics_json"]


def test_export_run_returns_a_frozen_result_whose_dict_is_what_the_run_stores(tiny_db: str, tiny_run, tmp_path) -> None:
    result = export_run(tiny_db, tiny_run.run_id, str(tmp_path / "out"), tiny_params())
    assert isinstance(result, ExportResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.export_version = 2  # type: ignore[misc]
    assert result.export_version == 1 and Path(result.export_dir).name == tiny_run.run_id
    assert result.exported == result.exported_train + result.exported_val > 0
    assert [Path(f).parent for f in result.export_files] == [Path(result.export_dir)] * len(result.export_files)
    assert result.export_formats == ("openai-chat",)

    as_dict = result.to_dict()
    assert set(as_dict) == ExportMetrics.json_keys()  # the export stage's JSON keys, no more, no fewer
    assert isinstance(as_dict["export_files"], list) and isinstance(as_dict["export_formats"], list)
    stored = _stored_metrics(tiny_db, tiny_run.run_id)
    assert {k: stored[k] for k in as_dict} == as_dict
    assert result.to_metrics() == RunMetrics.from_json(stored).export


def test_review_progress_is_typed_and_the_web_dict_keeps_its_keys(tiny_run) -> None:
    with store.connect(tiny_run.db_path, read_only=True) as con:
        typed = review.review_progress(con, tiny_run.run_id)
    plain = typed.to_dict()
    assert isinstance(typed, review.ReviewProgress)
    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.reviewed = 1  # type: ignore[misc]
    assert list(plain) == PROGRESS_KEYS
    assert plain == dataclasses.asdict(typed)
    assert typed.run_id == tiny_run.run_id and typed.status == "completed"
    assert typed.flagged == tiny_run.metrics["rows_flagged"] and typed.reviewed == 0
    assert typed.remaining == typed.flagged - typed.carried


def test_evaluate_run_returns_the_comparisons_and_the_stored_summary(tiny_db: str, tiny_run, tmp_path) -> None:
    test = tmp_path / "test.csv"  # same columns, texts no training row has (nothing leaks)
    with test.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "label"])
        writer.writerows((f"x{rid}", f"{text} once more", label) for rid, text, label in ROWS if text.strip())
    params = tiny_params().model_copy(update={"test_path": str(test)})

    result = evaluate_run(tiny_db, tiny_run.run_id, params, trainers=["proxy"])
    assert isinstance(result, EvaluationResult)
    assert [c.trainer for c in result.comparisons] == ["proxy"] and result.leakage_excluded == 0
    assert result.n_test == result.comparisons[0].n_test == len(ROWS) - 1
    stored = _stored_metrics(tiny_db, tiny_run.run_id)["evaluation"]
    assert stored == result.to_dict()
    assert list(result.to_dict()) == ["test_path", "test_sha256", "leakage_excluded", "n_test", "trainers"]
    assert result.to_metrics() == EvaluationMetrics.from_json(stored)

    again = evaluate_run(tiny_db, tiny_run.run_id, params, trainers=["proxy-c4"])
    assert [c.trainer for c in again.comparisons] == ["proxy-c4"]  # this call's
    assert list(again.trainers) == ["proxy", "proxy-c4"]  # the stored summary keeps the earlier trainer
