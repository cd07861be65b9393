"""The dashboard's annotator panel on the tiny run with annotators added through the store (no model, no Prefect)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from unit_support import annotations_frame

from labelgate import store
from labelgate.services import reports
from labelgate.web.app import create_app

pytestmark = pytest.mark.unit


def _multi_annotator(db: str, run_id: str, items: list[str]) -> None:
    """Two annotators on ``items``: ann always agrees with the consensus, bob twice does not."""
    consensus = ["billing"] * len(items)
    bob = ["billing", "shipping", "shipping"] + ["billing"] * (len(items) - 3)
    labels = [(i, "ann", c) for i, c in zip(items, consensus)] + [(i, "bob", b) for i, b in zip(items, bob)]
    annotations = annotations_frame(run_id, labels)
    agreement = [1.0 if b == "billing" else 0.5 for b in bob]
    cons = pd.DataFrame(
        {
            "run_id": run_id,
            "item_id": items,
            "consensus_label": consensus,
            "consensus_quality": 0.9,
            "agreement": agreement,
            "n_labels": 2,
            "majority_label": consensus,
            "model_label": consensus,
            "model_prob": 0.8,
            "labels_json": [json.dumps({"ann": c, "bob": b}) for c, b in zip(consensus, bob)],
        }
    )
    quality = pd.DataFrame(
        {
            "run_id": run_id,
            "annotator": ["ann", "bob"],
            "quality": [0.97, 0.61],
            "quality_sd": [0.02, 0.11],
            "n_labels": [len(items), len(items)],
            "agreement": [1.0, (len(items) - 2) / len(items)],
            "method": "test",
        }
    )
    with store.connect(db) as con, store.transaction(con):
        store.replace_run_rows(con, "annotations", run_id, annotations)
        store.replace_run_rows(con, "consensus", run_id, cons)
        store.replace_run_rows(con, "annotator_quality", run_id, quality)


def test_the_panel_counts_each_annotators_labels_against_the_consensus(tiny_db: str, tiny_run) -> None:
    _multi_annotator(tiny_db, tiny_run.run_id, ["t01", "t03", "t04", "t05"])
    with store.connect(tiny_db) as con:
        panel = reports.annotator_panel(con, tiny_run.run_id)
    assert [a["annotator"] for a in panel["annotators"]] == ["ann", "bob"]
    assert panel["classes"] == ["billing", "shipping"]
    assert panel["matrix"] == [[6, 0], [2, 0]]  # rows: the annotator's label; columns: the consensus
    assert (panel["labels"], panel["disagreeing"]) == (8, 2)


def test_the_dashboard_shows_the_panel_only_for_runs_with_annotators(tiny_db: str, tiny_run) -> None:
    client = TestClient(create_app(tiny_db, reviewer="tester"))
    before = client.get("/dashboard", params={"run": tiny_run.run_id}).text
    assert 'id="annotators"' not in before
    _multi_annotator(tiny_db, tiny_run.run_id, ["t01", "t03", "t04", "t05"])
    page = client.get("/dashboard", params={"run": tiny_run.run_id}).text
    assert 'id="annotators"' in page and 'data-annotator="bob"' in page
    assert "annotator disagreement matrix" in page and "labels that differ from the consensus: ≈2 of 8 rows" in page
    api = client.get("/api/dashboard", params={"run": tiny_run.run_id}).json()
    assert api["selected"]["annotators"]["disagreeing"] == 2
