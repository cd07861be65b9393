"""The curate flow's failure hook posts to the webhook (tests/test_notify.py tests the webhook helpers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import copy_db
from test_notify import Hook, _closed_port

from labelgate import store
from labelgate.config import CurateParams
from labelgate.services import notify

pytestmark = pytest.mark.flow


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


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
