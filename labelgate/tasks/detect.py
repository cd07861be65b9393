"""Detection task: out-of-fold probabilities and confident learning over the run's embeddings."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow as pa
from prefect import task

from labelgate import embedding, store
from labelgate.config import CurateParams
from labelgate.core.detect import find_label_issues, out_of_fold_probs
from labelgate.tasks._common import TASK_OPTIONS


@task(name="detect", **TASK_OPTIONS)
def detect(db_path: str, run_id: str, params: CurateParams) -> dict[str, Any]:
    """Score every valid row; store predictions and label issues; return the issue count."""
    key = embedding.model_key(params.model)
    with store.connect(db_path) as con:
        rows = store.valid_rows(con, run_id)
        vectors = store.get_embeddings(con, key, list(rows["text_sha256"]))
    probs = out_of_fold_probs(vectors, rows["label"], n_folds=params.n_folds, seed=params.seed)
    found = find_label_issues(rows["row_id"], probs)
    issues = pd.DataFrame(
        {
            "run_id": run_id,
            "row_id": found["row_id"],
            "issue_type": "label",
            "score": found["label_score"],
            "is_issue": found["is_label_issue"],
            "given_label": found["given_label"],
            "suggested_label": found["suggested_label"],
            "suggested_prob": found["suggested_prob"],
            "reason": found["reason"],
            "related_row_id": None,
        }
    )
    predictions = pa.table(
        {
            "run_id": pa.array([run_id] * len(rows), pa.string()),
            "row_id": pa.array(list(rows["row_id"]), pa.string()),
            "probs": store.vectors_to_arrow(probs.probs),
        }
    )
    n_issues = int(found["is_label_issue"].sum())
    accuracy = float((probs.probs.argmax(axis=1) == probs.labels).mean())
    metrics = {
        "label_issues": n_issues,
        "label_issue_rate": round(n_issues / max(len(rows), 1), 4),
        "detector": probs.method,
        "oof_accuracy_vs_given": round(accuracy, 4),
        "classes": probs.classes,
    }
    with store.connect(db_path) as con, store.transaction(con):
        for table in ("detections", "predictions", "issues"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        con.execute(
            "INSERT INTO detections VALUES (?, ?, ?, ?, ?)",
            [run_id, probs.method, probs.classes, params.n_folds, json.dumps(metrics)],
        )
        store.insert_frame(con, "predictions", predictions)
        store.insert_frame(con, "issues", issues)
        store.merge_metrics(con, run_id, metrics)
    return metrics
