"""Crash and resume: ``kill -9`` a real ``labelgate run`` during embedding and during export, run again.

The second run completes, reuses the embedding chunks committed before the kill, and writes export files
byte-identical to those of an uninterrupted run; the killed runs end up ``crashed``, not ``running``.

How the kills are placed (no fault-injection hook):

- during embedding: ``LABELGATE_EMBED_CHUNK=64`` makes the embed task commit every 64 texts and, with
  ``LABELGATE_PROGRESS=1``, print ``labelgate: embedded N/M texts (committed)`` after each commit; the test
  kills the process as soon as the first such line appears (the next chunk is then being encoded);
- during export: the export task writes its files into a hidden staging folder ``<out>/.<run_id>.staging-*``
  and renames it into place; the test polls the output folder and kills the process once that folder exists.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from labelgate import store
from labelgate.services.export import verify_manifest

pytestmark = pytest.mark.flow

CHUNK = 64
#: several formats: more files to compare, and a longer file-writing window for the export kill
FORMATS = "openai-chat,hf-messages,alpaca,csv"


def _dead_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _add_run(con, run_id: str, status: str, pid: int | None, host: str) -> None:
    con.execute(
        "INSERT INTO runs (run_id, dataset, input_path, params_json, status, started_at, pid, host) "
        "VALUES (?, 'd', 'in.csv', '{}', ?, current_timestamp, ?, ?)",
        [run_id, status, pid, host],
    )


def test_runs_whose_process_is_gone_are_marked_crashed(tmp_path: Path, sample_csv: Path) -> None:
    import socket

    from labelgate.config import CurateParams
    from labelgate.tasks.run import start_run

    here = socket.gethostname()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # ends, but is not reaped until wait()
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        db = tmp_path / "runs.duckdb"
        with store.connect(db) as con:
            _add_run(con, "r-dead", "running", _dead_pid(), here)
            _add_run(con, "r-zombie", "running", zombie.pid, here)
            _add_run(con, "r-alive", "running", os.getpid(), here)
            _add_run(con, "r-elsewhere", "running", _dead_pid(), "another-host")
            _add_run(con, "r-old-schema", "running", None, None)
            _add_run(con, "r-done", "completed", _dead_pid(), here)
            _add_run(con, "r-awaiting", "awaiting_review", _dead_pid(), here)
        run_id = start_run.fn(str(db), str(sample_csv), CurateParams())  # a new run notices the dead ones
    finally:
        zombie.wait()
    status = _status(db)
    assert {k: v[0] for k, v in status.items()} == {
        "r-dead": "crashed",
        "r-zombie": "crashed",
        "r-alive": "running",
        "r-elsewhere": "running",
        "r-old-schema": "running",
        "r-done": "completed",
        "r-awaiting": "awaiting_review",
        run_id: "running",
    }
    assert "ended before the run finished" in status["r-dead"][1]
    with store.connect(db) as con:  # idempotent: nothing more to mark
        assert store.mark_crashed_runs(con) == []


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "LABELGATE_PROGRESS": "1",
        "LABELGATE_EMBED_CHUNK": str(CHUNK),
    }
    env.pop("PREFECT_API_URL", None)  # the pytest process's harness API is not for these processes
    env.pop("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", None)
    return env


def _cmd(sample: Path, db: Path, out: Path) -> list[str]:
    exe = [sys.executable, "-m", "labelgate.cli", "run"]
    return [*exe, str(sample), "--db", str(db), "--out", str(out), "--json", "--format", FORMATS]


class Proc:
    """A ``labelgate run`` process in its own process group, its stderr read line by line by a thread."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # the Prefect temporary server it starts is killed with it
        )
        self.err_lines: list[str] = []
        self.out = ""
        self._threads = [
            threading.Thread(target=self._read_err, daemon=True),
            threading.Thread(target=self._read_out, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_err(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:  # text mode: \r (progress bars) also ends a line
            self.err_lines.append(line)

    def _read_out(self) -> None:
        assert self.popen.stdout is not None
        self.out = self.popen.stdout.read()

    def wait_for_line(self, marker: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.err_lines[seen:]:
                if marker in line:
                    return line
            seen = len(self.err_lines)
            if self.popen.poll() is not None and seen == len(self.err_lines):
                for t in self._threads:  # what it printed last may still be on its way
                    t.join(timeout=10)
                if any(marker in line for line in self.err_lines[seen:]):
                    continue
                raise AssertionError(
                    f"process ended (exit {self.popen.returncode}) before printing {marker!r}: "
                    f"{''.join(self.err_lines)[-3000:]}{self.out[-2000:]}"
                )
            time.sleep(0.02)
        raise AssertionError(f"no {marker!r} within {timeout}s")

    def kill9(self) -> None:
        """SIGKILL the labelgate process (what is tested), then what is left of its process group."""
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=60)
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for t in self._threads:
            t.join(timeout=10)

    def finish(self, timeout: float = 600) -> dict:
        """Wait for a normal end; return the ``--json`` summary."""
        self.popen.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=30)
        stderr = "".join(self.err_lines)
        assert self.popen.returncode == 0, stderr[-3000:]
        assert "Traceback" not in stderr + self.out
        return json.loads(self.out.strip().splitlines()[-1])


def _files(summary: dict) -> dict[str, bytes]:
    """The train/val/cleaned files of a run by name (the manifest holds the run id and time: compared apart)."""
    folder = Path(summary["export_dir"])
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "manifest.json"}


def _manifest(summary: dict) -> dict:
    return json.loads((Path(summary["export_dir"]) / "manifest.json").read_text(encoding="utf-8"))


def _status(db: Path) -> dict[str, tuple[str, str | None]]:
    with store.connect(db, read_only=True) as con:
        rows = con.execute("SELECT run_id, status, message FROM runs").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _kill_during_export(proc: Proc, out: Path, timeout: float = 600) -> str:
    """Kill ``proc`` as soon as an export staging folder appears under ``out``; return its name."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists():
            staging = [e.name for e in os.scandir(out) if e.name.startswith(".") and ".staging-" in e.name]
            if staging:
                proc.kill9()
                return staging[0]
        if proc.popen.poll() is not None:
            raise AssertionError("the run finished before its export could be interrupted")
        time.sleep(0.001)
    raise AssertionError("no export staging folder appeared")


@pytest.mark.slow
def test_kill_during_embedding_and_export_then_resume(tmp_path: Path, sample_csv: Path) -> None:
    env = _env(tmp_path)
    db_a, out_a = tmp_path / "a.duckdb", tmp_path / "out-a"
    db, out = tmp_path / "b.duckdb", tmp_path / "out-b"

    # the uninterrupted run (own database) and the run killed during embedding, side by side
    baseline = Proc(_cmd(sample_csv, db_a, out_a), {**env, "PREFECT_HOME": str(tmp_path / "prefect-a")})
    killed = Proc(_cmd(sample_csv, db, out), env)
    line = killed.wait_for_line("texts (committed)")
    killed.kill9()
    committed = int(line.split("embedded ", 1)[1].split("/", 1)[0])
    assert committed >= CHUNK and killed.popen.returncode == -signal.SIGKILL
    a = baseline.finish()
    assert a["texts_embedded"] == 394 and a["texts_cached"] == 0
    expected = _files(a)
    assert len(expected) == 7  # train/val of 3 JSONL formats + cleaned.csv

    # the killed run left its committed chunks; the next run reuses them and matches the baseline
    (killed_id,) = _status(db)
    assert _status(db)[killed_id][0] == "running"
    resumed = Proc(_cmd(sample_csv, db, out), env).finish()
    assert resumed["texts_cached"] >= committed and resumed["texts_cached"] % CHUNK == 0
    assert resumed["texts_cached"] < 394 and resumed["texts_embedded"] == 394 - resumed["texts_cached"]
    assert _files(resumed) == expected
    assert _manifest(resumed)["files"] == _manifest(a)["files"]
    status, message = _status(db)[killed_id]
    assert status == "crashed" and "ended before the run finished" in message
    assert not (out / killed_id).exists()

    # killed during export: no half-written folder becomes visible; the next run writes the same files
    killed = Proc(_cmd(sample_csv, db, out), env)
    staging = _kill_during_export(killed, out)
    killed_id = staging.split(".staging-", 1)[0].lstrip(".")
    assert _status(db)[killed_id][0] == "running"
    final = out / killed_id
    assert not final.exists() or verify_manifest(final) == []  # absent, or complete (the kill came after the rename)
    again = Proc(_cmd(sample_csv, db, out), env).finish()
    assert again["texts_cached"] == 394 and again["texts_embedded"] == 0
    assert _files(again) == expected
    assert _status(db)[killed_id][0] == "crashed"
    assert not (out / staging).exists()  # the next export removed the killed run's staging folder
    runs = _status(db)
    assert sorted(s for s, _ in runs.values()) == ["completed", "completed", "crashed", "crashed"]
    with store.connect(db, read_only=True) as con:  # every run's rows reconcile, killed or not
        for run_id in runs:
            n = store.scalar(con, "SELECT count(*) FROM rows WHERE run_id = ?", [run_id])
            valid = store.scalar(con, "SELECT count(*) FROM valid_rows WHERE run_id = ?", [run_id])
            quarantined = store.scalar(con, "SELECT count(*) FROM quarantine WHERE run_id = ?", [run_id])
            assert n == valid + quarantined == 400
        by_kind = dict(con.execute("SELECT model LIKE '%#mid-layers', count(*) FROM embeddings GROUP BY 1").fetchall())
        assert by_kind == {False: 394, True: 394}  # sentence vectors and the layers member's features, once each


def _memory_log(db: str) -> list[tuple]:
    """Every entry of the memory log, oldest first (every column: a changed entry is a different tuple)."""
    with store.connect(db, read_only=True) as con:
        return con.execute("SELECT * FROM memory ORDER BY memory_id").fetchall()


def _chat_export(summary: dict) -> dict[str, str]:
    """user text -> assistant label over the run's exported ``openai-chat`` train/val files."""
    out = {}
    for path in summary["export_files"]:
        if not path.endswith(".openai-chat.jsonl"):
            continue
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            messages = json.loads(line)["messages"]
            user = next(m["content"] for m in messages if m["role"] == "user")
            out[user] = next(m["content"] for m in messages if m["role"] == "assistant")
    return out


@pytest.mark.slow
def test_kill_during_run_2_loses_no_remembered_decision(tmp_path: Path, warm_run: dict) -> None:
    """Run 1 (the warm run), 4 relabels and 3 exclusions through the API; run 2 of the same dataset (shuffled,
    new rows) killed -9 during embedding, again during export (after it carried the decisions and gated); the
    memory log keeps every entry as it was, and run 3 completes and exports every decision."""
    import pandas as pd
    from conftest import REPO, copy_db
    from fastapi.testclient import TestClient

    from labelgate.services import review
    from labelgate.web.app import create_app

    db = copy_db(warm_run, tmp_path)
    run1 = warm_run["run_id"]
    sample = pd.read_csv(REPO / "data" / "sample.csv", dtype=str, keep_default_na=False)
    once = set(sample["text"].drop_duplicates(keep=False))  # rows told apart by their text in the export files
    client = TestClient(create_app(db, reviewer="ann"))
    items = [it for it in client.get(f"/api/runs/{run1}/issues").json()["items"] if it["text"] in once]
    with store.connect(db) as con:
        classes = review.run_classes(con, run1)
    relabel = [it for it in items if "label" in it["issue_types"]][:4]
    exclude = [it for it in items if it["id"] not in {r["id"] for r in relabel}][:3]
    body = {
        "decisions": [
            {"id": it["id"], "action": "relabel", "label": next(c for c in classes if c != it["given_label"])}
            for it in relabel
        ]
        + [{"id": it["id"], "action": "exclude"} for it in exclude],
        "reviewer": "ann",
    }
    answer = client.post(f"/api/runs/{run1}/decisions", json=body)
    assert answer.status_code == 200, answer.text
    decided = {d["id"]: d for d in answer.json()["recorded"]}
    assert len(decided) == 7
    log = _memory_log(db)
    assert len(log) >= 7

    # run 2's file: the same dataset (stem), rows shuffled, 40 new rows whose texts are not embedded yet
    extra = pd.read_csv(REPO / "data" / "sample_test.csv", dtype=str, keep_default_na=False).head(40)
    extra["id"] = "new-" + extra["id"]
    path = tmp_path / "batch" / "sample.csv"
    path.parent.mkdir()
    pd.concat([sample.sample(frac=1.0, random_state=7), extra], ignore_index=True).to_csv(path, index=False)
    env = {**_env(tmp_path), "LABELGATE_EMBED_CHUNK": "8"}
    out = tmp_path / "out"

    killed = Proc(_cmd(path, Path(db), out), env)  # killed while it embeds the new texts
    killed.wait_for_line("texts (committed)")
    killed.kill9()
    assert killed.popen.returncode == -signal.SIGKILL
    assert _memory_log(db)[: len(log)] == log

    killed = Proc(_cmd(path, Path(db), out), env)  # killed during export: it has carried the decisions and gated
    staging = _kill_during_export(killed, out)
    killed_id = staging.split(".staging-", 1)[0].lstrip(".")
    with store.connect(db, read_only=True) as con:
        carried = store.latest_decisions(con, killed_id).set_index("row_id").loc[list(decided)]
    assert set(carried["source"]) == {"memory"}  # the kill came after carry-memory
    assert _memory_log(db)[: len(log)] == log  # every entry there before run 2, unchanged

    summary = Proc(_cmd(path, Path(db), out), env).finish()  # run 3 completes
    assert summary["memory"]["carried"] == 7 and summary["memory"]["from_runs"] == {run1: 7}
    assert summary["memory"]["by_action"] == {"keep": 0, "relabel": 4, "exclude": 3}
    exported = _chat_export(summary)
    texts = dict(zip(sample["id"], sample["text"]))
    for rid, d in decided.items():
        if d["action"] == "relabel":
            assert exported[texts[rid]] == d["label"], rid
        else:
            assert texts[rid] not in exported, rid
    runs = _status(db)
    assert [s for r, (s, _) in sorted(runs.items()) if r != run1] == ["crashed", "crashed", "completed"]
    assert _memory_log(db)[: len(log)] == log
