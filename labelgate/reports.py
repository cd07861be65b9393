"""Read-side queries shared by the CLI and the web pages: runs and their issues as DataFrames."""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from labelgate import store

ISSUE_COLUMNS = [
    "id",
    "text",
    "given_label",
    "suggested_label",
    "label_score",
    "is_label_issue",
    "suggested_prob",
    "source_line",
    "reason",
]


def issues_frame(con: duckdb.DuckDBPyConnection, run_id: str, *, flagged_only: bool = True) -> pd.DataFrame:
    """Label-issue rows of ``run_id``, worst (lowest label score) first.

    Columns :data:`ISSUE_COLUMNS`: ``id`` is the row id, ``label_score`` in [0, 1] (higher = the given
    label is more likely right), ``reason`` a sentence for flagged rows.
    """
    where = "AND i.is_issue" if flagged_only else ""
    return store.query_df(
        con,
        f"""SELECT i.row_id AS id, r.text, i.given_label, i.suggested_label, i.score AS label_score,
                   i.is_issue AS is_label_issue, i.suggested_prob, r.source_line, i.reason
            FROM issues i JOIN valid_rows r ON r.run_id = i.run_id AND r.row_id = i.row_id
            WHERE i.run_id = ? AND i.issue_type = 'label' {where}
            ORDER BY i.score ASC, i.row_id""",
        [run_id],
    )[ISSUE_COLUMNS]


RUN_COLUMNS = [
    "run_id",
    "dataset",
    "dataset_version",
    "status",
    "started_at",
    "finished_at",
    "rows_in",
    "rows_valid",
    "rows_quarantined",
    "label_issues",
    "exported_train",
    "exported_val",
    "message",
]


def runs_frame(con: duckdb.DuckDBPyConnection, *, limit: int | None = None) -> pd.DataFrame:
    """Every run, newest first, with its headline metrics (columns :data:`RUN_COLUMNS`)."""
    df = store.query_df(
        con,
        "SELECT run_id, dataset, dataset_version, status, started_at, finished_at, metrics_json, message "
        "FROM runs ORDER BY started_at DESC, run_id DESC" + (" LIMIT ?" if limit else ""),
        [limit] if limit else [],
    )
    metrics = [json.loads(m) if isinstance(m, str) else {} for m in df["metrics_json"]]
    for key in ("rows_in", "rows_valid", "rows_quarantined", "label_issues", "exported_train", "exported_val"):
        df[key] = pd.array([m.get(key) for m in metrics], dtype="Int64")
    return df[RUN_COLUMNS]
