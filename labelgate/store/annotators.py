"""Several annotators per item (migration 8): ``annotations``, ``consensus`` and ``annotator_quality``."""

from __future__ import annotations

import duckdb
import pandas as pd

from labelgate.store.base import query_df


def usable_annotations(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The usable labels of ``run_id`` (``reason IS NULL``): columns item_id, annotator, label, in input order."""
    return query_df(
        con,
        """SELECT item_id, annotator, label FROM annotations
           WHERE run_id = ? AND reason IS NULL ORDER BY seq""",
        [run_id],
    )


def set_item_labels(con: duckdb.DuckDBPyConnection, run_id: str, labels: pd.DataFrame) -> None:
    """Set ``rows.label`` of ``run_id`` to ``labels.label`` by ``labels.row_id`` (the consensus replaces the vote)."""
    con.register("_lg_item_labels", labels[["row_id", "label"]])
    try:
        con.execute(
            """UPDATE rows SET label = l.label FROM _lg_item_labels l
               WHERE rows.run_id = ? AND rows.row_id = l.row_id""",
            [run_id],
        )
    finally:
        con.unregister("_lg_item_labels")


def annotator_table(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The annotators of ``run_id``, best first: annotator, quality, quality_sd, n_labels, agreement."""
    return query_df(
        con,
        """SELECT annotator, quality, quality_sd, n_labels, agreement FROM annotator_quality
           WHERE run_id = ? ORDER BY quality DESC, annotator""",
        [run_id],
    )


def relabel_queue(con: duckdb.DuckDBPyConnection, run_id: str, limit: int | None = None) -> pd.DataFrame:
    """Items of ``run_id`` where one more label would help most (weakest consensus first, then fewest labels).

    Columns: item_id, consensus_label, consensus_quality, n_labels, agreement, labels_json (the same order as
    :func:`labelgate.core.annotators.relabel_queue`).
    """
    sql = """SELECT item_id, consensus_label, consensus_quality, n_labels, agreement, labels_json FROM consensus
             WHERE run_id = ? ORDER BY consensus_quality, n_labels, item_id"""
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return query_df(con, sql, [run_id])


def label_pairs(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Every usable label of ``run_id`` beside its item's consensus: columns annotator, label, consensus_label
    (items without a consensus row are left out)."""
    return query_df(
        con,
        """SELECT a.annotator, a.label, c.consensus_label FROM annotations a
           JOIN consensus c ON c.run_id = a.run_id AND c.item_id = a.item_id
           WHERE a.run_id = ? AND a.reason IS NULL ORDER BY a.seq""",
        [run_id],
    )
