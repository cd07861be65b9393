"""The DuckDB store: one schema, created and migrated here, and short-lived connections.

DuckDB lets only one process open a database file while any connection in it
writes, so labelgate never holds a connection across a long step or a pause:
each stage opens the file, does its reads or its writes in one transaction and
closes it (:func:`connect`). A second process that finds the file locked waits
with a bounded back-off and then raises :class:`~labelgate.errors.DatabaseBusyError`.

Tables (every one keyed by ``run_id`` or by content hash; nothing is overwritten
across runs; a stage that is re-run inside the same run replaces only its own rows):

- ``runs``: one row per flow run (input, parameters, status, metrics)
- ``rows``: every ingested record verbatim, ``seq`` is its position in the input
- ``quarantine``: rows that failed a row-level check, with the reason
- ``validations``: the Great Expectations result per run
- ``embeddings``: the vector cache shared by all runs, keyed by (model, text sha256)
- ``detections``: per run, the probability model and its classes
- ``predictions``: out-of-fold predicted probabilities per row
- ``issues``: one row per (run, row, issue type) for every detector
- ``decisions``: append-only gate decisions; the latest per row wins
- ``exports``: every file written
- ``evaluations``: before/after proxy-classifier scores on a held-out test file
- ``quality``: the quality gate's verdict per run (checks, reasons, the previous version compared with)
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from labelgate.errors import ConfigError, DatabaseBusyError, LabelgateError, RunNotFoundError

SCHEMA_VERSION = 6

_MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            dataset VARCHAR NOT NULL,
            dataset_version VARCHAR,
            input_path VARCHAR NOT NULL,
            input_sha256 VARCHAR,
            input_format VARCHAR,
            params_json JSON NOT NULL,
            status VARCHAR NOT NULL,
            message VARCHAR,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            metrics_json JSON,
            prefect_flow_run_id VARCHAR,
            labelgate_version VARCHAR
        )""",
        """CREATE TABLE rows (
            run_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            row_id VARCHAR NOT NULL,
            text VARCHAR,
            label VARCHAR,
            label_raw VARCHAR,
            text_sha256 VARCHAR,
            source_line INTEGER,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE quarantine (
            run_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            row_id VARCHAR NOT NULL,
            source_line INTEGER,
            stage VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            raw_json VARCHAR,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE validations (
            run_id VARCHAR PRIMARY KEY,
            success BOOLEAN NOT NULL,
            result_json JSON NOT NULL
        )""",
        """CREATE TABLE embeddings (
            model VARCHAR NOT NULL,
            text_sha256 VARCHAR NOT NULL,
            dim INTEGER NOT NULL,
            vector FLOAT[] NOT NULL,
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (model, text_sha256)
        )""",
        """CREATE TABLE detections (
            run_id VARCHAR PRIMARY KEY,
            method VARCHAR NOT NULL,
            classes VARCHAR[] NOT NULL,
            n_folds INTEGER,
            metrics_json JSON
        )""",
        """CREATE TABLE predictions (
            run_id VARCHAR NOT NULL,
            row_id VARCHAR NOT NULL,
            probs FLOAT[] NOT NULL,
            PRIMARY KEY (run_id, row_id)
        )""",
        """CREATE TABLE issues (
            run_id VARCHAR NOT NULL,
            row_id VARCHAR NOT NULL,
            issue_type VARCHAR NOT NULL,
            score DOUBLE,
            is_issue BOOLEAN NOT NULL,
            given_label VARCHAR,
            suggested_label VARCHAR,
            suggested_prob DOUBLE,
            reason VARCHAR,
            related_row_id VARCHAR,
            PRIMARY KEY (run_id, row_id, issue_type)
        )""",
        """CREATE VIEW valid_rows AS
            SELECT r.* FROM rows r
            WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.run_id = r.run_id AND q.seq = r.seq)""",
        "CREATE SEQUENCE decision_seq START 1",
        """CREATE TABLE decisions (
            decision_id BIGINT PRIMARY KEY DEFAULT nextval('decision_seq'),
            run_id VARCHAR NOT NULL,
            row_id VARCHAR NOT NULL,
            action VARCHAR NOT NULL CHECK (action IN ('keep', 'relabel', 'exclude')),
            label VARCHAR,
            source VARCHAR NOT NULL CHECK (source IN ('policy', 'human')),
            reviewer VARCHAR,
            reason VARCHAR,
            decided_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        """CREATE TABLE exports (
            run_id VARCHAR NOT NULL,
            format VARCHAR NOT NULL,
            split VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            sha256 VARCHAR NOT NULL,
            lines INTEGER NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
    ],
    # 2: before/after evaluations (labelgate evaluate): one row per (run, test file, variant raw|cleaned)
    2: [
        """CREATE TABLE evaluations (
            run_id VARCHAR NOT NULL,
            test_sha256 VARCHAR NOT NULL,
            variant VARCHAR NOT NULL CHECK (variant IN ('raw', 'cleaned')),
            test_path VARCHAR,
            model VARCHAR NOT NULL,
            n_train INTEGER NOT NULL,
            n_test INTEGER NOT NULL,
            accuracy DOUBLE NOT NULL,
            macro_f1 DOUBLE NOT NULL,
            per_class_f1 JSON NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (run_id, test_sha256, variant)
        )""",
    ],
    # 3: the process running each run, so that a later run can mark a killed one 'crashed' (mark_crashed_runs)
    3: [
        "ALTER TABLE runs ADD COLUMN pid INTEGER",
        "ALTER TABLE runs ADD COLUMN host VARCHAR",
    ],
    # 4: the quality gate's verdict per run (labelgate.core.quality): enforced or only recorded
    4: [
        """CREATE TABLE quality (
            run_id VARCHAR PRIMARY KEY,
            enforced BOOLEAN NOT NULL,
            passed BOOLEAN NOT NULL,
            message VARCHAR NOT NULL,
            reasons JSON NOT NULL,
            checks_json JSON NOT NULL,
            baseline_run_id VARCHAR,
            baseline_version VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
    ],
    # 5: the label detector's plain model probability of its suggestion (suggested_prob became the noise-corrected
    # probability that the suggestion is the true label; the auto gate reads both)
    5: ["ALTER TABLE issues ADD COLUMN model_prob DOUBLE"],
    # 6: evaluations keyed by trainer too (the TF-IDF proxy at several strengths, a fine-tuned encoder, ...)
    6: [
        """CREATE TABLE evaluations_v6 (
            run_id VARCHAR NOT NULL,
            test_sha256 VARCHAR NOT NULL,
            trainer VARCHAR NOT NULL DEFAULT 'proxy',
            variant VARCHAR NOT NULL CHECK (variant IN ('raw', 'cleaned')),
            test_path VARCHAR,
            model VARCHAR NOT NULL,
            n_train INTEGER NOT NULL,
            n_test INTEGER NOT NULL,
            accuracy DOUBLE NOT NULL,
            macro_f1 DOUBLE NOT NULL,
            per_class_f1 JSON NOT NULL,
            seconds DOUBLE,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (run_id, test_sha256, trainer, variant)
        )""",
        """INSERT INTO evaluations_v6 (run_id, test_sha256, trainer, variant, test_path, model, n_train, n_test,
                                      accuracy, macro_f1, per_class_f1, created_at)
           SELECT run_id, test_sha256, 'proxy', variant, test_path, model, n_train, n_test, accuracy, macro_f1,
                  per_class_f1, created_at FROM evaluations""",
        "DROP TABLE evaluations",
        "ALTER TABLE evaluations_v6 RENAME TO evaluations",
    ],
}


def _is_lock_error(err: Exception) -> bool:
    text = str(err).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text or "in use" in text)


#: environment variable: seconds :func:`connect` keeps retrying a busy database file (default 60)
WAIT_ENV = "LABELGATE_DB_WAIT_S"
DEFAULT_WAIT_S = 60.0


def default_wait_s() -> float:
    """The wait of :func:`connect` when none is given: ``$LABELGATE_DB_WAIT_S`` or 60 seconds."""
    value = os.environ.get(WAIT_ENV, "").strip()
    if not value:
        return DEFAULT_WAIT_S
    try:
        return max(0.0, float(value))
    except ValueError:
        raise ConfigError(f"{WAIT_ENV} must be a number of seconds, got {value!r}") from None


@contextlib.contextmanager
def connect(
    db_path: str | Path, *, read_only: bool = False, wait_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``db_path`` briefly, migrating the schema when writable, and close it on exit.

    While the connection is open, ``<db_path>.owner.json`` names this process (pid, host, the run it works
    on: :func:`set_process_run`, its command line), so that a process kept waiting can say who holds the file.

    Args:
        db_path: path of the DuckDB file (created when absent and ``read_only`` is false).
        read_only: open without write access. The file must exist.
        wait_s: how long to keep retrying while another process holds the file (default
            :func:`default_wait_s`). After a second of waiting, a one-line notice goes to stderr when
            progress output is on (a terminal, or ``LABELGATE_PROGRESS=1``).

    Raises:
        DatabaseBusyError: the file stayed locked for ``wait_s`` seconds; the message names the holder's
            run id and PID when known.
        RunNotFoundError: ``read_only`` and the file does not exist.
    """
    path = Path(db_path)
    wait_s = default_wait_s() if wait_s is None else wait_s
    if read_only and not path.exists():
        raise RunNotFoundError(f"database {str(path)!r} does not exist; run `labelgate run` first or pass --db")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + wait_s
    delay = 0.05
    announced = False
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as err:
            if not _is_lock_error(err):
                raise LabelgateError(f"cannot open database {str(path)!r}: {err}") from err
            now = time.monotonic()
            if now >= deadline:
                raise DatabaseBusyError(
                    f"database {str(path)!r} is in use by {_lock_holder(err, path)}; waited {wait_s:.0f}s. "
                    "Wait for it to finish or use another --db."
                ) from err
            if not announced and now - started >= 1.0 and _notices_enabled():
                sys.stderr.write(
                    f"labelgate: database {str(path)!r} is in use by {_lock_holder(err, path)}; "
                    f"waiting up to {wait_s:.0f}s\n"
                )
                sys.stderr.flush()
                announced = True
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)
        except duckdb.Error as err:
            raise LabelgateError(f"cannot open database {str(path)!r}: {err}") from err
    _write_owner(path, read_only=read_only)
    try:
        if not read_only:
            migrate(con)
        yield con
    finally:
        con.close()
        _remove_owner(path)


