"""The dashboard's figures as plain data (labelgate.services.dashboard) on the tiny run (no model, no Prefect)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelgate import store
from labelgate.errors import RunNotFoundError
from labelgate.services import dashboard

pytestmark = pytest.mark.unit


def test_the_tiny_run_is_selected_with_its_figures(tiny_run) -> None:
    data = dashboard.dashboard_data(tiny_run.db_path)
    assert data["datasets"] == ["tiny"] and data["dataset"] is None
    assert data["totals"] == {"exported": 1, "blocked": 0, "failed": 0, "runs": 1}
    (run,) = data["runs"]
    assert run["run_id"] == tiny_run.run_id and "metrics" not in run and run["flow_run_url"] is None
    sel = data["selected"]
    assert sel["run_id"] == tiny_run.run_id and sel["outcome"] == "exported"
    assert (sel["rows_in"], sel["rows_quarantined"], sel["label_issues"]) == (25, 1, 2)
    assert sel["quarantine_reasons"] == {"empty text": 1}
    dist = sel["class_distribution"]
    assert sum(c["before"] for c in dist.values()) == 24 and all(c["previous"] == 0 for c in dist.values())
    assert sel["has_decisions"] is True and sel["evaluations"] == [] and sel["annotators"] is None
    classes = sel["noise_matrix"]["classes"]
    assert classes == sorted(dist) and len(sel["noise_matrix"]["matrix"]) == len(classes)
    json.dumps(data)  # plain data: what /api/dashboard returns


def test_filters_limit_and_unknown_runs(tiny_run, tmp_path: Path) -> None:
    none = dashboard.dashboard_data(tiny_run.db_path, dataset="other")
    assert none["runs"] == [] and none["selected"] is None and none["totals"]["runs"] == 0
    assert none["datasets"] == ["tiny"]
    assert dashboard.dashboard_data(tiny_run.db_path, run="latest", limit=0)["selected"]["run_id"] == tiny_run.run_id
    with pytest.raises(RunNotFoundError):
        dashboard.dashboard_data(tiny_run.db_path, run="nope")
    with pytest.raises(RunNotFoundError, match="does not exist"):
        dashboard.dashboard_data(str(tmp_path / "missing.duckdb"))


def test_each_evaluation_gets_its_cleaned_minus_raw_deltas(tiny_db: str, tiny_run) -> None:
    scores = [
        {"variant": "raw", "n_train": 20, "accuracy": 0.70, "macro_f1": 0.60, "per_class_f1": {}, "seconds": 2.5},
        {"variant": "cleaned", "n_train": 18, "accuracy": 0.75, "macro_f1": 0.58, "per_class_f1": {}, "seconds": None},
    ]
    with store.connect(tiny_db) as con, store.transaction(con):
        store.save_evaluation(
            con,
            run_id=tiny_run.run_id,
            test_sha256="t",
            test_path="test.csv",
            trainer="proxy",
            model="m",
            n_test=9,
            scores=scores,
        )
    (e,) = dashboard.dashboard_data(tiny_db)["selected"]["evaluations"]
    assert (e["trainer"], e["raw_n_train"], e["cleaned_n_train"], e["n_test"]) == ("proxy", 20, 18, 9)
    assert e["accuracy_delta"] == pytest.approx(0.05) and e["macro_f1_delta"] == pytest.approx(-0.02)
    assert isinstance(e["created_at"], str)
    json.dumps(e)
