"""The curation memory.

A decision is remembered per dataset and row content: (text sha256, given label, occurrence), occurrence being
1 for the first valid row of a run with that text and label (in input order), 2 for the next copy, ... so an
exact duplicate's decision stays the duplicate's. The ``memory`` table is append-only: the current remembered
decision of a key is its newest entry, none when that entry's action is 'revoke'."""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from labelgate.store.base import query_df, scalar
from labelgate.store.tables import insert_frame

#: the content key of each valid row of ``$run`` (``k``), used by the memory queries below
_KEYS = """k AS (
    SELECT v.row_id, v.seq, v.text_sha256, v.label,
           row_number() OVER (PARTITION BY v.text_sha256, v.label ORDER BY v.seq) AS occurrence
    FROM valid_rows v WHERE v.run_id = $run)"""


def content_keys(con: duckdb.DuckDBPyConnection, run_id: str, row_ids: list[str] | None = None) -> pd.DataFrame:
    """The memory key of the valid rows of ``run_id`` (all, or those of ``row_ids``), in input order.

    Columns: row_id, text_sha256, label (the given label), occurrence, text.
    """
    only = "WHERE list_contains($ids, k.row_id)" if row_ids is not None else ""
    params: dict[str, Any] = {"run": run_id}
    if row_ids is not None:
        params["ids"] = [str(r) for r in row_ids]
    return con.sql(
        f"""WITH {_KEYS}
            SELECT k.row_id, k.text_sha256, k.label, k.occurrence::INTEGER AS occurrence, v.text
            FROM k JOIN valid_rows v ON v.run_id = $run AND v.row_id = k.row_id {only} ORDER BY k.seq""",
        params=params,
    ).df()


def remember(con: duckdb.DuckDBPyConnection, entries: list[dict[str, Any]]) -> int:
    """Append ``entries`` to the memory log (the caller's transaction); return how many.

    Each entry: dataset, text_sha256, given_label, occurrence, action (keep|relabel|exclude|revoke), label,
    source (human|policy), reviewer, reason, run_id, row_id, decision_id (the ``decisions`` row it mirrors).
    """
    columns = [
        "dataset",
        "text_sha256",
        "given_label",
        "occurrence",
        "action",
        "label",
        "source",
        "reviewer",
        "reason",
        "run_id",
        "row_id",
        "decision_id",
    ]
    if not entries:
        return 0
    con.executemany(
        f"INSERT INTO memory ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        [[e.get(c) for c in columns] for e in entries],
    )
    return len(entries)


def memory_for_run(con: duckdb.DuckDBPyConnection, run_id: str, *, include_policy: bool = False) -> pd.DataFrame:
    """The current remembered decision of every valid row of ``run_id`` that has one (in input order).

    Only decisions a person made are remembered for carrying, unless ``include_policy`` (then the policy's
    remembered decisions count too). Rows a person already decided in this run are left out.

    Columns: row_id, action, label, source, reviewer, reason, from_run, memory_id, created_at.
    """
    return con.sql(
        f"""WITH {_KEYS},
            cur AS (
                SELECT m.* FROM memory m
                WHERE m.dataset = (SELECT dataset FROM runs WHERE run_id = $run)
                  AND (m.action = 'revoke' OR m.source = 'human' OR ($policy AND m.source = 'policy'))
                QUALIFY row_number() OVER (
                    PARTITION BY m.text_sha256, m.given_label, m.occurrence ORDER BY m.memory_id DESC) = 1)
            SELECT k.row_id, cur.action, cur.label, cur.source, cur.reviewer, cur.reason, cur.run_id AS from_run,
                   cur.memory_id, cur.created_at
            FROM k JOIN cur ON cur.text_sha256 = k.text_sha256 AND cur.given_label = k.label
                           AND cur.occurrence = k.occurrence
            WHERE cur.action <> 'revoke'
              AND NOT EXISTS (SELECT 1 FROM decisions d
                              WHERE d.run_id = $run AND d.row_id = k.row_id AND d.source = 'human')
            ORDER BY k.seq""",
        params={"run": run_id, "policy": bool(include_policy)},
    ).df()


def replace_memory_decisions(con: duckdb.DuckDBPyConnection, run_id: str, frame: pd.DataFrame) -> int:
    """Replace the run's ``memory`` decisions by ``frame`` (columns run_id, row_id, action, label, source,
    reviewer, reason) in the caller's transaction; return how many."""
    con.execute("DELETE FROM decisions WHERE run_id = ? AND source = 'memory'", [run_id])
    return insert_frame(con, "decisions", frame)


