"""The monitoring dashboard's figures as plain data: what ``GET /dashboard`` draws and ``GET /api/dashboard`` returns.

Reads the store (through :mod:`labelgate.services.reports` and :mod:`labelgate.store`) over a read-only
connection; the web layer (:mod:`labelgate.web.dashboard`) renders it, :mod:`labelgate.web.charts` draws its
charts.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb

from labelgate import store
from labelgate.core.metrics import EmbedMetrics, RunMetrics
from labelgate.services import reports
from labelgate.services.notify import flow_run_url

#: runs shown by default (history table and rate chart)
DEFAULT_LIMIT = 50
#: most runs one request may ask for
MAX_LIMIT = 500
#: seconds a request waits for a database another process writes
DB_WAIT_S = 5.0


def dashboard_data(
    db_path: str,
    *,
    dataset: str | None = None,
    run: str | None = None,
    limit: int = DEFAULT_LIMIT,
    wait_s: float = DB_WAIT_S,
) -> dict[str, Any]:
    """Every figure of the dashboard as plain data (the page renders it; ``/api/dashboard`` returns it).

    Args:
        db_path: the DuckDB file (opened read-only, waiting up to ``wait_s`` seconds while another process writes).
        dataset: only this dataset's runs (None: every dataset).
        run: the run whose details are ``selected`` (a run id, unique prefix or ``latest``; None: the newest run
            shown).
        limit: most runs in ``runs``, clamped to 1..:data:`MAX_LIMIT`.

    Returns:
        ``datasets`` (names), ``dataset`` (the filter or None), ``runs`` (:func:`labelgate.services.reports.run_history`
        items without their full metrics, plus ``flow_run_url``), ``selected`` (None when there is no run, else
        run_id, dataset, dataset_version, status, outcome, message, started_at, quality, baseline_run_id,
        class_distribution {label: {previous, before, after}}, has_decisions, noise_matrix {classes, matrix},
        quarantine_reasons {reason: rows}, rows_in, rows_quarantined, label_issues, label_issue_rate,
        texts_embedded, texts_cached, flow_run_url, evaluations: the latest before/after evaluation per trainer,
        see :func:`_evaluations`, annotators: :func:`labelgate.services.reports.annotator_panel`), ``totals``
        (runs, exported, blocked, failed).

    Raises:
        RunNotFoundError: ``run`` names no run (or is ambiguous), or ``db_path`` does not exist.
        DatabaseBusyError: another process held the file for ``wait_s`` seconds.
    """
    limit = max(1, min(int(limit), MAX_LIMIT))
    with store.connect(db_path, read_only=True, wait_s=wait_s) as con:
        names = store.datasets(con)
        history = reports.run_history(con, dataset=dataset or None, limit=limit)
        run_id: str | None = None
        if run:
            run_id = store.resolve_run(con, run)
        elif history:
            run_id = history[0]["run_id"]
        selected = _selected(con, run_id) if run_id else None
    for item in history:
        item.pop("metrics", None)
        item["flow_run_url"] = flow_run_url(item.get("prefect_flow_run_id"))
    totals = {o: sum(1 for r in history if r["outcome"] == o) for o in ("exported", "blocked", "failed")}
    totals["runs"] = len(history)
    return {"datasets": names, "dataset": dataset or None, "runs": history, "selected": selected, "totals": totals}


def _selected(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    record = store.run_record(con, run_id)
    dist = reports.class_distribution(con, run_id)
    classes, matrix = reports.noise_matrix(con, run_id)
    quality = reports.quality_record(con, run_id)
    found = reports.run_history(con, dataset=record["dataset"])
    item = next((r for r in found if r["run_id"] == run_id), None)
    baseline = store.previous_version(con, run_id=run_id)
    metrics = RunMetrics.from_json(record["metrics_json"])
    embedded = metrics.embed or EmbedMetrics()
    return {
        "run_id": run_id,
        "dataset": record["dataset"],
        "dataset_version": record.get("dataset_version"),
        "status": record["status"],
        "outcome": item["outcome"] if item else record["status"],
        "message": record.get("message"),
        "started_at": item["started_at"] if item else None,
        "quality": quality,
        "baseline_run_id": quality["baseline_run_id"] if quality else (baseline or {}).get("run_id"),
        "class_distribution": {
            str(r.label): {"previous": int(r.previous), "before": int(r.before), "after": int(r.after)}
            for r in dist.itertuples(index=False)
        },
        "has_decisions": bool(metrics.decision_counts),
        "noise_matrix": {"classes": classes, "matrix": matrix},
        "quarantine_reasons": reports.quarantine_reasons(con, run_id),
        "rows_in": metrics.rows_in,
        "rows_quarantined": metrics.rows_quarantined,
        "label_issues": metrics.label_issues,
        "label_issue_rate": metrics.detect.label_issue_rate if metrics.detect else None,
        "texts_embedded": embedded.texts_embedded,
        "texts_cached": embedded.texts_cached,
        "flow_run_url": flow_run_url(record.get("prefect_flow_run_id")),
        "evaluations": _evaluations(con, run_id),
        "annotators": reports.annotator_panel(con, run_id),
    }


def _evaluations(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """The latest evaluation of the run per trainer: trainer, model, test_path, n_test, raw/cleaned n_train,
    accuracy and macro-F1 (with ``*_delta`` = cleaned - raw), seconds (both sides; None when not measured)."""
    out = []
    for r in store.latest_evaluations(con, run_id).to_dict("records"):
        item = {k: _plain(v) for k, v in r.items()}
        for metric in ("accuracy", "macro_f1"):
            raw, cleaned = item.get(f"raw_{metric}"), item.get(f"cleaned_{metric}")
            item[f"{metric}_delta"] = None if raw is None or cleaned is None else cleaned - raw
        out.append(item)
    return out


def _plain(value: Any) -> Any:
    """A DataFrame cell as plain JSON data: numpy numbers as Python ones, NaN/NaT as None, times as ISO text."""
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return None if str(value) == "NaT" else value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
