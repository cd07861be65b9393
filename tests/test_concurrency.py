"""Concurrency: two processes on one DuckDB file.

DuckDB lets one process open a file while it writes; labelgate opens it briefly per stage and a process
that finds it locked retries with back-off for ``wait_s`` (``LABELGATE_DB_WAIT_S``, default 60 s). While a
connection is open, ``<db>.owner.json`` names the holder (pid, run id, command), so a waiting process says
whom it waits for, and gives up with a one-line "database … is in use by run X (PID n, …)" message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import copy_db

from labelgate import store
from labelgate.errors import ConfigError, DatabaseBusyError

pytestmark = pytest.mark.flow


def _env(tmp_path: Path, name: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / f"prefect-{name}"), "LABELGATE_PROGRESS": "1", **extra}
    env.pop("PREFECT_API_URL", None)  # the pytest process's harness API is not for these processes
    env.pop("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", None)
    return env


def _run_cmd(sample: Path, db: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "labelgate.cli", "run", str(sample), "--db", db, "--out", str(out), "--json"]


class Holder:
    """A process holding the database open through labelgate's store, as run ``run_id``, until released."""

    def __init__(self, db: str | Path, run_id: str | None = "holder-run-1") -> None:
        code = textwrap.dedent(f"""
            import sys
            from labelgate import store
            store.set_process_run({run_id!r})
            with store.connect({str(db)!r}):
                print("locked", flush=True)
                sys.stdin.readline()
            print("released", flush=True)
        """)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"
        self.pid = self.proc.pid

    def release(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "released"
        self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --- the store: who holds the file, how long to wait ------------------------------------------------------------


def test_busy_message_names_the_run_and_pid_holding_the_file(tmp_path: Path) -> None:
    db = tmp_path / "busy.duckdb"
    with store.connect(db):
        pass
    assert not store.owner_path(db).exists()  # removed when the connection closes
    holder = Holder(db)
    try:
        owner = json.loads(store.owner_path(db).read_text())
        assert (owner["pid"], owner["run_id"], owner["mode"]) == (holder.pid, "holder-run-1", "write")
        with pytest.raises(DatabaseBusyError) as err, store.connect(db, wait_s=0.5):
            pass
        message = str(err.value)
        assert f"is in use by run holder-run-1 (PID {holder.pid}," in message
        assert "waited 0s" in message and "another --db" in message and "\n" not in message
        assert err.value.exit_code == 3
    finally:
        holder.release()
    assert not store.owner_path(db).exists()
    with store.connect(db, wait_s=5) as con:  # free again, and intact
        assert store.scalar(con, "SELECT max(version) FROM schema_version") == store.SCHEMA_VERSION


def test_a_stale_owner_file_is_not_believed(tmp_path: Path) -> None:
    """An owner file left by a killed process names another PID than the lock's holder: it is ignored."""
    db = tmp_path / "busy.duckdb"
    holder = Holder(db, run_id=None)
    try:
        store.owner_path(db).write_text(json.dumps({"pid": 999_999_999, "run_id": "old-run", "host": "x"}))
        busy = rf"in use by another process \(PID {holder.pid}\)"
        with pytest.raises(DatabaseBusyError, match=busy), store.connect(db, wait_s=0.2):
            pass
    finally:
        holder.release()


def test_wait_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(store.WAIT_ENV, raising=False)
    assert store.default_wait_s() == 60.0
    monkeypatch.setenv(store.WAIT_ENV, "2.5")
    assert store.default_wait_s() == 2.5
    monkeypatch.setenv(store.WAIT_ENV, "soon")
    with pytest.raises(ConfigError, match="LABELGATE_DB_WAIT_S must be a number of seconds, got 'soon'"):
        store.default_wait_s()
    monkeypatch.delenv(store.WAIT_ENV)
    db = tmp_path / "w.duckdb"
    with store.connect(db):
        pass
    holder = Holder(db)
    try:
        monkeypatch.setenv(store.WAIT_ENV, "0.3")
        started = time.monotonic()
        with pytest.raises(DatabaseBusyError), store.connect(db):
            pass
        assert 0.3 <= time.monotonic() - started < 5
    finally:
        holder.release()


# --- whole runs ------------------------------------------------------------------------------------------------


class Run:
    """``labelgate run`` in a subprocess; its stderr collected line by line by a thread (so the pipe never fills)."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def wait_for(self, marker: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in list(self.err) if marker in line]
            if found:
                return found[0]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {marker!r} on stderr: {''.join(self.err)[-3000:]}")

    def finish(self, timeout: float = 600) -> dict:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=30)
        err = "".join(self.err)
        assert self.proc.returncode == 0, err[-3000:]
        assert "Traceback" not in out + err
        return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_runs_on_one_database_at_once_both_complete(warm_run: dict, tmp_path: Path, sample_csv: Path) -> None:
    """Two runs queue behind a process holding the file (and say for whom they wait), then race through every
    stage on the same file: both complete, both runs' rows are intact, the shared cache has no duplicates."""
    db = copy_db(warm_run, tmp_path)
    with store.connect(db, read_only=True) as con:
        before = {t: store.scalar(con, f"SELECT count(*) FROM {t}") for t in ("runs", "rows", "embeddings")}
    holder = Holder(db)
    runs: list[Run] = []
    try:
        for name in ("first", "second"):
            runs.append(Run(_run_cmd(sample_csv, db, tmp_path / "out"), _env(tmp_path, name)))
        for run in runs:  # both are kept waiting at their first stage, and say for whom
            notice = run.wait_for("waiting up to")
            assert f"is in use by run holder-run-1 (PID {holder.pid}," in notice and "waiting up to 60s" in notice
        holder.release()  # from here on the two runs contend for the file at every stage
        summaries = [run.finish() for run in runs]
    finally:
        holder.kill()
        for run in runs:
            if run.proc.poll() is None:
                run.proc.kill()
    ids = [s["run_id"] for s in summaries]
    assert len(set(ids)) == 2
    with store.connect(db, read_only=True) as con:
        status = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
        assert len(status) == before["runs"] + 2
        assert all(status[i] == "completed" for i in ids)
        assert store.scalar(con, "SELECT count(*) FROM embeddings") == before["embeddings"]  # shared cache, no dups
        assert store.scalar(con, "SELECT count(*) FROM rows") == before["rows"] + 800
        for summary in summaries:
            rid = summary["run_id"]
            counts = [
                store.scalar(con, f"SELECT count(*) FROM {view} WHERE run_id = ?", [rid])
                for view in ("rows", "valid_rows", "quarantine", "predictions")
            ]
            assert counts[0] == counts[1] + counts[2] == summary["rows_in"] == 400
            assert counts[1] == counts[3] == summary["rows_valid"]
            assert summary["rows_in"] == summary["rows_valid"] + summary["rows_quarantined"]
            assert summary["texts_embedded"] == 0
    files = [sorted(Path(f).name for f in s["export_files"]) for s in summaries]
    assert files[0] == files[1]
    for name in files[0]:
        if name != "manifest.json":
            a, b = (Path(s["export_dir"]) / name for s in summaries)
            assert a.read_bytes() == b.read_bytes()


@pytest.mark.slow
def test_a_run_gives_up_on_a_busy_database_with_one_line(tmp_path: Path, sample_csv: Path) -> None:
    """With LABELGATE_DB_WAIT_S=1 (and the task's two retries) the run stops with exit code 3 and one line."""
    db = tmp_path / "held.duckdb"
    holder = Holder(db)
    try:
        res = subprocess.run(
            _run_cmd(sample_csv, str(db), tmp_path / "out"),
            env=_env(tmp_path, "giver-up", **{store.WAIT_ENV: "1"}),
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        holder.release()
    assert res.returncode == 3, res.stderr[-3000:]
    assert "Traceback" not in res.stdout + res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("labelgate: error: database ")
    assert f"is in use by run holder-run-1 (PID {holder.pid}," in last and "use another --db" in last
    with store.connect(db, read_only=True) as con:  # nothing half-written: the run never started
        assert store.scalar(con, "SELECT count(*) FROM runs") == 0
