"""Export task: a thin Prefect wrapper over :func:`labelgate.services.export.export_run` (the files, the manifest,
the immutable versioned folders are described there)."""

from __future__ import annotations

from prefect import task

from labelgate.config import CurateParams
from labelgate.core.metrics import ExportMetrics
from labelgate.services.export import export_run
from labelgate.tasks._common import TASK_OPTIONS


@task(name="export", **TASK_OPTIONS)
def export(db_path: str, run_id: str, out_dir: str, params: CurateParams, apply: bool = True) -> ExportMetrics:
    """Prefect task around :func:`export_run` (formats from ``params.export_formats``)."""
    return export_run(db_path, run_id, out_dir, params, apply=apply).to_metrics()
