"""Transactions and the small query helpers every store module builds on (no schema knowledge)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import duckdb
import pandas as pd


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: commit on success, roll back on any exception."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")


def query_df(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """Run a parameterised query and return a DataFrame."""
    return con.execute(sql, params or []).df()


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """Run a parameterised query and return the first column of the first row (None when empty)."""
    rows = con.execute(sql, params or []).fetchall()  # fetch to the end: an open result blocks the connection
    return rows[0][0] if rows else None


def has_table(con: duckdb.DuckDBPyConnection, *, name: str) -> bool:
    """True when the database has a table ``name`` (an old database opened read-only may lack newer ones)."""
    return bool(scalar(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]))
