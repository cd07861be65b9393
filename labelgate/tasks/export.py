"""Export task: apply the latest decisions, split, write the fine-tuning files and their manifest."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from prefect import task

import labelgate
from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.export import apply_decisions, plan_export, sha256_bytes
from labelgate.errors import ExportError
from labelgate.fileio import atomic_write_bytes
from labelgate.tasks._common import TASK_OPTIONS


def export_run(
    db_path: str, run_id: str, out_dir: str, params: CurateParams, *, fmt: str = "openai-chat", apply: bool = True
) -> dict[str, Any]:
    """Write ``out_dir/<run_id>/{train,val}.jsonl`` and ``manifest.json``; record them in ``exports``.

    Args:
        apply: apply the run's decisions (False exports the valid rows as given: ``--gate none``).

    Files are written atomically. A folder holding another run's manifest is never overwritten.
    """
    with store.connect(db_path) as con:
        run = store.run_record(con, run_id)
        rows = store.valid_rows(con, run_id)
        decisions = store.latest_decisions(con, run_id) if apply else None
    cleaned = apply_decisions(rows, decisions)
    plan = plan_export(
        cleaned,
        fmt=fmt,
        val_fraction=params.val_fraction,
        seed=params.seed,
        system_prompt=params.system_prompt,
        task_description=params.task_description,
    )
    folder = Path(out_dir) / run_id
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        try:
            other = json.loads(manifest_path.read_text()).get("run_id")
        except ValueError:
            other = "?"
        if other != run_id:
            raise ExportError(f"{str(folder)!r} holds the export of run {other!r}; choose another --out")
    files = []
    for name, (data, lines) in plan.files.items():
        path = atomic_write_bytes(folder / name, data)
        files.append(
            {
                "name": name,
                "path": str(path.resolve()),
                "sha256": sha256_bytes(data),
                "lines": lines,
                "format": fmt,
                "split": name.split(".")[0],
            }
        )
    metrics = run["metrics_json"]
    manifest = {
        "labelgate_version": labelgate.__version__,
        "run_id": run_id,
        "dataset": run["dataset"],
        "dataset_version": run["dataset_version"],
        "input_path": run["input_path"],
        "input_sha256": run["input_sha256"],
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "format": fmt,
        "system_prompt": plan.system_prompt,
        "counts": {
            "rows_in": metrics.get("rows_in"),
            "rows_valid": metrics.get("rows_valid"),
            "rows_quarantined": metrics.get("rows_quarantined"),
            "label_issues": metrics.get("label_issues"),
            **plan.counts,
        },
        "decisions": metrics.get("decisions", {}),
        "gate": metrics.get("gate"),
        "thresholds": {
            "relabel_threshold": params.relabel_threshold,
            "exclude_threshold": params.exclude_threshold,
        },
        "split": {"val_fraction": params.val_fraction, "seed": params.seed},
        "model": {
            "embedding": metrics.get("embedding_model"),
            "detector": metrics.get("detector"),
            "n_folds": params.n_folds,
        },
        "files": [{k: f[k] for k in ("name", "sha256", "lines")} for f in files],
    }
    atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
    result = {
        **plan.counts,
        "export_dir": str(folder.resolve()),
        "manifest": str(manifest_path.resolve()),
        "export_files": [f["path"] for f in files],
    }
    with store.connect(db_path) as con, store.transaction(con):
        con.execute("DELETE FROM exports WHERE run_id = ? AND format = ?", [run_id, fmt])
        for f in files:
            con.execute(
                "INSERT INTO exports (run_id, format, split, path, sha256, lines) VALUES (?, ?, ?, ?, ?, ?)",
                [run_id, fmt, f["split"], f["path"], f["sha256"], f["lines"]],
            )
        store.merge_metrics(con, run_id, result)
    return result


@task(name="export", **TASK_OPTIONS)
def export(db_path: str, run_id: str, out_dir: str, params: CurateParams, apply: bool = True) -> dict[str, Any]:
    """Prefect task around :func:`export_run`."""
    return export_run(db_path, run_id, out_dir, params, apply=apply)
