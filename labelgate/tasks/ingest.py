"""Ingest task: read the input file into ``rows`` and unparseable records into ``quarantine``."""

from __future__ import annotations

from typing import Any

from prefect import task

from labelgate import store
from labelgate.config import CurateParams
from labelgate.tasks._common import TASK_OPTIONS, read_input


@task(name="ingest", **TASK_OPTIONS)
def ingest(db_path: str, run_id: str, input_path: str, params: CurateParams) -> dict[str, Any]:
    """Read ``input_path``; store every record; return counts and notes."""
    result = read_input(input_path, params)
    rows = result.rows.assign(run_id=run_id)
    quarantine = result.quarantine.assign(run_id=run_id, stage="ingest")
    with store.connect(db_path) as con, store.transaction(con):
        con.execute("DELETE FROM rows WHERE run_id = ?", [run_id])
        con.execute("DELETE FROM quarantine WHERE run_id = ?", [run_id])
        store.insert_frame(con, "rows", rows)
        store.insert_frame(con, "quarantine", quarantine)
        store.update_run(
            con,
            run_id,
            input_sha256=result.input_sha256,
            input_format=result.input_format,
            dataset_version=result.dataset_version,
        )
        store.merge_metrics(
            con,
            run_id,
            {
                "rows_in": len(rows),
                "quarantined_ingest": len(quarantine),
                "id_source": result.id_source,
                "labels_normalised": result.labels_normalised,
                "notes": result.notes,
                "quarantine_reasons_ingest": result.reason_counts,
                "quarantine_reasons": result.reason_counts,
            },
        )
    return {
        "rows_in": len(rows),
        "quarantined_ingest": len(quarantine),
        "input_sha256": result.input_sha256,
        "dataset_version": result.dataset_version,
        "input_format": result.input_format,
        "id_source": result.id_source,
        "labels_normalised": result.labels_normalised,
        "notes": result.notes,
    }