def remember_policy_decisions(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """Append the run's latest policy decisions to the memory log (``carry_policy_decisions``); return how many."""
    before = scalar(con, "SELECT count(*) FROM memory")
    con.execute(
        f"""INSERT INTO memory (dataset, text_sha256, given_label, occurrence, action, label, source, reviewer,
                                reason, run_id, row_id, decision_id)
            WITH {_KEYS},
            d AS (SELECT * FROM decisions WHERE run_id = $run
                  QUALIFY row_number() OVER (PARTITION BY row_id ORDER BY decision_id DESC) = 1)
            SELECT r.dataset, k.text_sha256, k.label, k.occurrence, d.action, d.label, 'policy', NULL, d.reason,
                   $run, k.row_id, d.decision_id
            FROM d JOIN k ON k.row_id = d.row_id JOIN runs r ON r.run_id = $run
            WHERE d.source = 'policy'""",
        {"run": run_id},
    )
    return int(scalar(con, "SELECT count(*) FROM memory") - before)


def memory_entries(con: duckdb.DuckDBPyConnection, dataset: str, text_sha256: str, given_label: str) -> pd.DataFrame:
    """Every memory entry of one content (all occurrences), oldest first.

    Columns: memory_id, occurrence, action, label, source, reviewer, reason, run_id, row_id, decision_id, created_at.
    """
    return query_df(
        con,
        """SELECT memory_id, occurrence, action, label, source, reviewer, reason, run_id, row_id, decision_id,
                  created_at
           FROM memory WHERE dataset = ? AND text_sha256 = ? AND given_label = ? ORDER BY memory_id""",
        [dataset, text_sha256, given_label],
    )


def content_decisions(con: duckdb.DuckDBPyConnection, dataset: str, text_sha256: str, given_label: str) -> pd.DataFrame:
    """Every decision, in every run of ``dataset``, on a valid row with this text and given label, oldest first.

    Columns: decision_id, run_id, row_id, action, label, source, reviewer, reason, decided_at.
    """
    return query_df(
        con,
        """SELECT d.decision_id, d.run_id, d.row_id, d.action, d.label, d.source, d.reviewer, d.reason, d.decided_at
           FROM decisions d JOIN runs r ON r.run_id = d.run_id
           JOIN valid_rows v ON v.run_id = d.run_id AND v.row_id = d.row_id
           WHERE r.dataset = ? AND v.text_sha256 = ? AND v.label = ?
           ORDER BY d.decision_id""",
        [dataset, text_sha256, given_label],
    )


def current_memory(con: duckdb.DuckDBPyConnection, dataset: str | None = None) -> pd.DataFrame:
    """The current (not revoked) remembered decisions, per dataset and content key, newest first.

    Columns: memory_id, dataset, text_sha256, given_label, occurrence, action, label, source, reviewer, reason,
    run_id, row_id, created_at.
    """
    where = "WHERE dataset = ?" if dataset else ""
    return query_df(
        con,
        f"""SELECT * FROM (
                SELECT memory_id, dataset, text_sha256, given_label, occurrence, action, label, source, reviewer,
                       reason, run_id, row_id, created_at FROM memory {where}
                QUALIFY row_number() OVER (
                    PARTITION BY dataset, text_sha256, given_label, occurrence ORDER BY memory_id DESC) = 1)
            WHERE action <> 'revoke' ORDER BY memory_id DESC""",
        [dataset] if dataset else [],
    )


def seen_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> set[str]:
    """Row ids of ``run_id`` whose text and given label were already in an earlier completed run of its dataset."""
    rows = con.execute(
        """SELECT v.row_id FROM valid_rows v JOIN runs r ON r.run_id = v.run_id
           WHERE v.run_id = ? AND EXISTS (
               SELECT 1 FROM valid_rows p JOIN runs pr ON pr.run_id = p.run_id
               WHERE pr.dataset = r.dataset AND pr.status = 'completed' AND pr.run_id <> r.run_id
                 AND pr.started_at <= r.started_at AND p.text_sha256 = v.text_sha256 AND p.label = v.label)""",
        [run_id],
    ).fetchall()
    return {str(r[0]) for r in rows}


def memory_undo_target(con: duckdb.DuckDBPyConnection, decision_id: int) -> dict[str, Any] | None:
    """For the memory entry that mirrors decision ``decision_id``: its key and the entry before it (same key).

    Returns None when the decision was not remembered; else ``{"key": {dataset, text_sha256, given_label,
    occurrence}, "previous": the previous entry as a dict, or None}``.
    """
    found = query_df(con, "SELECT * FROM memory WHERE decision_id = ? ORDER BY memory_id DESC LIMIT 1", [decision_id])
    if found.empty:
        return None
    entry = found.iloc[0].to_dict()
    key = {k: entry[k] for k in ("dataset", "text_sha256", "given_label")}
    key["occurrence"] = int(entry["occurrence"])
    before = query_df(
        con,
        """SELECT * FROM memory WHERE dataset = ? AND text_sha256 = ? AND given_label = ? AND occurrence = ?
             AND memory_id < ? ORDER BY memory_id DESC LIMIT 1""",
        [*key.values(), int(entry["memory_id"])],
    )
    return {"key": key, "previous": None if before.empty else before.iloc[0].to_dict()}
