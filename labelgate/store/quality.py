"""The quality gate's verdict per run (``quality``)."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from labelgate.store.base import has_table


def save_quality(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    enforced: bool,
    passed: bool,
    message: str,
    reasons: list[str],
    checks: list[dict[str, Any]],
    baseline_run_id: str | None,
    baseline_version: str | None,
) -> None:
    """Replace the quality gate's verdict of ``run_id`` (``reasons`` and ``checks`` are stored as JSON)."""
    con.execute("DELETE FROM quality WHERE run_id = ?", [run_id])
    con.execute(
        """INSERT INTO quality (run_id, enforced, passed, message, reasons, checks_json, baseline_run_id,
                                baseline_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            run_id,
            enforced,
            passed,
            message,
            json.dumps(reasons),
            json.dumps(checks),
            baseline_run_id,
            baseline_version,
        ],
    )


def quality_row(con: duckdb.DuckDBPyConnection, *, run_id: str) -> tuple[Any, ...] | None:
    """The stored verdict of ``run_id``: (enforced, passed, message, reasons, checks_json, baseline_run_id,
    baseline_version, created_at), JSON columns as text; None when the run never reached the gate or the
    database has no ``quality`` table."""
    if not has_table(con, name="quality"):
        return None
    rows = con.execute(
        """SELECT enforced, passed, message, reasons, checks_json, baseline_run_id, baseline_version, created_at
           FROM quality WHERE run_id = ?""",
        [run_id],
    ).fetchall()
    return rows[0] if rows else None
