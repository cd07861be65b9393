"""The deployments of prefect.yaml for real: a local `prefect server start` (127.0.0.1, temporary PREFECT_HOME),
`labelgate deploy` (which runs `prefect deploy --all` from the checkout), a process worker, and runs of
`manual-curate` (paused for the human gate, finished through the review API) and `nightly-retrain` (a new batch
that passes the quality gate, then a corrupted batch it blocks: Failed, nothing exported, reason stored, webhook
posted). The runs' parameters override only the paths: every other setting is prefect.yaml's.

The tests share one server and worker and run in file order (the nightly batches compare with the manual run).
Every process started here (server, worker, and the flow-run processes under the worker) is ended in a finally.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, copy_db

from labelgate import store
from labelgate.services import reports

pytestmark = [pytest.mark.slow, pytest.mark.flow]

#: seconds to wait for one flow run to reach a state (the machine is shared: generous)
RUN_WAIT_S = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class Proc:
    """A subprocess in its own session, logging to a file; :meth:`stop` ends it, its group and its descendants."""

    def __init__(self, cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log = log
        self._fh = log.open("wb")
        self.popen = subprocess.Popen(
            cmd, env=env, cwd=str(cwd), stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self, wait_s: float = 15.0) -> None:
        below = _descendants(self.popen.pid)
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(wait_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        for pid in below:  # flow-run processes started by a worker live in sessions of their own
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._fh.close()

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


class Webhook:
    """Records the JSON bodies POSTed to it (a notification receiver on 127.0.0.1)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.bodies.append(json.loads(raw))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/labelgate"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait_health(api: str, server: Proc, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.popen.poll() is not None:
            raise AssertionError(f"prefect server exited:\n{server.tail()}")
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"prefect server not healthy after {timeout_s} s:\n{server.tail()}")


