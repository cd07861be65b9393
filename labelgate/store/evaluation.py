"""The ``evaluations`` table: before/after scores per run, test file, trainer and variant."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pandas as pd

from labelgate.store.base import query_df


def save_evaluation(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    test_sha256: str,
    test_path: str | None,
    trainer: str,
    model: str,
    n_test: int,
    scores: Sequence[Mapping[str, Any]],
) -> None:
    """Replace the evaluation rows of (run, test file, trainer) with ``scores`` (call it inside
    :func:`transaction`, with the metrics update that goes with it).

    Args:
        scores: one mapping per variant (``raw``, ``cleaned``) with variant, n_train, accuracy, macro_f1,
            per_class_f1 (dict class -> F1) and seconds (None when not measured).
    """
    con.execute(
        "DELETE FROM evaluations WHERE run_id = ? AND test_sha256 = ? AND trainer = ?",
        [run_id, test_sha256, trainer],
    )
    for s in scores:
        con.execute(
            """INSERT INTO evaluations (run_id, test_sha256, trainer, variant, test_path, model, n_train, n_test,
                                        accuracy, macro_f1, per_class_f1, seconds)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                run_id,
                test_sha256,
                trainer,
                s["variant"],
                test_path,
                model,
                int(s["n_train"]),
                int(n_test),
                float(s["accuracy"]),
                float(s["macro_f1"]),
                json.dumps(s["per_class_f1"], sort_keys=True),
                None if s.get("seconds") is None else float(s["seconds"]),
            ],
        )


def evaluations(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Every stored evaluation row of ``run_id``, newest first (then trainer, variant raw before cleaned).

    Columns: trainer, variant, test_path, test_sha256, model, n_train, n_test, accuracy, macro_f1,
    per_class_f1 (JSON text), seconds, created_at.
    """
    return query_df(
        con,
        """SELECT trainer, variant, test_path, test_sha256, model, n_train, n_test, accuracy, macro_f1, per_class_f1,
                  seconds, created_at
           FROM evaluations WHERE run_id = ? ORDER BY created_at DESC, trainer, variant DESC""",
        [run_id],
    )


def latest_evaluations(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The latest evaluation of ``run_id`` per trainer, one row per trainer (raw and cleaned side by side).

    Columns: trainer, model, test_path, n_test, raw_n_train, cleaned_n_train, raw_accuracy, cleaned_accuracy,
    raw_macro_f1, cleaned_macro_f1, seconds (both sides; None when not measured), created_at; ordered by trainer.
    """
    return query_df(
        con,
        """WITH latest AS (
               SELECT trainer, test_sha256 FROM evaluations WHERE run_id = ?
               QUALIFY row_number() OVER (PARTITION BY trainer ORDER BY created_at DESC, test_sha256) = 1
           )
           SELECT e.trainer, any_value(e.model) AS model, any_value(e.test_path) AS test_path,
                  any_value(e.n_test) AS n_test,
                  max(e.n_train) FILTER (WHERE e.variant = 'raw') AS raw_n_train,
                  max(e.n_train) FILTER (WHERE e.variant = 'cleaned') AS cleaned_n_train,
                  max(e.accuracy) FILTER (WHERE e.variant = 'raw') AS raw_accuracy,
                  max(e.accuracy) FILTER (WHERE e.variant = 'cleaned') AS cleaned_accuracy,
                  max(e.macro_f1) FILTER (WHERE e.variant = 'raw') AS raw_macro_f1,
                  max(e.macro_f1) FILTER (WHERE e.variant = 'cleaned') AS cleaned_macro_f1,
                  CASE WHEN count(e.seconds) = count(*) THEN sum(e.seconds) END AS seconds,
                  max(e.created_at) AS created_at
           FROM evaluations e JOIN latest USING (trainer, test_sha256)
           WHERE e.run_id = ?
           GROUP BY e.trainer ORDER BY e.trainer""",
        [run_id, run_id],
    )
