"""The ingested ``rows``, their ``quarantine`` and the ``validations`` of a run."""

from __future__ import annotations

import duckdb
import pandas as pd

from labelgate.store.base import query_df, scalar


def rows_by_id(con: duckdb.DuckDBPyConnection, run_id: str, row_ids: list[str]) -> pd.DataFrame:
    """The valid rows of ``run_id`` among ``row_ids`` (ids not among them are absent).

    Columns: row_id, text, label (the given label), source_line.
    """
    return query_df(
        con,
        """SELECT row_id, text, label, source_line FROM valid_rows
           WHERE run_id = ? AND row_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY row_id""",
        [run_id, list(dict.fromkeys(str(i) for i in row_ids))],
    )


def valid_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The rows of ``run_id`` that no stage quarantined, in input order.

    Columns: seq, row_id, text, label, text_sha256, source_line.
    """
    return query_df(
        con,
        """SELECT seq, row_id, text, label, text_sha256, source_line FROM valid_rows
           WHERE run_id = ? ORDER BY seq""",
        [run_id],
    )


def count_valid_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """How many valid rows ``run_id`` has."""
    return int(scalar(con, "SELECT count(*) FROM valid_rows WHERE run_id = ?", [run_id]) or 0)


def count_rows(con: duckdb.DuckDBPyConnection, *, run_id: str) -> int:
    """How many records ingest stored for ``run_id`` (valid or quarantined)."""
    return scalar(con, "SELECT count(*) FROM rows WHERE run_id = ?", [run_id])


def count_quarantined(con: duckdb.DuckDBPyConnection, *, run_id: str) -> int:
    """How many records of ``run_id`` a stage quarantined (ingest and validate)."""
    return scalar(con, "SELECT count(*) FROM quarantine WHERE run_id = ?", [run_id])


def save_validation(con: duckdb.DuckDBPyConnection, *, run_id: str, success: bool, result_json: str) -> None:
    """Replace the Great Expectations result of ``run_id`` (``result_json``: JSON text) and its success flag."""
    con.execute("DELETE FROM validations WHERE run_id = ?", [run_id])
    con.execute("INSERT INTO validations VALUES (?, ?, ?)", [run_id, success, result_json])


def given_labels(con: duckdb.DuckDBPyConnection, *, run_id: str) -> list[str]:
    """The distinct given labels of the valid rows of ``run_id``, sorted."""
    rows = con.execute(
        "SELECT DISTINCT label FROM valid_rows WHERE run_id = ? AND label IS NOT NULL ORDER BY label", [run_id]
    ).fetchall()
    return [str(r[0]) for r in rows]


def class_counts(con: duckdb.DuckDBPyConnection, *, run_id: str) -> dict[str, int]:
    """Given label -> number of valid rows of ``run_id``, sorted by label."""
    rows = con.execute(
        "SELECT label, count(*) FROM valid_rows WHERE run_id = ? AND label IS NOT NULL GROUP BY label ORDER BY label",
        [run_id],
    ).fetchall()
    return {str(label): int(n) for label, n in rows}


def counts_after_decisions(con: duckdb.DuckDBPyConnection, *, run_id: str) -> dict[str, int]:
    """Label -> valid rows of ``run_id`` once the latest decisions apply (relabelled, excluded rows dropped)."""
    rows = con.execute(
        """WITH d AS (
               SELECT row_id, action, label FROM decisions WHERE run_id = ?
               QUALIFY row_number() OVER (PARTITION BY row_id ORDER BY decision_id DESC) = 1)
           SELECT coalesce(CASE WHEN d.action = 'relabel' THEN d.label END, r.label) AS lab, count(*)
           FROM valid_rows r LEFT JOIN d ON d.row_id = r.row_id
           WHERE r.run_id = ? AND coalesce(d.action, 'keep') <> 'exclude' AND r.label IS NOT NULL
           GROUP BY lab ORDER BY lab""",
        [run_id, run_id],
    ).fetchall()
    return {str(label): int(n) for label, n in rows}


def quarantine_kinds(con: duckdb.DuckDBPyConnection, *, run_id: str) -> list[tuple[str, int]]:
    """``(stage: reason kind, rows)`` of ``run_id``'s quarantine, most frequent first (the kind is the reason up to
    its first quote)."""
    return con.execute(
        "SELECT stage || ': ' || split_part(reason, '''', 1) AS kind, count(*) AS n FROM quarantine "
        "WHERE run_id = ? GROUP BY kind ORDER BY n DESC, kind",
        [run_id],
    ).fetchall()
