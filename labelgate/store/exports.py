"""The ``exports`` table: every file an export wrote, by version."""

from __future__ import annotations

import duckdb


def record_export(
    con: duckdb.DuckDBPyConnection, run_id: str, version: int, files: list[tuple[str, str, str, str, int]]
) -> None:
    """Append one export's files ``(format, split, path, sha256, lines)`` as ``version`` of the run's exports;
    earlier versions' rows stay."""
    con.executemany(
        "INSERT INTO exports (run_id, format, split, path, sha256, lines, version) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [[run_id, *f[:5], version] for f in files],
    )


def export_folders(con: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    """The folder of every export of ``run_id`` recorded so far, oldest first."""
    rows = con.execute(
        """SELECT parse_dirpath(path) AS folder FROM exports WHERE run_id = ?
           GROUP BY folder ORDER BY min(created_at), folder""",
        [run_id],
    ).fetchall()
    return [str(r[0]) for r in rows]
