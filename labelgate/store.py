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
- ``memory``: append-only log of the decisions remembered per dataset and row content (curation memory)
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from labelgate.errors import ConfigError, DatabaseBusyError, LabelgateError, RunNotFoundError

SCHEMA_VERSION = 8

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
    # 7: curation memory. Decisions get a third source, 'memory' (a remembered decision carried into a later run);
    # `memory` is the append-only log of the decisions remembered per dataset and content (text sha256, given
    # label, occurrence of that content in the run); detections record the key of what they were computed from
    # (reused by a later run with the same key); exports are versioned (a re-export never replaces files).
    7: [
        """CREATE TABLE decisions_v7 (
            decision_id BIGINT PRIMARY KEY DEFAULT nextval('decision_seq'),
            run_id VARCHAR NOT NULL,
            row_id VARCHAR NOT NULL,
            action VARCHAR NOT NULL CHECK (action IN ('keep', 'relabel', 'exclude')),
            label VARCHAR,
            source VARCHAR NOT NULL CHECK (source IN ('policy', 'human', 'memory')),
            reviewer VARCHAR,
            reason VARCHAR,
            decided_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        """INSERT INTO decisions_v7 (decision_id, run_id, row_id, action, label, source, reviewer, reason, decided_at)
           SELECT decision_id, run_id, row_id, action, label, source, reviewer, reason, decided_at FROM decisions""",
        "DROP TABLE decisions",
        "ALTER TABLE decisions_v7 RENAME TO decisions",
        "CREATE SEQUENCE memory_seq START 1",
        """CREATE TABLE memory (
            memory_id BIGINT PRIMARY KEY DEFAULT nextval('memory_seq'),
            dataset VARCHAR NOT NULL,
            text_sha256 VARCHAR NOT NULL,
            given_label VARCHAR NOT NULL,
            occurrence INTEGER NOT NULL DEFAULT 1,
            action VARCHAR NOT NULL CHECK (action IN ('keep', 'relabel', 'exclude', 'revoke')),
            label VARCHAR,
            source VARCHAR NOT NULL CHECK (source IN ('human', 'policy')),
            reviewer VARCHAR,
            reason VARCHAR,
            run_id VARCHAR,
            row_id VARCHAR,
            decision_id BIGINT,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        "ALTER TABLE detections ADD COLUMN detection_key VARCHAR",
        "ALTER TABLE exports ADD COLUMN version INTEGER",
    ],
    # 8: several annotators per item (labelgate.core.annotators): every label of the long input, the consensus
    # per item and the estimated quality per annotator
    8: [
        """CREATE TABLE annotations (
            run_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            item_id VARCHAR NOT NULL,
            annotator VARCHAR,
            label VARCHAR,
            source_line INTEGER,
            reason VARCHAR,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE consensus (
            run_id VARCHAR NOT NULL,
            item_id VARCHAR NOT NULL,
            consensus_label VARCHAR NOT NULL,
            consensus_quality DOUBLE NOT NULL,
            agreement DOUBLE NOT NULL,
            n_labels INTEGER NOT NULL,
            majority_label VARCHAR,
            model_label VARCHAR,
            model_prob DOUBLE,
            labels_json JSON NOT NULL,
            PRIMARY KEY (run_id, item_id)
        )""",
        """CREATE TABLE annotator_quality (
            run_id VARCHAR NOT NULL,
            annotator VARCHAR NOT NULL,
            quality DOUBLE NOT NULL,
            quality_sd DOUBLE NOT NULL,
            n_labels INTEGER NOT NULL,
            agreement DOUBLE NOT NULL,
            method VARCHAR,
            PRIMARY KEY (run_id, annotator)
        )""",
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
    "annotations",
    "consensus",
    "annotator_quality",
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
    "memory",
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


# --- curation memory -------------------------------------------------------------------------------
#
# A decision is remembered per dataset and row content: (text sha256, given label, occurrence), occurrence being
# 1 for the first valid row of a run with that text and label (in input order), 2 for the next copy, ... so an
# exact duplicate's decision stays the duplicate's. The `memory` table is append-only: the current remembered
# decision of a key is its newest entry, none when that entry's action is 'revoke'.

#: the content key of each valid row of ``$run`` (``k``), used by the memory queries below
_KEYS = """k AS (
    SELECT v.row_id, v.seq, v.text_sha256, v.label,
           row_number() OVER (PARTITION BY v.text_sha256, v.label ORDER BY v.seq) AS occurrence
    FROM valid_rows v WHERE v.run_id = $run)"""


def run_dataset(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    """The dataset name of ``run_id``.

    Raises:
        RunNotFoundError: no such run.
    """
    found = scalar(con, "SELECT dataset FROM runs WHERE run_id = ?", [run_id])
    if found is None:
        raise RunNotFoundError(f"no run {run_id!r} in the database")
    return str(found)


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


def insert_decision(con: duckdb.DuckDBPyConnection, values: list[Any]) -> int:
    """Append one decision ``[run_id, row_id, action, label, source, reviewer, reason]``; return its id."""
    rows = con.execute(
        "INSERT INTO decisions (run_id, row_id, action, label, source, reviewer, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING decision_id",
        values,
    ).fetchall()
    return int(rows[0][0])


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


# --- reuse of detection results ------------------------------------------------------------------


def reusable_detection(con: duckdb.DuckDBPyConnection, key: str, *, except_run: str) -> str | None:
    """The newest completed run whose detection was computed from ``key`` (None when there is none)."""
    found = scalar(
        con,
        """SELECT d.run_id FROM detections d JOIN runs r ON r.run_id = d.run_id
           WHERE d.detection_key = ? AND r.status = 'completed' AND d.run_id <> ?
           ORDER BY r.started_at DESC, r.run_id DESC LIMIT 1""",
        [key, except_run],
    )
    return None if found is None else str(found)


def copy_detection(con: duckdb.DuckDBPyConnection, source_run: str, run_id: str) -> dict[str, Any]:
    """Replace ``run_id``'s detection, predictions and issues by copies of ``source_run``'s (the caller's
    transaction); return the detection's stored metrics."""
    for table in ("detections", "predictions", "issues"):
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
    con.execute(
        """INSERT INTO detections (run_id, method, classes, n_folds, metrics_json, detection_key)
           SELECT ?, method, classes, n_folds, metrics_json, detection_key FROM detections WHERE run_id = ?""",
        [run_id, source_run],
    )
    con.execute(
        "INSERT INTO predictions (run_id, row_id, probs) SELECT ?, row_id, probs FROM predictions WHERE run_id = ?",
        [run_id, source_run],
    )
    cols = "row_id, issue_type, score, is_issue, given_label, suggested_label, suggested_prob, reason, " + (
        "related_row_id, model_prob"
    )
    con.execute(
        f"INSERT INTO issues (run_id, {cols}) SELECT ?, {cols} FROM issues WHERE run_id = ?", [run_id, source_run]
    )
    stored = scalar(con, "SELECT metrics_json FROM detections WHERE run_id = ?", [run_id])
    return json.loads(stored) if stored else {}


def set_detection_key(con: duckdb.DuckDBPyConnection, run_id: str, key: str) -> None:
    """Record the key ``run_id``'s detection was computed from."""
    con.execute("UPDATE detections SET detection_key = ? WHERE run_id = ?", [key, run_id])


def record_export(
    con: duckdb.DuckDBPyConnection, run_id: str, version: int, files: list[tuple[str, str, str, str, int]]
) -> None:
    """Append one export's files ``(format, split, path, sha256, lines)`` as ``version`` of the run's exports;
    earlier versions' rows stay."""
    con.executemany(
        "INSERT INTO exports (run_id, format, split, path, sha256, lines, version) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [[run_id, *f[:5], version] for f in files],
    )


def row_issues(con: duckdb.DuckDBPyConnection, run_id: str, row_ids: list[str]) -> pd.DataFrame:
    """The issue rows of ``row_ids`` in ``run_id``: row_id, issue_type, score, is_issue, suggested_label."""
    return query_df(
        con,
        """SELECT row_id, issue_type, score, is_issue, suggested_label FROM issues
           WHERE run_id = ? AND list_contains(?, row_id) ORDER BY row_id, issue_type""",
        [run_id, [str(r) for r in row_ids]],
    )


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


def held_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> set[str]:
    """Rows of ``run_id`` whose latest decision a person made (source human, not an undo back to "no decision")
    or the curation memory carried (source memory): the policy leaves them alone."""
    rows = con.execute(
        """SELECT row_id FROM decisions WHERE run_id = ?
           QUALIFY row_number() OVER (PARTITION BY row_id ORDER BY decision_id DESC) = 1
               AND source IN ('human', 'memory')
               AND NOT regexp_matches(coalesce(reason, ''), '^undo of #[0-9]+: no decision')""",
        [run_id],
    ).fetchall()
    return {str(r[0]) for r in rows}


def count_valid_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """How many valid rows ``run_id`` has."""
    return int(scalar(con, "SELECT count(*) FROM valid_rows WHERE run_id = ?", [run_id]) or 0)


def export_folders(con: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    """The folder of every export of ``run_id`` recorded so far, oldest first."""
    rows = con.execute(
        """SELECT parse_dirpath(path) AS folder FROM exports WHERE run_id = ?
           GROUP BY folder ORDER BY min(created_at), folder""",
        [run_id],
    ).fetchall()
    return [str(r[0]) for r in rows]


# --- evaluations ---------------------------------------------------------------------------------


def save_evaluation(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    test_sha256: str,
    test_path: str | None,
    trainer: str,
    model: str,
    n_test: int,
    scores: Sequence[Mapping[str, Any]],
) -> None:
    """Replace the evaluation rows of (run, test file, trainer) with ``scores`` (call it inside
    :func:`transaction`, with the metrics update that goes with it).

    Args:
        scores: one mapping per variant (``raw``, ``cleaned``) with variant, n_train, accuracy, macro_f1,
            per_class_f1 (dict class -> F1) and seconds (None when not measured).
    """
    con.execute(
        "DELETE FROM evaluations WHERE run_id = ? AND test_sha256 = ? AND trainer = ?",
        [run_id, test_sha256, trainer],
    )
    for s in scores:
        con.execute(
            """INSERT INTO evaluations (run_id, test_sha256, trainer, variant, test_path, model, n_train, n_test,
                                        accuracy, macro_f1, per_class_f1, seconds)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                run_id,
                test_sha256,
                trainer,
                s["variant"],
                test_path,
                model,
                int(s["n_train"]),
                int(n_test),
                float(s["accuracy"]),
                float(s["macro_f1"]),
                json.dumps(s["per_class_f1"], sort_keys=True),
                None if s.get("seconds") is None else float(s["seconds"]),
            ],
        )


def evaluations(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Every stored evaluation row of ``run_id``, newest first (then trainer, variant raw before cleaned).

    Columns: trainer, variant, test_path, test_sha256, model, n_train, n_test, accuracy, macro_f1,
    per_class_f1 (JSON text), seconds, created_at.
    """
    return query_df(
        con,
        """SELECT trainer, variant, test_path, test_sha256, model, n_train, n_test, accuracy, macro_f1, per_class_f1,
                  seconds, created_at
           FROM evaluations WHERE run_id = ? ORDER BY created_at DESC, trainer, variant DESC""",
        [run_id],
    )


# --- several annotators per item (migration 8) ------------------------------------------------------


def usable_annotations(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The usable labels of ``run_id`` (``reason IS NULL``): columns item_id, annotator, label, in input order."""
    return query_df(
        con,
        """SELECT item_id, annotator, label FROM annotations
           WHERE run_id = ? AND reason IS NULL ORDER BY seq""",
        [run_id],
    )


def run_predictions(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[pd.DataFrame, list[str]]:
    """The out-of-fold probabilities of ``run_id`` (columns row_id, probs) and the detection's classes."""
    frame = query_df(con, "SELECT row_id, probs FROM predictions WHERE run_id = ?", [run_id])
    classes = scalar(con, "SELECT classes FROM detections WHERE run_id = ?", [run_id])
    return frame, list(classes or [])


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


def latest_evaluations(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """The latest evaluation of ``run_id`` per trainer, one row per trainer (raw and cleaned side by side).

    Columns: trainer, model, test_path, n_test, raw_n_train, cleaned_n_train, raw_accuracy, cleaned_accuracy,
    raw_macro_f1, cleaned_macro_f1, seconds (both sides; None when not measured), created_at; ordered by trainer.
    """
    return query_df(
        con,
        """WITH latest AS (
               SELECT trainer, test_sha256 FROM evaluations WHERE run_id = ?
               QUALIFY row_number() OVER (PARTITION BY trainer ORDER BY created_at DESC, test_sha256) = 1
           )
           SELECT e.trainer, any_value(e.model) AS model, any_value(e.test_path) AS test_path,
                  any_value(e.n_test) AS n_test,
                  max(e.n_train) FILTER (WHERE e.variant = 'raw') AS raw_n_train,
                  max(e.n_train) FILTER (WHERE e.variant = 'cleaned') AS cleaned_n_train,
                  max(e.accuracy) FILTER (WHERE e.variant = 'raw') AS raw_accuracy,
                  max(e.accuracy) FILTER (WHERE e.variant = 'cleaned') AS cleaned_accuracy,
                  max(e.macro_f1) FILTER (WHERE e.variant = 'raw') AS raw_macro_f1,
                  max(e.macro_f1) FILTER (WHERE e.variant = 'cleaned') AS cleaned_macro_f1,
                  CASE WHEN count(e.seconds) = count(*) THEN sum(e.seconds) END AS seconds,
                  max(e.created_at) AS created_at
           FROM evaluations e JOIN latest USING (trainer, test_sha256)
           WHERE e.run_id = ?
           GROUP BY e.trainer ORDER BY e.trainer""",
        [run_id, run_id],
    )


def replace_label_issues(con: duckdb.DuckDBPyConnection, run_id: str, issues: pd.DataFrame) -> int:
    """Replace the ``label`` issues of ``run_id`` for the rows in ``issues`` (issue columns without run_id)."""
    con.register("_lg_label_issue_ids", issues[["row_id"]])
    try:
        con.execute(
            """DELETE FROM issues WHERE run_id = ? AND issue_type = 'label'
               AND row_id IN (SELECT row_id FROM _lg_label_issue_ids)""",
            [run_id],
        )
    finally:
        con.unregister("_lg_label_issue_ids")
    return insert_frame(con, "issues", issues.assign(run_id=run_id))


def count_label_issues(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """The number of flagged ``label`` issues of ``run_id``."""
    return int(
        scalar(con, "SELECT count(*) FROM issues WHERE run_id = ? AND issue_type = 'label' AND is_issue", [run_id])
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


# --- opening and closing a run --------------------------------------------------------------------


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


def has_table(con: duckdb.DuckDBPyConnection, *, name: str) -> bool:
    """True when the database has a table ``name`` (an old database opened read-only may lack newer ones)."""
    return bool(scalar(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]))


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


# --- rows, quarantine and validations ------------------------------------------------------------


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


# --- detection, predictions and issues -----------------------------------------------------------


def save_detection(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    method: str,
    classes: list[str],
    n_folds: int | None,
    metrics_json: str,
    detection_key: str | None,
    predictions: pd.DataFrame,
    issues: pd.DataFrame,
) -> None:
    """Replace ``run_id``'s detection, predictions and issues (the caller's transaction).

    Args:
        metrics_json: the detection's figures as JSON text.
        predictions: columns run_id, row_id, probs (one float list per row, in ``classes`` order).
        issues: the long ``issues`` shape with run_id (one row per row and issue type).
    """
    for table in ("detections", "predictions", "issues"):
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
    con.execute(
        "INSERT INTO detections (run_id, method, classes, n_folds, metrics_json, detection_key) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [run_id, method, classes, n_folds, metrics_json, detection_key],
    )
    insert_frame(con, "predictions", predictions)
    insert_frame(con, "issues", issues)


def detection_classes(con: duckdb.DuckDBPyConnection, *, run_id: str) -> list[Any] | None:
    """The classes of ``run_id``'s probability model as stored (None when the run has no detection yet)."""
    found = con.execute("SELECT classes FROM detections WHERE run_id = ?", [run_id]).fetchall()
    return found[0][0] if found else None


def predictions_with_labels(con: duckdb.DuckDBPyConnection, *, run_id: str) -> pa.Table:
    """The out-of-fold probabilities of ``run_id`` with each row's given label, ordered by row id.

    Columns: probs (float list in the detection's class order), label.
    """
    return con.sql(
        """SELECT p.probs, r.label FROM predictions p
           JOIN (SELECT DISTINCT row_id, label FROM valid_rows WHERE run_id = $run) r ON r.row_id = p.row_id
           WHERE p.run_id = $run ORDER BY p.row_id""",
        params={"run": run_id},
    ).to_arrow_table()


def flagged_row_ids(con: duckdb.DuckDBPyConnection, *, run_id: str, issue_type: str) -> list[str]:
    """The row ids of ``run_id`` the ``issue_type`` detector flagged (label, duplicate, conflict, leakage, ...)."""
    return [
        r[0]
        for r in con.execute(
            "SELECT row_id FROM issues WHERE run_id = ? AND issue_type = ? AND is_issue", [run_id, issue_type]
        ).fetchall()
    ]


def top_label_issues(con: duckdb.DuckDBPyConnection, *, run_id: str, limit: int) -> pd.DataFrame:
    """The ``limit`` flagged ``label`` issues of ``run_id`` with the lowest score (the likeliest wrong labels).

    Columns: row_id, text, given_label, suggested_label, suggested_prob (3 decimals), label_score (4 decimals),
    reason.
    """
    return query_df(
        con,
        """SELECT i.row_id, r.text, i.given_label, i.suggested_label, round(i.suggested_prob, 3) AS suggested_prob,
                  round(i.score, 4) AS label_score, i.reason
           FROM issues i JOIN valid_rows r ON r.run_id = i.run_id AND r.row_id = i.row_id
           WHERE i.run_id = ? AND i.issue_type = 'label' AND i.is_issue
           ORDER BY i.score ASC, i.row_id LIMIT ?""",
        [run_id, limit],
    )


def issue_rows(con: duckdb.DuckDBPyConnection, *, run_id: str, flagged_only: bool = False) -> pd.DataFrame:
    """Every valid row of ``run_id`` joined with its issues (one row per row and issue type; a row without issues
    once, its issue columns null). ``flagged_only``: only rows some detector flagged.

    Columns: id, text, label, source_line, issue_type, score, is_issue, given_label, suggested_label,
    suggested_prob, model_prob, reason, related_row_id.
    """
    flagged_filter = (
        "AND EXISTS (SELECT 1 FROM issues f WHERE f.run_id = r.run_id AND f.row_id = r.row_id AND f.is_issue)"
        if flagged_only
        else ""
    )
    return query_df(
        con,
        f"""SELECT r.row_id AS id, r.text, r.label, r.source_line, i.issue_type, i.score, i.is_issue,
                   i.given_label, i.suggested_label, i.suggested_prob, i.model_prob, i.reason, i.related_row_id
            FROM valid_rows r LEFT JOIN issues i ON i.run_id = r.run_id AND i.row_id = r.row_id
            WHERE r.run_id = ? {flagged_filter}""",
        [run_id],
    )


# --- decisions (the log) ---------------------------------------------------------------------------


def decision_log(con: duckdb.DuckDBPyConnection, *, run_id: str) -> pd.DataFrame:
    """Every decision of ``run_id`` in the order made (the append-only log, undo entries included).

    Columns: decision_id, row_id, action, label, source, reviewer, reason, decided_at.
    """
    return query_df(
        con,
        """SELECT decision_id, row_id, action, label, source, reviewer, reason, decided_at
           FROM decisions WHERE run_id = ? ORDER BY decision_id""",
        [run_id],
    )


def count_decisions(con: duckdb.DuckDBPyConnection, *, run_id: str) -> int:
    """How many decisions (of any source, undo entries included) the log holds for ``run_id``."""
    return scalar(con, "SELECT count(*) FROM decisions WHERE run_id = ?", [run_id])


# --- quality gate ----------------------------------------------------------------------------------


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