# --- who holds the file ---------------------------------------------------------------------------

#: the run this process works on (set by the start-run task), named in other processes' busy messages
_process_run: dict[str, str | None] = {"run_id": None}


def set_process_run(run_id: str | None) -> None:
    """Record the run this process works on (``None``: none); :func:`connect` writes it to the owner file."""
    _process_run["run_id"] = run_id


def owner_path(db_path: str | Path) -> Path:
    """``<db_path>.owner.json``: who holds the database file while a connection is open."""
    path = Path(db_path)
    return path.with_name(path.name + ".owner.json")


def _command() -> str:
    argv = list(sys.argv) or ["python"]
    first = "labelgate" if Path(argv[0]).name in ("labelgate", "cli.py", "__main__.py") else Path(argv[0]).name
    return " ".join([first, *argv[1:3]])[:120]


def _write_owner(path: Path, *, read_only: bool) -> None:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "run_id": _process_run["run_id"],
        "command": _command(),
        "mode": "read" if read_only else "write",
    }
    with contextlib.suppress(OSError):  # best effort: a read-only folder only loses the nicer busy message
        owner_path(path).write_text(json.dumps(info), encoding="utf-8")


def _read_owner(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(owner_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _remove_owner(path: Path) -> None:
    if _read_owner(path).get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            owner_path(path).unlink()


def _notices_enabled() -> bool:
    env = os.environ.get("LABELGATE_PROGRESS")
    if env is not None:
        return env not in ("0", "false", "no", "")
    return sys.stderr.isatty()


def _lock_holder(err: Exception, path: Path) -> str:
    """Who holds ``path``: ``run R (PID n, command)`` from the owner file, else ``another process (PID n)``."""
    text = str(err)
    pid: int | None = None
    if "PID " in text:
        digits = text.split("PID ", 1)[1].split(")", 1)[0].split(" ", 1)[0]
        pid = int(digits) if digits.isdigit() else None
    owner = _read_owner(path)
    same_process = owner.get("pid") == pid if pid is not None else _pid_alive(owner.get("pid"))
    if owner and same_process and owner.get("host") == socket.gethostname():
        what = f"run {owner['run_id']}" if owner.get("run_id") else "another labelgate process"
        return f"{what} (PID {owner['pid']}, {owner.get('command') or '?'})"
    return "another process" + (f" (PID {pid})" if pid is not None else "")


def _pid_alive(pid: Any) -> bool:
    """True when process ``pid`` of this host exists and is not a zombie (False for a non-positive or odd pid)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Create or upgrade the schema in ``con`` to :data:`SCHEMA_VERSION`; return the version."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP)")
    current = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with transaction(con):
            for statement in _MIGRATIONS[version]:
                con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?, current_timestamp)", [version])
    return SCHEMA_VERSION


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


_TABLES = {
    "runs",
    "rows",
    "quarantine",
    "validations",
    "embeddings",
    "detections",
    "predictions",
    "issues",
    "decisions",
    "exports",
    "evaluations",
    "quality",
}


def query_df(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """Run a parameterised query and return a DataFrame."""
    return con.execute(sql, params or []).df()


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """Run a parameterised query and return the first column of the first row (None when empty)."""
    rows = con.execute(sql, params or []).fetchall()  # fetch to the end: an open result blocks the connection
    return rows[0][0] if rows else None


# --- runs -----------------------------------------------------------------------------------------


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


# --- embeddings cache ----------------------------------------------------------------------------


def cached_hashes(con: duckdb.DuckDBPyConnection, model: str, hashes: list[str]) -> set[str]:
    """Return the subset of ``hashes`` that already have a vector for ``model``."""
    if not hashes:
        return set()
    wanted = pa.table({"h": pa.array(hashes, pa.string())})
    con.register("_lg_wanted", wanted)
    try:
        found = con.execute(
            "SELECT e.text_sha256 FROM embeddings e JOIN _lg_wanted w ON e.text_sha256 = w.h WHERE e.model = ?",
            [model],
        ).fetchall()
    finally:
        con.unregister("_lg_wanted")
    return {r[0] for r in found}


def put_embeddings(con: duckdb.DuckDBPyConnection, model: str, hashes: list[str], vectors: np.ndarray) -> int:
    """Store vectors (shape ``(n, dim)``, float32) for ``hashes``; existing keys are left as they are."""
    if len(hashes) != len(vectors):
        raise ValueError(f"{len(hashes)} hashes but {len(vectors)} vectors")
    if not hashes:
        return 0
    n, dim = vectors.shape
    table = pa.table(
        {
            "model": pa.array([model] * n, pa.string()),
            "text_sha256": pa.array(hashes, pa.string()),
            "dim": pa.array([dim] * n, pa.int32()),
            "vector": vectors_to_arrow(vectors),
        }
    )
    con.register("_lg_vectors", table)
    try:
        con.execute(
            "INSERT OR IGNORE INTO embeddings (model, text_sha256, dim, vector) "
            "SELECT model, text_sha256, dim, vector FROM _lg_vectors"
        )
    finally:
        con.unregister("_lg_vectors")
    return n


def get_embeddings(con: duckdb.DuckDBPyConnection, model: str, hashes: list[str]) -> np.ndarray:
    """Return the cached vectors of ``hashes`` for ``model`` in the given order, shape ``(n, dim)``.

    Raises:
        KeyError: a hash has no cached vector.
    """
    if not hashes:
        return np.zeros((0, 0), dtype=np.float32)
    wanted = pa.table({"h": pa.array(hashes, pa.string()), "i": pa.array(np.arange(len(hashes)), pa.int64())})
    con.register("_lg_wanted", wanted)
    try:
        table = con.sql(
            "SELECT w.i, e.vector FROM _lg_wanted w LEFT JOIN embeddings e "
            "ON e.text_sha256 = w.h AND e.model = $model ORDER BY w.i",
            params={"model": model},
        ).to_arrow_table()
    finally:
        con.unregister("_lg_wanted")
    vec = table.column("vector").combine_chunks()
    if vec.null_count:
        missing = [hashes[i] for i, v in enumerate(vec.is_null().to_pylist()) if v][:3]
        raise KeyError(f"no cached vector for {vec.null_count} texts (e.g. {missing})")
    flat = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(hashes), -1)


def vectors_to_arrow(matrix: np.ndarray) -> pa.Array:
    """Return a list<float32> arrow array of the rows of ``matrix`` (shape ``(n, k)``)."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n, k = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32), pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), pa.float32()))


# --- decisions -----------------------------------------------------------------------------------


def latest_decisions(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The latest decision per row of ``run_id``.

    Columns: row_id, action, label, source, reviewer, reason, decided_at.
    """
    return query_df(
        con,
        """SELECT row_id, action, label, source, reviewer, reason, decided_at FROM decisions
           WHERE run_id = ?
           QUALIFY row_number() OVER (PARTITION BY row_id ORDER BY decision_id DESC) = 1
           ORDER BY row_id""",
        [run_id],
    )


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


# --- rows ----------------------------------------------------------------------------------------


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


def replace_run_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    run_id: str,
    frame: pd.DataFrame | pa.Table,
    *,
    where: str = "",
    params: list[Any] | None = None,
) -> int:
    """Delete ``run_id``'s rows of ``table`` (optionally narrowed by ``where``) and insert ``frame``, atomically.

    This is how a stage that runs again inside the same run replaces its own output, and only it.
    """
    if table not in _TABLES:
        raise ValueError(f"unknown table {table!r}")
    with transaction(con):
        con.execute(f'DELETE FROM "{table}" WHERE run_id = ? {where}', [run_id, *(params or [])])
        return insert_frame(con, table, frame)


def flagged_issues(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[pd.DataFrame, int | None]:
    """Every flagged issue of ``run_id`` (all types, the long ``issues`` shape) and the run's class count.

    What the auto policy decides over, both in the auto gate and when a review is finished with ``auto``. The
    unflagged ``label`` rows of flagged rows come too (``is_issue`` false): conflict resolution reads how strongly
    the model supports each copy's label.
    """
    issues = query_df(
        con,
        """SELECT row_id, issue_type, score, is_issue, given_label, suggested_label, suggested_prob,
                  reason, related_row_id, model_prob
           FROM issues i
           WHERE run_id = ? AND (is_issue OR (issue_type = 'label' AND row_id IN
                 (SELECT row_id FROM issues WHERE run_id = i.run_id AND is_issue)))
           ORDER BY row_id, issue_type""",
        [run_id],
    )
    found = con.execute("SELECT classes FROM detections WHERE run_id = ?", [run_id]).fetchall()
    n_classes = len(found[0][0]) if found and found[0][0] else None
    return issues, n_classes
