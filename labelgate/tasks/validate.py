"""Validation task: run the Great Expectations suite; quarantine failing rows; stop on table-level failure."""

from __future__ import annotations

import json
from typing import Any

from prefect import task

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.metrics import RunMetrics, ValidateMetrics
from labelgate.core.probs import AUTO_MIN_FOLDS
from labelgate.core.validate import dropped_classes_message, merge_reason_counts, validate_rows
from labelgate.errors import ValidationError
from labelgate.gx import default_engine
from labelgate.tasks._common import TASK_OPTIONS


@task(name="validate", **TASK_OPTIONS)
def validate(db_path: str, run_id: str, params: CurateParams) -> ValidateMetrics:
    """Validate the run's rows that ingest could parse; return counts and the class distribution."""
    with store.connect(db_path) as con:
        store.replace_run_rows(con, "quarantine", run_id, match={"stage": "validate"})
        rows = store.valid_rows(con, run_id)
        rows_in = store.count_rows(con, run_id=run_id)
    try:
        outcome = validate_rows(
            rows,
            engine=default_engine(),
            min_text_chars=params.min_text_chars,
            max_text_chars=params.max_text_chars,
            min_rows_per_class=params.n_folds if params.n_folds is not None else AUTO_MIN_FOLDS,
        )
    except ValidationError as err:
        record = getattr(err, "result_json", None)
        with store.connect(db_path) as con, store.transaction(con):
            store.save_validation(con, run_id=run_id, success=False, result_json=json.dumps({"error": str(err)}))
            if record is not None:
                counts = merge_reason_counts(_ingest_reasons(con, run_id), record["labelgate"]["reason_counts"])
                store.merge_metrics(con, run_id, {"quarantine_reasons": counts})
        raise
    dropped = outcome.result_json["labelgate"]["dropped_classes"]
    min_rows = params.n_folds if params.n_folds is not None else AUTO_MIN_FOLDS
    warnings = [dropped_classes_message(dropped, min_rows_per_class=min_rows)] if dropped else []
    if warnings and params.strict:
        raise ValidationError(f"{warnings[0]} (stopped: --strict)")
    # (row_id, source_line) identifies a record even when ids repeat
    quarantine = outcome.quarantine.merge(rows[["row_id", "source_line", "seq"]], on=["row_id", "source_line"])
    quarantine = quarantine.assign(run_id=run_id, stage="validate", raw_json=None)
    with store.connect(db_path) as con, store.transaction(con):
        store.insert_frame(
            con, "quarantine", quarantine[["run_id", "seq", "row_id", "source_line", "stage", "reason", "raw_json"]]
        )
        store.save_validation(
            con, run_id=run_id, success=quarantine.empty, result_json=json.dumps(outcome.result_json, default=str)
        )
        total_q = store.count_quarantined(con, run_id=run_id)
        ingest_counts = _ingest_reasons(con, run_id)
        reasons = merge_reason_counts(ingest_counts, outcome.result_json["labelgate"]["reason_counts"])
        metrics = ValidateMetrics(
            rows_valid=int(rows_in - total_q),
            rows_quarantined=int(total_q),
            class_counts_in=outcome.class_counts,
            quarantine_reasons=reasons,
            dropped_classes=dropped,
            warnings=warnings,
        )
        store.merge_metrics(con, run_id, metrics.to_json())
    return metrics


def _ingest_reasons(con: Any, run_id: str) -> dict[str, int]:
    """Reason -> records the ingest stage of ``run_id`` quarantined (from the run's stored metrics)."""
    ingest = RunMetrics.from_json(store.run_record(con, run_id)["metrics_json"]).ingest
    return dict(ingest.quarantine_reasons_ingest or {}) if ingest else {}
