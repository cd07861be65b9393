"""What detection stores per run: ``detections`` (the probability model), ``predictions``
(out-of-fold probabilities) and ``issues`` (one row per row and issue type); their reuse by a later run."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from labelgate.store.base import query_df, scalar
from labelgate.store.tables import insert_frame


def flagged_issues(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[pd.DataFrame, int | None]:
    """Every flagged issue of ``run_id`` (all types, the long ``issues`` shape) and the run's class count.

    What the auto policy decides over, both in the auto gate and when a review is finished with ``auto``. The
    unflagged ``label`` rows of flagged rows come too (``is_issue`` false): conflict resolution reads how strongly
    the model supports each copy's label.
    """
    issues = query_df(
        con,
        """SELECT row_id, issue_type, score, is_issue, given_label, suggested_label, suggested_prob,
                  reason, related_row_id, model_prob
           FROM issues i
           WHERE run_id = ? AND (is_issue OR (issue_type = 'label' AND row_id IN
                 (SELECT row_id FROM issues WHERE run_id = i.run_id AND is_issue)))
           ORDER BY row_id, issue_type""",
        [run_id],
    )
    found = con.execute("SELECT classes FROM detections WHERE run_id = ?", [run_id]).fetchall()
    n_classes = len(found[0][0]) if found and found[0][0] else None
    return issues, n_classes


def reusable_detection(con: duckdb.DuckDBPyConnection, key: str, *, except_run: str) -> str | None:
    """The newest completed run whose detection was computed from ``key`` (None when there is none)."""
    found = scalar(
        con,
        """SELECT d.run_id FROM detections d JOIN runs r ON r.run_id = d.run_id
           WHERE d.detection_key = ? AND r.status = 'completed' AND d.run_id <> ?
           ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1""",
        [key, except_run],
    )
    return None if found is None else str(found)


def copy_detection(con: duckdb.DuckDBPyConnection, source_run: str, run_id: str) -> dict[str, Any]:
    """Replace ``run_id``'s detection, predictions and issues by copies of ``source_run``'s (the caller's
    transaction); return the detection's stored metrics. The annotators stage's ``low_agreement`` issues are not
    the detection's: they are left out (that stage writes the run's own)."""
    for table in ("detections", "predictions", "issues"):
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
    con.execute(
        """INSERT INTO detections (run_id, method, classes, n_folds, metrics_json, detection_key)
           SELECT ?, method, classes, n_folds, metrics_json, detection_key FROM detections WHERE run_id = ?""",
        [run_id, source_run],
    )
    con.execute(
        "INSERT INTO predictions (run_id, row_id, probs) SELECT ?, row_id, probs FROM predictions WHERE run_id = ?",
        [run_id, source_run],
    )
    cols = "row_id, issue_type, score, is_issue, given_label, suggested_label, suggested_prob, reason, " + (
        "related_row_id, model_prob, label_kind, ambiguity"
    )
    con.execute(
        f"""INSERT INTO issues (run_id, {cols}) SELECT ?, {cols} FROM issues
            WHERE run_id = ? AND issue_type <> 'low_agreement'""",
        [run_id, source_run],
    )
    stored = scalar(con, "SELECT metrics_json FROM detections WHERE run_id = ?", [run_id])
    return json.loads(stored) if stored else {}


def set_detection_key(con: duckdb.DuckDBPyConnection, run_id: str, key: str) -> None:
    """Record the key ``run_id``'s detection was computed from."""
    con.execute("UPDATE detections SET detection_key = ? WHERE run_id = ?", [key, run_id])


def row_issues(con: duckdb.DuckDBPyConnection, run_id: str, row_ids: list[str]) -> pd.DataFrame:
    """The issue rows of ``row_ids`` in ``run_id``: row_id, issue_type, score, is_issue, suggested_label."""
    return query_df(
        con,
        """SELECT row_id, issue_type, score, is_issue, suggested_label FROM issues
           WHERE run_id = ? AND list_contains(?, row_id) ORDER BY row_id, issue_type""",
        [run_id, [str(r) for r in row_ids]],
    )


