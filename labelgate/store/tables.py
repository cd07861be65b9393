"""Writes by table name (checked against the schema's tables, never interpolated from user data)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from labelgate.store.schema import _TABLES


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame | pa.Table) -> int:
    """Insert ``frame`` into ``table`` by column name; return the number of rows inserted.

    ``table`` must be one of the schema's tables (it is checked, never interpolated from user data).
    """
    if table not in _TABLES:
        raise ValueError(f"unknown table {table!r}")
    n = frame.num_rows if isinstance(frame, pa.Table) else len(frame)
    if n == 0:
        return 0
    columns = list(frame.column_names if isinstance(frame, pa.Table) else frame.columns)
    name = f"_lg_insert_{table}"
    con.register(name, frame)
    try:
        cols = ", ".join(f'"{c}"' for c in columns)
        con.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM "{name}"')
    finally:
        con.unregister(name)
    return n


def replace_run_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    run_id: str,
    frame: pd.DataFrame | pa.Table | None = None,
    *,
    match: Mapping[str, Any] | None = None,
) -> int:
    """Delete ``run_id``'s rows of ``table`` (only those whose columns equal ``match``, when given) and insert
    ``frame`` (nothing when None); return the number of rows inserted.

    This is how a stage that runs again inside the same run replaces its own output, and only it. It runs in
    the caller's transaction (:func:`transaction`), so the replacement is atomic with what goes with it.

    Args:
        table: one of the schema's tables (checked, never interpolated from user data).
        match: column -> value the deleted rows must also have, e.g. ``{"stage": "validate"}`` (quarantine of
            one stage) or ``{"source": "policy"}`` (the policy's decisions).
    """
    if table not in _TABLES:
        raise ValueError(f"unknown table {table!r}")
    match = dict(match or {})
    for column in match:
        if not column.isidentifier():
            raise ValueError(f"bad column name {column!r}")
    narrowed = "".join(f' AND "{c}" = ?' for c in match)
    con.execute(f'DELETE FROM "{table}" WHERE run_id = ?{narrowed}', [run_id, *match.values()])
    return 0 if frame is None else insert_frame(con, table, frame)
