"""Notifications against a real HTTP server on 127.0.0.1 started by the test: the webhook client, and the
curate flow's on-failure hook posting when the quality gate blocks a run."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import copy_db

from labelgate import store
from labelgate.config import CurateParams
from labelgate.errors import ConfigError
from labelgate.services import notify


class Hook:
    """A webhook receiver: records every POST and answers with the queued status codes (then 200)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"nope")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/labelgate?token=s3cret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_post_webhook_sends_the_payload_as_json(hook: Hook) -> None:
    assert notify.post_webhook(hook.url, {"text": "hello", "n": 1}) == 200
    (req,) = hook.received
    assert req["path"] == "/hooks/labelgate?token=s3cret"
    assert req["headers"]["Content-Type"] == "application/json"
    assert json.loads(req["body"]) == {"text": "hello", "n": 1}


def test_a_5xx_answer_is_retried_once(hook: Hook) -> None:
    hook.statuses = [503]
    assert notify.post_webhook(hook.url, {"text": "x"}) == 200
    assert len(hook.received) == 2


def test_a_4xx_answer_raises_without_retry_and_hides_the_query(hook: Hook) -> None:
    hook.statuses = [404]
    with pytest.raises(notify.NotifyError) as err:
        notify.post_webhook(hook.url, {"text": "x"})
    assert len(hook.received) == 1
    assert "HTTP 404" in str(err.value) and "s3cret" not in str(err.value)


def test_an_unreachable_webhook_raises() -> None:
    with pytest.raises(notify.NotifyError, match="did not take the notification"):
        notify.post_webhook(f"http://127.0.0.1:{_closed_port()}/x", {"text": "x"}, timeout_s=2)


@pytest.mark.parametrize("url", ["ftp://example.org/x", "hooks.example.org/x", "http://"])
def test_only_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(ConfigError, match="LABELGATE_NOTIFY_URL must be an http"):
        notify.check_url(url)


def test_nothing_is_sent_without_a_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(notify.URL_ENV, raising=False)
    assert notify.notify_failed_run(str(tmp_path / "none.duckdb"), "0000") is None
    with pytest.raises(ConfigError, match="LABELGATE_NOTIFY_ON"):
        notify.notify_failed_run(str(tmp_path / "none.duckdb"), "0000", url="http://127.0.0.1:9/x", on="sometimes")


# --- the flow's hook, for real ---------------------------------------------------------------------


@pytest.fixture
def db(warm_run: dict, tmp_path: Path) -> str:
    return copy_db(warm_run, tmp_path)


def _shuffled(sample_csv: Path, folder: Path) -> str:
    frame = pd.read_csv(sample_csv, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(3)
    idx = rng.choice(len(frame), int(0.7 * len(frame)), replace=False)
    frame.loc[idx, "label"] = rng.permutation(frame.loc[idx, "label"].to_numpy())
    path = folder / "shuffled.csv"
    frame.to_csv(path, index=False)
    return str(path)


def test_the_flow_hook_posts_when_the_quality_gate_blocks_a_run(
    hook: Hook, db: str, tmp_path: Path, sample_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labelgate.flows.curate import curate

    monkeypatch.setenv(notify.URL_ENV, hook.url)
    monkeypatch.delenv(notify.ON_ENV, raising=False)
    monkeypatch.setenv("PREFECT_UI_URL", "http://127.0.0.1:4200")
    notify.prefect_ui_url.cache_clear()
    try:
        state = curate(
            _shuffled(sample_csv, tmp_path),
            db_path=db,
            out_dir=str(tmp_path / "out"),
            params=CurateParams(dataset="sample", quality_gate=True),
            return_state=True,
        )
    finally:
        notify.prefect_ui_url.cache_clear()
    assert state.is_failed()
    with store.connect(db, read_only=True) as con:
        run_id = store.resolve_run(con, "latest")
        reasons = json.loads(store.scalar(con, "SELECT reasons FROM quality WHERE run_id = ?", [run_id]))
    (payload,) = hook.payloads()
    flow_run_id = str(state.state_details.flow_run_id)
    assert payload["event"] == "quality_gate_failed"
    assert payload["run_id"] == run_id and payload["dataset"] == "sample"
    assert payload["reasons"] == reasons and "flagged as label issues" in reasons[0]
    assert payload["flow_run_id"] == flow_run_id
    assert payload["flow_run_url"] == f"http://127.0.0.1:4200/runs/flow-run/{flow_run_id}"
    assert payload["state"] == "Failed"
    assert payload["text"].startswith(f"labelgate: quality gate blocked run {run_id} of dataset 'sample'")
    assert {c["name"] for c in payload["checks"]} >= {"quarantine_rate", "label_issue_rate", "label_shift_kl"}


def test_other_failures_notify_only_when_asked(
    hook: Hook, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labelgate.flows.curate import curate

    one_class = tmp_path / "one_class.csv"
    pd.DataFrame({"text": [f"message number {i}" for i in range(20)], "label": "billing"}).to_csv(one_class)
    monkeypatch.setenv(notify.URL_ENV, hook.url)
    monkeypatch.delenv(notify.ON_ENV, raising=False)
    quiet = curate(str(one_class), db_path=db, out_dir=str(tmp_path / "o"), return_state=True)
    assert quiet.is_failed() and hook.received == []

    monkeypatch.setenv(notify.ON_ENV, "failed")
    loud = curate(str(one_class), db_path=db, out_dir=str(tmp_path / "o"), return_state=True)
    assert loud.is_failed()
    (payload,) = hook.payloads()
    assert payload["event"] == "run_failed" and payload["reasons"] == []
    assert "class" in payload["message"] and payload["text"].startswith("labelgate: run ")


def test_an_unreachable_webhook_never_changes_the_run(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labelgate.flows.curate import curate

    one_class = tmp_path / "one_class.csv"
    pd.DataFrame({"text": [f"message number {i}" for i in range(20)], "label": "billing"}).to_csv(one_class)
    monkeypatch.setenv(notify.URL_ENV, f"http://127.0.0.1:{_closed_port()}/hook")
    monkeypatch.setenv(notify.ON_ENV, "failed")
    state = curate(str(one_class), db_path=db, out_dir=str(tmp_path / "o"), return_state=True)
    assert state.is_failed() and "class" in state.message