def run_predictions(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[pd.DataFrame, list[str]]:
    """The out-of-fold probabilities of ``run_id`` (columns row_id, probs) and the detection's classes."""
    frame = query_df(con, "SELECT row_id, probs FROM predictions WHERE run_id = ?", [run_id])
    classes = scalar(con, "SELECT classes FROM detections WHERE run_id = ?", [run_id])
    return frame, list(classes or [])


def replace_label_issues(con: duckdb.DuckDBPyConnection, run_id: str, issues: pd.DataFrame) -> int:
    """Replace the ``label`` issues of ``run_id`` for the rows in ``issues`` (issue columns without run_id)."""
    con.register("_lg_label_issue_ids", issues[["row_id"]])
    try:
        con.execute(
            """DELETE FROM issues WHERE run_id = ? AND issue_type = 'label'
               AND row_id IN (SELECT row_id FROM _lg_label_issue_ids)""",
            [run_id],
        )
    finally:
        con.unregister("_lg_label_issue_ids")
    return insert_frame(con, "issues", issues.assign(run_id=run_id))


def replace_issues_of_type(con: duckdb.DuckDBPyConnection, run_id: str, issue_type: str, issues: pd.DataFrame) -> int:
    """Replace every ``issue_type`` issue of ``run_id`` by ``issues`` (issue columns without run_id; may be empty:
    the run then has none of that type). Returns the rows inserted."""
    con.execute("DELETE FROM issues WHERE run_id = ? AND issue_type = ?", [run_id, issue_type])
    return insert_frame(con, "issues", issues.assign(run_id=run_id))


def count_label_issues(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """The number of flagged ``label`` issues of ``run_id``."""
    return int(
        scalar(con, "SELECT count(*) FROM issues WHERE run_id = ? AND issue_type = 'label' AND is_issue", [run_id])
    )


def count_label_issues_by_kind(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, int]:
    """The number of flagged ``label`` issues of ``run_id`` per kind (``mislabelled``, ``ambiguous``; issues without a
    kind, e.g. multi-annotator consensus issues, are not counted), kinds in name order."""
    rows = con.execute(
        """SELECT label_kind, count(*) FROM issues
           WHERE run_id = ? AND issue_type = 'label' AND is_issue AND label_kind IS NOT NULL
           GROUP BY label_kind ORDER BY label_kind""",
        [run_id],
    ).fetchall()
    return {str(kind): int(n) for kind, n in rows}


def save_detection(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    method: str,
    classes: list[str],
    n_folds: int | None,
    metrics_json: str,
    detection_key: str | None,
    predictions: pd.DataFrame,
    issues: pd.DataFrame,
) -> None:
    """Replace ``run_id``'s detection, predictions and issues (the caller's transaction).

    Args:
        metrics_json: the detection's figures as JSON text.
        predictions: columns run_id, row_id, probs (one float list per row, in ``classes`` order).
        issues: the long ``issues`` shape with run_id (one row per row and issue type).
    """
    for table in ("detections", "predictions", "issues"):
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
    con.execute(
        "INSERT INTO detections (run_id, method, classes, n_folds, metrics_json, detection_key) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [run_id, method, classes, n_folds, metrics_json, detection_key],
    )
    insert_frame(con, "predictions", predictions)
    insert_frame(con, "issues", issues)


def detection_classes(con: duckdb.DuckDBPyConnection, *, run_id: str) -> list[Any] | None:
    """The classes of ``run_id``'s probability model as stored (None when the run has no detection yet)."""
    found = con.execute("SELECT classes FROM detections WHERE run_id = ?", [run_id]).fetchall()
    return found[0][0] if found else None


def predictions_with_labels(con: duckdb.DuckDBPyConnection, *, run_id: str) -> pa.Table:
    """The out-of-fold probabilities of ``run_id`` with each row's given label, ordered by row id.

    Columns: probs (float list in the detection's class order), label.
    """
    return con.sql(
        """SELECT p.probs, r.label FROM predictions p
           JOIN (SELECT DISTINCT row_id, label FROM valid_rows WHERE run_id = $run) r ON r.row_id = p.row_id
           WHERE p.run_id = $run ORDER BY p.row_id""",
        params={"run": run_id},
    ).to_arrow_table()


def flagged_row_ids(con: duckdb.DuckDBPyConnection, *, run_id: str, issue_type: str) -> list[str]:
    """The row ids of ``run_id`` the ``issue_type`` detector flagged (label, duplicate, conflict, leakage, ...)."""
    return [
        r[0]
        for r in con.execute(
            "SELECT row_id FROM issues WHERE run_id = ? AND issue_type = ? AND is_issue", [run_id, issue_type]
        ).fetchall()
    ]


def top_label_issues(con: duckdb.DuckDBPyConnection, *, run_id: str, limit: int) -> pd.DataFrame:
    """The first ``limit`` flagged ``label`` issues of ``run_id`` in the review queue's order: the likely mislabelled
    ones (and those without a kind) by lowest score, then the ambiguous ones by lowest score
    (:func:`labelgate.core.ambiguity.queue_order`).

    Columns: row_id, text, given_label, suggested_label, suggested_prob (3 decimals), label_score (4 decimals),
    label_kind, reason.
    """
    return query_df(
        con,
        """SELECT i.row_id, r.text, i.given_label, i.suggested_label, round(i.suggested_prob, 3) AS suggested_prob,
                  round(i.score, 4) AS label_score, i.label_kind, i.reason
           FROM issues i JOIN valid_rows r ON r.run_id = i.run_id AND r.row_id = i.row_id
           WHERE i.run_id = ? AND i.issue_type = 'label' AND i.is_issue
           ORDER BY coalesce(i.label_kind = 'ambiguous', false), i.score ASC, i.row_id LIMIT ?""",
        [run_id, limit],
    )


def issue_rows(con: duckdb.DuckDBPyConnection, *, run_id: str, flagged_only: bool = False) -> pd.DataFrame:
    """Every valid row of ``run_id`` joined with its issues (one row per row and issue type; a row without issues
    once, its issue columns null). ``flagged_only``: only rows some detector flagged.

    Columns: id, text, label, source_line, issue_type, score, is_issue, given_label, suggested_label,
    suggested_prob, model_prob, reason, related_row_id, label_kind, ambiguity.
    """
    flagged_filter = (
        "AND EXISTS (SELECT 1 FROM issues f WHERE f.run_id = r.run_id AND f.row_id = r.row_id AND f.is_issue)"
        if flagged_only
        else ""
    )
    return query_df(
        con,
        f"""SELECT r.row_id AS id, r.text, r.label, r.source_line, i.issue_type, i.score, i.is_issue,
                   i.given_label, i.suggested_label, i.suggested_prob, i.model_prob, i.reason, i.related_row_id,
                   i.label_kind, i.ambiguity
            FROM valid_rows r LEFT JOIN issues i ON i.run_id = r.run_id AND i.row_id = r.row_id
            WHERE r.run_id = ? {flagged_filter}""",
        [run_id],
    )
