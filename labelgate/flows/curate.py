"""The ``curate`` flow: ingest → validate → embed → detect → gate → export, one ``run_id`` per flow run.

The flow only composes tasks. Every task reads its inputs from DuckDB and writes its outputs
there, so a stage can be inspected (``labelgate issues``, the web pages) while or after it runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from labelgate.config import CurateParams
from labelgate.errors import ConfigError, LabelgateError
from labelgate.notify import on_curate_failure
from labelgate.tasks.artifacts import publish_artifacts
from labelgate.tasks.detect import detect
from labelgate.tasks.embed import embed
from labelgate.tasks.evaluate import evaluate
from labelgate.tasks.export import export
from labelgate.tasks.gate import auto_gate
from labelgate.tasks.ingest import ingest
from labelgate.tasks.quality import quality_gate
from labelgate.tasks.review import human_gate
from labelgate.tasks.run import finish_run, start_run
from labelgate.tasks.validate import validate

#: keys of the flow's result that `labelgate run --json` always prints
SUMMARY_KEYS = (
    "run_id",
    "rows_in",
    "rows_valid",
    "rows_quarantined",
    "label_issues",
    "exported_train",
    "exported_val",
    "export_files",
)


@flow(name="curate", log_prints=True, validate_parameters=True, on_failure=[on_curate_failure])
def curate(
    input_path: str,
    db_path: str = "labelgate.duckdb",
    out_dir: str = "exports",
    params: CurateParams | None = None,
) -> dict[str, Any]:
    """Curate one labelled text file into fine-tuning files; return the run's metrics.

    Args:
        input_path: CSV, TSV, JSONL, chat JSONL or Parquet file.
        db_path: DuckDB file holding every intermediate artifact (created if absent).
        out_dir: folder under which ``<run_id>/train.jsonl``, ``val.jsonl`` and ``manifest.json`` are written.
        params: every other setting (see :class:`labelgate.config.CurateParams`).
    """
    params = params or CurateParams()
    if not Path(input_path).exists():
        raise ConfigError(f"input file {input_path!r} does not exist")
    run_id = start_run(db_path, input_path, params, flow_run_id=_flow_run_id())
    started = time.perf_counter()
    metrics: dict[str, Any] = {"run_id": run_id, "gate": params.gate}
    try:
        metrics.update(ingest(db_path, run_id, input_path, params))
        metrics.update(validate(db_path, run_id, params))
        metrics.update(embed(db_path, run_id, params))
        metrics.update(detect(db_path, run_id, params))
        metrics.update(quality_gate(db_path, run_id, params))  # raises QualityGateError: no export
        if params.gate == "auto":
            metrics["decisions"] = auto_gate(db_path, run_id, params)
        elif params.gate == "human":
            metrics.update(human_gate(db_path, run_id, params))
        metrics.update(export(db_path, run_id, out_dir, params, apply=params.gate != "none"))
        if params.test_path:
            metrics["evaluation"] = evaluate(db_path, run_id, params)
    except Exception as err:
        message = str(err) if isinstance(err, LabelgateError) else f"internal error: {type(err).__name__}: {err}"
        finish_run(db_path, run_id, "failed", message, {"seconds": round(time.perf_counter() - started, 3)})
        raise
    metrics = finish_run(
        db_path, run_id, "completed", None, {**metrics, "seconds": round(time.perf_counter() - started, 3)}
    )
    metrics["run_id"] = run_id
    publish_artifacts(db_path, run_id, metrics)
    print(
        f"run {run_id}: {metrics['rows_in']} rows in, {metrics['label_issues']} label issues, "
        f"exported {metrics['exported_train']} train / {metrics['exported_val']} val to {metrics['export_dir']}"
    )
    return metrics


def _flow_run_id() -> str | None:
    try:
        rid = flow_run.id
    except Exception:  # pragma: no cover - outside a flow run
        return None
    return str(rid) if rid else None
