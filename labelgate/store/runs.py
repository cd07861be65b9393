"""The ``runs`` table: opening and closing a run, its record and metrics, the run history."""

from __future__ import annotations

import json
import socket
from typing import Any

import duckdb
import pandas as pd

from labelgate.errors import RunNotFoundError
from labelgate.store.base import has_table, query_df, scalar
from labelgate.store.connection import _pid_alive


def resolve_run(con: duckdb.DuckDBPyConnection, run: str = "latest") -> str:
    """Return the run id for ``run`` ('latest', a full id, or a unique id prefix).

    Raises:
        RunNotFoundError: no run matches, or a prefix matches several.
    """
    if run == "latest":
        rid = scalar(con, "SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1")
        if rid is None:
            raise RunNotFoundError("the database holds no run yet; start one with `labelgate run`")
        return str(rid)
    matches = [r[0] for r in con.execute("SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [run]).fetchall()]
    if run in matches:
        return run
    if not matches:
        raise RunNotFoundError(f"no run {run!r} in the database; `labelgate runs` lists them")
    if len(matches) > 1:
        raise RunNotFoundError(f"run prefix {run!r} matches {len(matches)} runs: {', '.join(sorted(matches)[:5])}")
    return str(matches[0])


def run_record(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    """Return the ``runs`` row of ``run_id`` as a dict with parsed JSON columns."""
    df = query_df(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])
    if df.empty:
        raise RunNotFoundError(f"no run {run_id!r} in the database")
    rec = df.iloc[0].to_dict()
    for key in ("params_json", "metrics_json"):
        value = rec.get(key)
        rec[key] = json.loads(value) if isinstance(value, str) else (value or {})
    return rec


def update_run(con: duckdb.DuckDBPyConnection, run_id: str, **fields: Any) -> None:
    """Set columns of the ``runs`` row; dict values of ``*_json`` columns are serialised."""
    allowed = {
        "dataset",
        "dataset_version",
        "input_sha256",
        "input_format",
        "status",
        "message",
        "finished_at",
        "metrics_json",
        "prefect_flow_run_id",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"cannot update runs columns {sorted(unknown)}")
    if not fields:
        return
    values = [json.dumps(v, sort_keys=True) if k.endswith("_json") else v for k, v in fields.items()]
    assignments = ", ".join(f"{k} = ?" for k in fields)
    con.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", [*values, run_id])


def mark_crashed_runs(con: duckdb.DuckDBPyConnection, *, except_run: str | None = None) -> list[str]:
    """Mark ``crashed`` every run still ``running`` whose process on this host is gone; return their ids.

    A run whose process was killed (``kill -9``, out of memory, a power cut) never reaches finish-run and
    would stay ``running`` for ever. The start of a later run calls this: runs started on another host, by a
    process that is still alive, or before the pid was recorded (schema < 3) are left alone. A pid reused by
    an unrelated process keeps its old run ``running`` (harmless: nothing waits on that status).
    """
    host = socket.gethostname()
    found = con.execute(
        "SELECT run_id, pid FROM runs WHERE status = 'running' AND host = ? AND pid IS NOT NULL ORDER BY run_id",
        [host],
    ).fetchall()
    crashed = []
    for run_id, pid in found:
        if run_id == except_run or _pid_alive(int(pid)):
            continue
        con.execute(
            "UPDATE runs SET status = 'crashed', finished_at = current_timestamp, message = ? "
            "WHERE run_id = ? AND status = 'running'",
            [f"process {pid} on {host} ended before the run finished (killed?); found by a later run", run_id],
        )
        crashed.append(str(run_id))
    return crashed


def merge_metrics(con: duckdb.DuckDBPyConnection, run_id: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """Merge ``metrics`` into the run's ``metrics_json`` and return the merged dict."""
    current = scalar(con, "SELECT metrics_json FROM runs WHERE run_id = ?", [run_id])
    merged = json.loads(current) if current else {}
    merged.update(metrics)
    update_run(con, run_id, metrics_json=merged)
    return merged


def run_dataset(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    """The dataset name of ``run_id``.

    Raises:
        RunNotFoundError: no such run.
    """
    found = scalar(con, "SELECT dataset FROM runs WHERE run_id = ?", [run_id])
    if found is None:
        raise RunNotFoundError(f"no run {run_id!r} in the database")
    return str(found)


def insert_run(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    dataset: str,
    input_path: str,
    params_json: str,
    flow_run_id: str | None,
    labelgate_version: str,
    pid: int,
    host: str,
) -> None:
    """Insert the ``runs`` row of a new run with status ``running``, started now.

    Args:
        input_path: the resolved input path (a file, folder or glob).
        params_json: the run's parameters as JSON text.
        flow_run_id: the Prefect flow run's id (None outside a flow run).
        pid: the process running it; ``host`` its host name (:func:`mark_crashed_runs` reads both).
    """
    con.execute(
        """INSERT INTO runs (run_id, dataset, input_path, params_json, status, started_at,
                             prefect_flow_run_id, labelgate_version, pid, host)
           VALUES (?, ?, ?, ?, 'running', current_timestamp, ?, ?, ?, ?)""",
        [run_id, dataset, input_path, params_json, flow_run_id, labelgate_version, pid, host],
    )


def close_run(con: duckdb.DuckDBPyConnection, *, run_id: str, status: str, message: str | None) -> None:
    """Set the run's final ``status`` (completed | failed) and ``message``; ``finished_at`` becomes now."""
    con.execute(
        "UPDATE runs SET status = ?, message = ?, finished_at = current_timestamp WHERE run_id = ?",
        [status, message, run_id],
    )


def run_status(con: duckdb.DuckDBPyConnection, *, run_id: str) -> str | None:
    """The ``runs.status`` of ``run_id`` (running, awaiting_review, completed, failed, crashed); None when absent."""
    found = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchall()
    return found[0][0] if found else None


def run_of_flow_run(con: duckdb.DuckDBPyConnection, *, flow_run_id: str) -> str | None:
    """The newest run id started by the Prefect flow run ``flow_run_id`` (None when there is none)."""
    found = con.execute(
        "SELECT run_id FROM runs WHERE prefect_flow_run_id = ? ORDER BY started_at DESC LIMIT 1", [flow_run_id]
    ).fetchall()
    return found[0][0] if found else None


def stored_metrics(con: duckdb.DuckDBPyConnection, *, run_id: str) -> Any:
    """The ``metrics_json`` cell of ``run_id`` as stored (JSON text, or None when the run or its metrics are absent)."""
    return scalar(con, "SELECT metrics_json FROM runs WHERE run_id = ?", [run_id])


def ended_runs(con: duckdb.DuckDBPyConnection, *, run_ids: list[str]) -> set[str]:
    """Those of ``run_ids`` this database knows as no longer running (completed, failed, crashed, ...)."""
    return {
        str(r)
        for (r,) in con.execute(
            "SELECT run_id FROM runs WHERE status <> 'running' AND list_contains(?, run_id)", [list(run_ids)]
        ).fetchall()
    }


def runs_table(con: duckdb.DuckDBPyConnection, *, limit: int | None = None) -> pd.DataFrame:
    """Every run (the newest ``limit`` when given), newest first.

    Columns: run_id, dataset, dataset_version, status, started_at, finished_at, metrics_json (JSON text), message.
    """
    return query_df(
        con,
        "SELECT run_id, dataset, dataset_version, status, started_at, finished_at, metrics_json, message "
        "FROM runs ORDER BY started_at DESC, run_id DESC" + (" LIMIT ?" if limit else ""),
        [limit] if limit else [],
    )


def run_history_rows(
    con: duckdb.DuckDBPyConnection, *, dataset: str | None = None, limit: int | None = None
) -> list[tuple[Any, ...]]:
    """Runs (of ``dataset`` when given; the newest ``limit`` when given), newest first, with their quality verdict.

    Each tuple: run_id, dataset, dataset_version, status, started_at, finished_at, duration_s, metrics_json,
    message, prefect_flow_run_id, params_json, enforced, passed, q_message, reasons, checks_json,
    baseline_run_id, baseline_version (the quality columns None when the run has no verdict).
    """
    where = "WHERE r.dataset = ?" if dataset else ""
    params: list[object] = [dataset] if dataset else []
    if limit:
        params.append(int(limit))
    # a database written before the quality table (schema < 4) opened read-only has none: no verdicts
    quality = (
        "quality"
        if has_table(con, name="quality")
        else "(SELECT NULL::VARCHAR AS run_id, NULL::BOOLEAN AS enforced, NULL::BOOLEAN AS passed, "
        "NULL::VARCHAR AS message, NULL::JSON AS reasons, NULL::JSON AS checks_json, "
        "NULL::VARCHAR AS baseline_run_id, NULL::VARCHAR AS baseline_version WHERE false)"
    )
    return con.execute(
        f"""SELECT r.run_id, r.dataset, r.dataset_version, r.status, r.started_at, r.finished_at,
                   date_diff('millisecond', r.started_at, r.finished_at) / 1000.0 AS duration_s,
                   r.metrics_json, r.message, r.prefect_flow_run_id, r.params_json,
                   q.enforced, q.passed, q.message AS q_message, q.reasons, q.checks_json,
                   q.baseline_run_id, q.baseline_version
            FROM runs r LEFT JOIN {quality} q ON q.run_id = r.run_id {where}
            ORDER BY r.started_at DESC, r.run_id DESC {"LIMIT ?" if limit else ""}""",
        params,
    ).fetchall()


def datasets(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Dataset names, the one with the newest run first."""
    rows = con.execute("SELECT dataset FROM runs GROUP BY dataset ORDER BY max(started_at) DESC, dataset").fetchall()
    return [str(r[0]) for r in rows]


def previous_version(con: duckdb.DuckDBPyConnection, *, run_id: str) -> dict | None:
    """The previous completed version of ``run_id``'s dataset: ``{"run_id", "dataset_version"}`` or None.

    That is the newest run of the same dataset that completed, started before ``run_id`` and holds other
    content (another ``dataset_version``). A run blocked by the quality gate (failed) never becomes one.
    """
    rows = con.execute(
        """SELECT p.run_id, p.dataset_version FROM runs r JOIN runs p
               ON p.dataset = r.dataset AND p.run_id <> r.run_id AND p.status = 'completed'
              AND p.started_at <= r.started_at AND p.dataset_version IS DISTINCT FROM r.dataset_version
           WHERE r.run_id = ? ORDER BY p.started_at DESC, p.run_id DESC LIMIT 1""",
        [run_id],
    ).fetchall()
    return {"run_id": rows[0][0], "dataset_version": rows[0][1]} if rows else None