@pytest.fixture(scope="module")
def stack(warm_run: dict, sample_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Server, deployments, worker; the data files and a database whose embedding cache is warm."""
    folder = tmp_path_factory.mktemp("deploy")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    hook = Webhook()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LABELGATE_"))}
    env.update(
        {
            "PREFECT_HOME": str(folder / "prefect-home"),
            "PREFECT_API_URL": api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "LABELGATE_REVIEW_PORT": "0",
            "LABELGATE_NOTIFY_URL": hook.url,
            "LABELGATE_PROGRESS": "0",
            "GX_ANALYTICS_ENABLED": "false",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    base = pd.read_csv(sample_csv, dtype=str, keep_default_na=False)
    test = pd.read_csv(sample_csv.with_name("sample_test.csv"), dtype=str, keep_default_na=False)
    rng = np.random.default_rng(5)
    shuffled = base.copy()
    idx = rng.choice(len(base), int(0.7 * len(base)), replace=False)
    shuffled.loc[idx, "label"] = rng.permutation(shuffled.loc[idx, "label"].to_numpy())
    files = {"batch2": folder / "batch2.csv", "corrupted": folder / "corrupted.csv"}
    pd.concat([base.iloc[:360], test.iloc[:20]]).to_csv(files["batch2"], index=False)
    shuffled.to_csv(files["corrupted"], index=False)
    procs: list[Proc] = []
    try:
        server = Proc(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=folder,
            log=folder / "server.log",
        )
        procs.append(server)
        _wait_health(api, server)
        deployed = subprocess.run(
            [sys.executable, "-m", "labelgate.cli", "deploy", "--project", str(REPO), "--api-url", api],
            env=env,
            cwd=str(folder),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert deployed.returncode == 0, deployed.stderr + deployed.stdout
        worker = Proc(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", "labelgate-local"],
            env=env,
            cwd=folder,
            log=folder / "worker.log",
        )
        procs.append(worker)
        yield {
            "api": api,
            "db": copy_db(warm_run, folder),
            "out": folder / "exports",
            "files": files,
            "sample": str(sample_csv),
            "hook": hook,
            "deploy_output": deployed.stdout,
            "worker": worker,
            "runs": {},
        }
    finally:
        for proc in reversed(procs):
            proc.stop()
        hook.close()


def _run_deployment(stack: dict, name: str, input_path: str) -> str:
    dep = httpx.get(f"{stack['api']}/deployments/name/curate/{name}", timeout=30).json()
    body = {"parameters": {"input_path": input_path, "db_path": stack["db"], "out_dir": str(stack["out"])}}
    for attempt in range(4):  # a busy server's SQLite answers 503 (its transaction rolled back): ask again
        created = httpx.post(f"{stack['api']}/deployments/{dep['id']}/create_flow_run", json=body, timeout=30)
        if created.status_code != 503:
            break
        time.sleep(2 * (attempt + 1))
    assert created.status_code in (200, 201), created.text
    return str(created.json()["id"])


def _wait_state(stack: dict, flow_run_id: str, types: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_WAIT_S
    while time.monotonic() < deadline:
        run = httpx.get(f"{stack['api']}/flow_runs/{flow_run_id}", timeout=30).json()
        state = run.get("state") or {}
        if state.get("type") in types:
            return run
        if state.get("type") in {"FAILED", "CRASHED", "CANCELLED", "COMPLETED"} - types:
            raise AssertionError(
                f"flow run ended {state.get('type')}: {state.get('message')}\n{stack['worker'].tail()}"
            )
        time.sleep(2)
    raise AssertionError(f"flow run {flow_run_id} did not reach {types} in {RUN_WAIT_S} s\n{stack['worker'].tail()}")


def _labelgate_run(stack: dict, flow_run_id: str) -> dict[str, Any]:
    with store.connect(stack["db"], read_only=True, wait_s=120) as con:
        rows = con.execute("SELECT run_id FROM runs WHERE prefect_flow_run_id = ?", [flow_run_id]).fetchall()
        assert len(rows) == 1, rows
        run_id = rows[0][0]
        record = store.run_record(con, run_id)
        record["quality"] = reports.quality_record(con, run_id)
        record["exports"] = store.scalar(con, "SELECT count(*) FROM exports WHERE run_id = ?", [run_id])
        record["human_decisions"] = store.scalar(
            con, "SELECT count(*) FROM decisions WHERE run_id = ? AND source = 'human'", [run_id]
        )
    return record


def _artifact_keys(stack: dict, flow_run_id: str) -> dict[str, Any]:
    found = httpx.post(
        f"{stack['api']}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}},
        timeout=30,
    ).json()
    return {a["key"]: a for a in found if a.get("key")}


def test_the_deployments_of_prefect_yaml_are_registered(stack: dict) -> None:
    spec = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    for name in ("nightly-retrain", "manual-curate", "curate"):
        assert f"curate/{name}" in stack["deploy_output"]
        dep = httpx.get(f"{stack['api']}/deployments/name/curate/{name}", timeout=30).json()
        assert dep["work_pool_name"] == "labelgate-local"
        assert dep["parameters"]["params"] == spec[name]["parameters"]["params"]
        assert dep["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(REPO)
    nightly = httpx.get(f"{stack['api']}/deployments/name/curate/nightly-retrain", timeout=30).json()
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 2 * * *"]
    assert nightly["parameters"]["params"]["gate"] == "auto" and nightly["parameters"]["params"]["quality_gate"]
    manual = httpx.get(f"{stack['api']}/deployments/name/curate/manual-curate", timeout=30).json()
    assert manual["schedules"] == [] and manual["parameters"]["params"]["gate"] == "human"


def test_manual_curate_pauses_for_the_reviewer_and_exports_after_finish(stack: dict) -> None:
    flow_run_id = _run_deployment(stack, "manual-curate", stack["sample"])
    _wait_state(stack, flow_run_id, {"PAUSED"})
    run = _labelgate_run(stack, flow_run_id)
    assert run["status"] == "awaiting_review" and run["dataset"] == "support-tickets"
    base = run["metrics_json"]["review_url"].rsplit("/runs/", 1)[0]
    items = httpx.get(f"{base}/api/runs/{run['run_id']}/issues", timeout=30).json()["items"]
    pick = next(it for it in items if it["suggested_label"] != it["given_label"])
    decided = httpx.post(
        f"{base}/api/runs/{run['run_id']}/decisions",
        json={"id": pick["id"], "action": "accept", "reviewer": "deploy-test"},
        timeout=30,
    )
    assert decided.status_code == 200, decided.text
    finish = httpx.post(f"{base}/api/runs/{run['run_id']}/finish", json={"action": "finish"}, timeout=60)
    assert finish.status_code == 200 and finish.json()["resumed"] is True, finish.text
    done = _wait_state(stack, flow_run_id, {"COMPLETED"})
    assert done["state"]["type"] == "COMPLETED"
    run = _labelgate_run(stack, flow_run_id)
    assert run["status"] == "completed" and run["metrics_json"]["gate"] == "human"
    assert run["human_decisions"] == 1 and run["exports"] > 0
    assert (stack["out"] / run["run_id"] / "manifest.json").exists()
    assert run["quality"]["enforced"] is False and run["quality"]["baseline_run_id"] is None  # first version
    stack["runs"]["manual"] = run


def test_nightly_retrain_on_a_new_batch_reuses_embeddings_and_passes_the_gate(stack: dict) -> None:
    flow_run_id = _run_deployment(stack, "nightly-retrain", str(stack["files"]["batch2"]))
    _wait_state(stack, flow_run_id, {"COMPLETED"})
    run = _labelgate_run(stack, flow_run_id)
    metrics = run["metrics_json"]
    assert run["status"] == "completed" and run["dataset"] == "support-tickets"
    assert metrics["texts_embedded"] == 20 and metrics["texts_cached"] >= 340
    assert run["quality"]["enforced"] and run["quality"]["passed"]
    assert run["quality"]["baseline_run_id"] == stack["runs"]["manual"]["run_id"]
    assert run["exports"] > 0 and metrics["decisions"]
    keys = _artifact_keys(stack, flow_run_id)
    assert {
        "labelgate-summary",
        "labelgate-top-issues",
        "labelgate-quality",
        "labelgate-embedding-progress",
        "labelgate-review",
    } <= set(keys)
    assert float(keys["labelgate-embedding-progress"]["data"]) == 100.0
    stack["runs"]["batch2"] = run


def test_nightly_retrain_on_corrupted_data_is_blocked_failed_with_no_export(stack: dict) -> None:
    flow_run_id = _run_deployment(stack, "nightly-retrain", str(stack["files"]["corrupted"]))
    ended = _wait_state(stack, flow_run_id, {"FAILED"})
    assert "quality gate failed" in ended["state"]["message"]
    run = _labelgate_run(stack, flow_run_id)
    assert run["status"] == "failed" and "nothing exported: quality gate failed" in run["message"]
    assert run["exports"] == 0 and not (stack["out"] / run["run_id"]).exists()
    quality = run["quality"]
    assert quality["enforced"] and not quality["passed"]
    assert any("flagged as label issues" in r for r in quality["reasons"])
    assert quality["baseline_run_id"] == stack["runs"]["batch2"]["run_id"]
    keys = _artifact_keys(stack, flow_run_id)
    assert "Blocked by the quality gate" in keys["labelgate-summary"]["data"]
    deadline = time.monotonic() + 60  # the on-failure hook posts right after the state is set
    while not stack["hook"].bodies and time.monotonic() < deadline:
        time.sleep(1)
    (payload,) = stack["hook"].bodies
    assert payload["event"] == "quality_gate_failed" and payload["run_id"] == run["run_id"]
    assert payload["flow_run_url"] == stack["api"].removesuffix("/api") + f"/runs/flow-run/{flow_run_id}"
    with store.connect(stack["db"], read_only=True) as con:
        outcomes = {r["run_id"]: r["outcome"] for r in reports.run_history(con, dataset="support-tickets")}
    assert outcomes == {
        stack["runs"]["manual"]["run_id"]: "exported",
        stack["runs"]["batch2"]["run_id"]: "exported",
        run["run_id"]: "blocked",
    }


def test_the_schedule_queues_the_next_nightly_run(stack: dict) -> None:
    dep = httpx.get(f"{stack['api']}/deployments/name/curate/nightly-retrain", timeout=30).json()
    deadline = time.monotonic() + 120
    scheduled: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        scheduled = httpx.post(
            f"{stack['api']}/flow_runs/filter",
            json={
                "deployments": {"id": {"any_": [dep["id"]]}},
                "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
            },
            timeout=30,
        ).json()
        if scheduled:
            break
        time.sleep(3)
    assert scheduled, "the scheduler created no run for the nightly cron"
    times = sorted(r["expected_start_time"] for r in scheduled)
    assert all("T02:00:00" in t for t in times)
