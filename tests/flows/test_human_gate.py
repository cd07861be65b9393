"""The human gate for real: the curate flow pauses, a reviewer decides through the HTTP API, "finish" resumes it.

The flow runs in the test's main thread against the Prefect test harness and serves the review app
from a thread of this process (port 0: any free port); the "reviewer" is a second thread speaking HTTP.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import copy_db

from labelgate import store
from labelgate.config import CurateParams
from labelgate.flows.curate import curate
from labelgate.services import review

pytestmark = pytest.mark.flow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_review(port: int, timeout_s: float = 300.0) -> str:
    """Wait for the flow's review server on ``port``, then for its run to await review; return the base URL.

    Until the server is up this only tries TCP connects: no imports, no database, no locks, because the
    flow may meanwhile fork worker processes (cleanlab), and a fork while another thread holds a lock
    can deadlock the child.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"no review server came up on port {port}") from None
            time.sleep(0.2)
    base = f"http://127.0.0.1:{port}"
    while httpx.get(f"{base}/api/runs/latest/progress", timeout=30).json()["status"] != review.AWAITING_REVIEW:
        if time.monotonic() > deadline:
            raise AssertionError("the run never started waiting for a review")
        time.sleep(0.1)
    return base


def _in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = target()
        except BaseException as err:  # surfaced by the test after join
            box["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def _exported(metrics: dict[str, Any]) -> dict[str, str]:
    """user text -> assistant label over every exported chat example."""
    out = {}
    for path in metrics["export_files"]:
        for line in Path(path).read_text().splitlines():
            messages = json.loads(line)["messages"]
            user = next(m["content"] for m in messages if m["role"] == "user")
            out[user] = next(m["content"] for m in messages if m["role"] == "assistant")
    return out


def _texts(db: str, run_id: str) -> dict[str, str]:
    with store.connect(db) as con:
        return dict(store.valid_rows(con, run_id)[["row_id", "text"]].itertuples(index=False, name=None))


@pytest.fixture
def port(monkeypatch: pytest.MonkeyPatch) -> int:
    free = _free_port()
    monkeypatch.setenv("LABELGATE_REVIEW_PORT", str(free))
    return free


@pytest.fixture
def db(warm_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("LABELGATE_REVIEW_SERVE", raising=False)
    monkeypatch.delenv("LABELGATE_TOKEN", raising=False)
    return copy_db(warm_run, tmp_path)


def test_human_gate_pauses_and_the_reviewers_decisions_reach_the_export(
    db: str, port: int, tmp_path: Path, sample_csv: Path
) -> None:
    def reviewer() -> dict[str, Any]:
        base = _wait_for_review(port)
        run_id = httpx.get(f"{base}/api/runs/latest/progress", timeout=30).json()["run_id"]
        items = httpx.get(f"{base}/api/runs/latest/issues", timeout=30).json()["items"]
        relabel = next(it for it in items if it["suggested_label"] != it["given_label"])
        exclude = next(it for it in items if it["id"] != relabel["id"])
        for body in (
            {"id": relabel["id"], "action": "accept", "reviewer": "ann"},
            {"id": exclude["id"], "action": "exclude", "reviewer": "ann"},
        ):
            r = httpx.post(f"{base}/api/runs/latest/decisions", json=body, timeout=30)
            assert r.status_code == 200, r.text
        finish = httpx.post(
            f"{base}/api/runs/latest/finish", json={"action": "finish", "reviewer": "ann"}, timeout=60
        ).json()
        return {"run_id": run_id, "relabel": relabel, "exclude": exclude, "finish": finish, "base": base}

    thread, box = _in_thread(reviewer)
    metrics = curate(
        str(sample_csv),
        db_path=db,
        out_dir=str(tmp_path / "exports"),
        params=CurateParams(gate="human", review_timeout_s=600),
    )
    thread.join(60)
    assert "error" not in box, box.get("error")
    seen = box["result"]
    assert seen["run_id"] == metrics["run_id"]
    assert metrics["review_url"] == f"http://127.0.0.1:{port}/runs/{metrics['run_id']}"
    assert seen["finish"]["resumed"] is True

    assert metrics["gate"] == "human"
    assert metrics["decisions"] == {"keep": 0, "relabel": 1, "exclude": 1}
    assert metrics["review"]["reviewer"] == "ann" and metrics["review"]["timed_out"] is False
    exported = _exported(metrics)
    texts = _texts(db, metrics["run_id"])
    assert exported[texts[seen["relabel"]["id"]]] == seen["relabel"]["suggested_label"]
    assert texts[seen["exclude"]["id"]] not in exported
    assert metrics["exported_train"] + metrics["exported_val"] == metrics["rows_valid"] - 1

    with store.connect(db) as con:
        record = store.run_record(con, metrics["run_id"])
    assert record["status"] == "completed"
    manifest = json.loads(Path(metrics["manifest"]).read_text())
    assert manifest["gate"] == "human"
    assert manifest["decisions"]["by_source"]["human"] == {"relabel": 1, "exclude": 1}

    # Prefect really paused the flow run and the embedded server is gone again
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(UUID(record["prefect_flow_run_id"]))
    assert [s.type.value for s in states].count("PAUSED") == 1
    assert states[-1].type.value == "COMPLETED"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{seen['base']}/api/runs", timeout=5)


@pytest.mark.slow
def test_timeout_with_auto_applies_the_policy_and_keeps_human_decisions(
    db: str, port: int, tmp_path: Path, sample_csv: Path
) -> None:
    def reviewer() -> str:
        base = _wait_for_review(port)
        rid = httpx.get(f"{base}/api/runs/latest/issues?limit=1", timeout=30).json()["items"][0]["id"]
        body = {"id": rid, "action": "exclude", "reviewer": "ann"}
        assert httpx.post(f"{base}/api/runs/latest/decisions", json=body, timeout=30).status_code == 200
        return rid

    thread, box = _in_thread(reviewer)
    metrics = curate(
        str(sample_csv),
        db_path=db,
        out_dir=str(tmp_path / "exports"),
        params=CurateParams(gate="human", review_timeout_s=2, on_review_timeout="auto"),
    )
    thread.join(30)
    assert "error" not in box, box.get("error")
    rid = box["result"]
    assert metrics["review"]["timed_out"] is True and metrics["review"]["action"] == "auto"
    with store.connect(db) as con:
        latest = store.latest_decisions(con, metrics["run_id"]).set_index("row_id")
    assert (latest.loc[rid, "action"], latest.loc[rid, "source"]) == ("exclude", "human")
    assert len(latest) == metrics["rows_flagged"]  # every flagged row, any issue type
    assert set(latest.drop(index=rid)["source"]) == {"policy"}
    excluded = int((latest["action"] == "exclude").sum())  # the reviewer's one plus the policy's (duplicates, …)
    assert metrics["exported_train"] + metrics["exported_val"] == metrics["rows_valid"] - excluded


@pytest.mark.slow
def test_timeout_with_fail_fails_the_run_clearly_and_exports_nothing(
    db: str, port: int, tmp_path: Path, sample_csv: Path
) -> None:
    out = tmp_path / "exports"
    with pytest.raises(review.ReviewTimeoutError, match=r"nobody finished the review of run \S+ within 2 s"):
        curate(str(sample_csv), db_path=db, out_dir=str(out), params=CurateParams(gate="human", review_timeout_s=2))
    with store.connect(db) as con:
        run_id = store.resolve_run(con, "latest")
        record = store.run_record(con, run_id)
        exports = con.execute("SELECT count(*) FROM exports WHERE run_id = ?", [run_id]).fetchall()[0][0]
    assert record["status"] == "failed"
    assert "nothing was exported" in record["message"] and "labelgate export" in record["message"]
    assert exports == 0 and not (out / run_id).exists()


@pytest.mark.slow
def test_one_command_labelgate_run_gate_human_serves_the_page_and_exports(
    warm_run: dict, tmp_path: Path, sample_csv: Path
) -> None:
    """`labelgate run INPUT --gate human` in a real process: URL printed, page served, finish resumes."""
    db = copy_db(warm_run, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), LABELGATE_REVIEW_PORT="0")
    command = [sys.executable, "-m", "labelgate.cli", "run", str(sample_csv), "--gate", "human", "--db", db]
    proc = subprocess.Popen(
        [*command, "--json", "--out", str(tmp_path / "exports")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        url = None
        deadline = time.monotonic() + 300
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            if line.strip().startswith("open "):
                url = line.split()[1]
        assert url, f"no review URL printed; exit {proc.poll()}"
        page = httpx.get(url, timeout=30)
        assert page.status_code == 200 and "Finish review" in page.text
        base = url.rsplit("/runs/", 1)[0]
        first = httpx.get(f"{base}/api/runs/latest/issues?limit=1", timeout=30).json()["items"][0]
        r = httpx.post(f"{base}/api/runs/latest/decisions", json={"id": first["id"], "action": "exclude"}, timeout=30)
        assert r.status_code == 200
        assert httpx.post(f"{base}/api/runs/latest/finish", json={}, timeout=60).json()["resumed"] is True
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["decisions"] == {"keep": 0, "relabel": 0, "exclude": 1}
    assert summary["exported_train"] + summary["exported_val"] == warm_run["rows_valid"] - 1
