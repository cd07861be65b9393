"""Detection task: every detector over the run's valid rows, one ``issues`` row shape for all.

Label issues come from out-of-fold ensemble probabilities (:mod:`labelgate.core.probs`) and
class-adjusted confident learning (:mod:`labelgate.core.detect`); duplicates, conflicting labels and
leakage from normalised text and embedding neighbours (:mod:`labelgate.core.duplicates`); outliers
from kNN distances (:mod:`labelgate.core.outliers`); empty / too-short / too-long texts from
:mod:`labelgate.core.lengths`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import task

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.detect import DetectorSettings, detect_all
from labelgate.core.ingest import sha256_text
from labelgate.core.issues import ISSUE_TYPES
from labelgate.errors import ConfigError
from labelgate.tasks._common import TASK_OPTIONS, read_input
from labelgate.tasks.embed import cache_key, embed_texts, missing_hashes


def _token_counts(texts: list[str], params: CurateParams) -> tuple[list[int] | None, str]:
    if params.max_text_tokens is None:
        return None, "tokens"
    from labelgate.core.tokens import CachedCounter, get_counter

    counter = CachedCounter(get_counter(getattr(params, "token_counter", "auto")))
    return counter.count_many(texts), f"{counter.name} estimate"


def _test_rows(db_path: str, params: CurateParams) -> tuple[pd.DataFrame, np.ndarray]:
    """The test file's rows (row_id, text) and their embeddings (cached like the run's)."""
    path = params.test_path
    assert path is not None
    if not Path(path).exists():
        raise ConfigError(f"test file {path!r} does not exist; pass --test PATH")
    result = read_input(path, params)
    rows = result.rows[result.rows["text"].notna()]
    rows = rows[rows["text"].str.strip() != ""][["row_id", "text"]].reset_index(drop=True)
    hashes = [sha256_text(t) for t in rows["text"]]
    text_of = dict(zip(hashes, rows["text"]))
    embed_texts(db_path, params, missing_hashes(db_path, params, list(text_of))[0], text_of)
    with store.connect(db_path) as con:
        test_vectors = store.get_embeddings(con, cache_key(params), hashes) if hashes else np.zeros((0, 0), np.float32)
    return rows, test_vectors


@task(name="detect", **TASK_OPTIONS)
def detect(db_path: str, run_id: str, params: CurateParams) -> dict[str, Any]:
    """Run every detector over the valid rows; store predictions and issues; return counts per issue type."""
    key = cache_key(params)
    with store.connect(db_path) as con:
        rows = store.valid_rows(con, run_id)
        vectors = store.get_embeddings(con, key, list(rows["text_sha256"]))
    row_ids = [str(r) for r in rows["row_id"]]
    texts = [t if isinstance(t, str) else "" for t in rows["text"]]
    counts, counter_name = _token_counts(texts, params)
    test_ids = test_texts = test_vectors = None
    if params.test_path:
        test, test_vectors = _test_rows(db_path, params)
        test_ids, test_texts = list(test["row_id"]), list(test["text"])
    found = detect_all(
        row_ids,
        texts,
        [str(v) for v in rows["label"]],
        vectors,
        settings=DetectorSettings.from_params(params),
        token_counts=counts,
        token_counter_name=counter_name,
        test_ids=test_ids,
        test_texts=test_texts,
        test_vectors=test_vectors,
    )
    probs = found.probs
    issues = found.issues.copy()
    issues.insert(0, "run_id", run_id)

    predictions = pa.table(
        {
            "run_id": pa.array([run_id] * len(rows), pa.string()),
            "row_id": pa.array(row_ids, pa.string()),
            "probs": store.vectors_to_arrow(probs.probs),
        }
    )
    flagged = issues[issues["is_issue"]]
    per_type = {t: int((flagged["issue_type"] == t).sum()) for t in ISSUE_TYPES}
    n_issues = per_type["label"]
    accuracy = float((probs.probs.argmax(axis=1) == probs.labels).mean())
    metrics = {
        "label_issues": n_issues,
        "label_issue_rate": round(n_issues / max(len(rows), 1), 4),
        "issues_by_type": per_type,
        "rows_flagged": int(flagged["row_id"].nunique()),
        "detector": probs.method,
        "oof_accuracy_vs_given": round(accuracy, 4),
        "oof_accuracy_by_member": {
            m: round(float((p.argmax(axis=1) == probs.labels).mean()), 4) for m, p in probs.members.items()
        },
        "classes": probs.classes,
        "detect_seconds": {k: round(v, 3) for k, v in found.seconds.items()},
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
