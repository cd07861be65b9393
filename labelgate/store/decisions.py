"""The append-only ``decisions`` log of a run (policy, human, memory); the latest per row wins."""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from labelgate.store.base import query_df, scalar


def latest_decisions(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The latest decision per row of ``run_id``.

    Columns: row_id, action, label, source, reviewer, reason, decided_at, undoes (the decision id an undo entry
    undoes, else null), no_decision (True for an undo entry that restores "no decision": the row counts as undecided).
    """
    return query_df(
        con,
        """SELECT row_id, action, label, source, reviewer, reason, decided_at, undoes, coalesce(no_decision, false)
                  AS no_decision FROM decisions
           WHERE run_id = ?
           QUALIFY row_number() OVER (PARTITION BY row_id ORDER BY decision_id DESC) = 1
           ORDER BY row_id""",
        [run_id],
    )


def insert_decision(
    con: duckdb.DuckDBPyConnection, values: list[Any], *, undoes: int | None = None, no_decision: bool = False
) -> int:
    """Append one decision ``[run_id, row_id, action, label, source, reviewer, reason]``; return its id.

    An undo entry names the decision it undoes (``undoes``) and, when it restores "no decision", says so
    (``no_decision``: the row reads as undecided; the entry keeps the given label so the export is unchanged).
    """
    rows = con.execute(
        "INSERT INTO decisions (run_id, row_id, action, label, source, reviewer, reason, undoes, no_decision) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING decision_id",
        [*values, undoes, bool(no_decision)],
    ).fetchall()
    return int(rows[0][0])


def held_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> set[str]:
    """Rows of ``run_id`` whose latest decision a person made (source human, not an undo back to "no decision")
    or the curation memory carried (source memory): the policy leaves them alone."""
    rows = con.execute(
        """SELECT row_id FROM decisions WHERE run_id = ?
           QUALIFY row_number() OVER (PARTITION BY row_id ORDER BY decision_id DESC) = 1
               AND source IN ('human', 'memory')
               AND NOT coalesce(no_decision, false)""",
        [run_id],
    ).fetchall()
    return {str(r[0]) for r in rows}


def decision_log(con: duckdb.DuckDBPyConnection, *, run_id: str) -> pd.DataFrame:
    """Every decision of ``run_id`` in the order made (the append-only log, undo entries included).

    Columns: decision_id, row_id, action, label, source, reviewer, reason, decided_at, undoes, no_decision (see
    :func:`latest_decisions`).
    """
    return query_df(
        con,
        """SELECT decision_id, row_id, action, label, source, reviewer, reason, decided_at, undoes,
                  coalesce(no_decision, false) AS no_decision
           FROM decisions WHERE run_id = ? ORDER BY decision_id""",
        [run_id],
    )


def count_decisions(con: duckdb.DuckDBPyConnection, *, run_id: str) -> int:
    """How many decisions (of any source, undo entries included) the log holds for ``run_id``."""
    return scalar(con, "SELECT count(*) FROM decisions WHERE run_id = ?", [run_id])
