"""The quality-gate task inside the real curate flow: blocked batches end Failed with no export, the reason is
stored and published; an incremental batch reuses cached embeddings and is compared with the previous version.

One module-scoped history on a copy of the warm run (dataset ``sample``): a clean incremental batch, three
corrupted batches (shuffled labels, mostly blank texts, a vanished class) and a shuffled batch with the gate off.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import copy_db

from labelgate import store
from labelgate.config import CurateParams
from labelgate.flows.curate import curate
from labelgate.services import reports

pytestmark = pytest.mark.flow


def _write(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


def batches(sample_csv: Path, folder: Path) -> dict[str, str]:
    """The corrupted and incremental batches of the sample, as CSV files in ``folder``."""
    base = pd.read_csv(sample_csv, dtype=str, keep_default_na=False)
    test = pd.read_csv(sample_csv.with_name("sample_test.csv"), dtype=str, keep_default_na=False)
    rng = np.random.default_rng(7)
    shuffled = base.copy()
    idx = rng.choice(len(base), int(0.7 * len(base)), replace=False)
    shuffled.loc[idx, "label"] = rng.permutation(shuffled.loc[idx, "label"].to_numpy())
    blank = base.copy()
    blank.loc[rng.choice(len(base), int(0.6 * len(base)), replace=False), "text"] = "   "
    billing = base.index[base["label"] == "billing"]
    shifted = base.drop(billing[10:])
    return {
        "incremental": _write(pd.concat([base.iloc[:-40], test.iloc[:20]], ignore_index=True), folder / "batch2.csv"),
        "shuffled": _write(shuffled, folder / "shuffled.csv"),
        "blank": _write(blank, folder / "blank.csv"),
        "shifted": _write(shifted, folder / "shifted.csv"),
    }


def _run(path: str, db: str, out: Path, **params: Any) -> dict[str, Any]:
    state = curate(
        path, db_path=db, out_dir=str(out), params=CurateParams(dataset="sample", **params), return_state=True
    )
    with store.connect(db, read_only=True) as con:
        run_id = store.resolve_run(con, "latest")
        record = store.run_record(con, run_id)
        quality = reports.quality_record(con, run_id)
        exports = store.scalar(con, "SELECT count(*) FROM exports WHERE run_id = ?", [run_id])
    return {
        "state": state,
        "run_id": run_id,
        "record": record,
        "quality": quality,
        "exports": exports,
        "flow_run_id": state.state_details.flow_run_id,
    }


@pytest.fixture(scope="module")
def history(warm_run: dict, sample_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("quality")
    db = copy_db(warm_run, folder)
    out = folder / "exports"
    files = batches(sample_csv, folder)
    runs = {
        "incremental": _run(files["incremental"], db, out, quality_gate=True),
        "shuffled": _run(files["shuffled"], db, out, quality_gate=True),
        "blank": _run(files["blank"], db, out, quality_gate=True),
        "shifted": _run(files["shifted"], db, out, quality_gate=True),
        "gate_off": _run(files["shuffled"], db, out, quality_gate=False),
    }
    return {"db": db, "out": out, "warm": warm_run, **runs}


def _artifacts(flow_run_id: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def test_incremental_batch_reuses_cached_embeddings_and_compares_with_the_previous_version(history: dict) -> None:
    run = history["incremental"]
    assert run["state"].is_completed()
    metrics = run["record"]["metrics_json"]
    assert metrics["texts_embedded"] == 20  # only the 20 new texts
    assert metrics["texts_cached"] >= 350
    quality = run["quality"]
    assert quality["enforced"] and quality["passed"]
    assert quality["baseline_run_id"] == history["warm"]["run_id"]
    assert run["exports"] > 0


def test_shuffled_labels_block_the_run_failed_with_no_export(history: dict) -> None:
    run = history["shuffled"]
    state = run["state"]
    assert state.is_failed()
    assert "quality gate failed" in state.message and "flagged as label issues" in state.message
    rec = run["record"]
    assert rec["status"] == "failed"
    assert rec["message"].startswith(f"run {run['run_id']} of dataset 'sample' stopped, nothing exported: quality")
    assert run["exports"] == 0
    assert not (history["out"] / run["run_id"]).exists()
    quality = run["quality"]
    assert quality["enforced"] and not quality["passed"]
    assert [c["name"] for c in quality["checks"] if c["passed"] is False] == ["label_issue_rate"]
    assert rec["metrics_json"]["quality"]["reasons"] == quality["reasons"]
    assert "decisions" not in rec["metrics_json"]  # stopped before the gate


def test_blocked_run_publishes_the_reason_as_artifacts(history: dict) -> None:
    arts = _artifacts(history["shuffled"]["flow_run_id"])
    assert {"labelgate-quality", "labelgate-summary"} <= set(arts)
    reason = history["shuffled"]["quality"]["reasons"][0]
    assert "**Blocked**" in arts["labelgate-quality"].data and reason in arts["labelgate-quality"].data
    assert "Blocked by the quality gate, nothing exported" in arts["labelgate-summary"].data
    assert "labelgate-review" not in arts  # nothing to review


def test_mostly_blank_texts_block_on_the_quarantine_rate(history: dict) -> None:
    run = history["blank"]
    assert run["state"].is_failed() and run["exports"] == 0
    (reason,) = run["quality"]["reasons"]
    assert reason.startswith("240 of 400 rows quarantined (60.0%) exceeds limit 20.0%")


def test_label_shift_is_measured_against_the_previous_completed_version(history: dict) -> None:
    run = history["shifted"]
    assert run["state"].is_failed() and run["exports"] == 0
    quality = run["quality"]
    # the blocked batches in between never become the baseline
    assert quality["baseline_run_id"] == history["incremental"]["run_id"]
    failed = [c for c in quality["checks"] if c["passed"] is False]
    assert [c["name"] for c in failed] == ["label_shift_kl"]
    assert failed[0]["value"] > 0.1 and "billing" in failed[0]["detail"]


def test_with_the_gate_off_the_verdict_is_recorded_and_the_run_exports(history: dict) -> None:
    run = history["gate_off"]
    assert run["state"].is_completed()
    assert run["exports"] > 0
    assert run["quality"]["enforced"] is False and run["quality"]["passed"] is False
    assert run["record"]["status"] == "completed"


def test_completed_runs_publish_embedding_progress_and_review_link(history: dict) -> None:
    arts = _artifacts(history["incremental"]["flow_run_id"])
    progress = arts["labelgate-embedding-progress"]
    assert progress.type == "progress" and float(progress.data) == 100.0
    assert "embedded 20 of 20 new texts" in progress.description
    link = arts["labelgate-review"]
    run_id = history["incremental"]["run_id"]
    assert link.data.startswith(f"[Review run {run_id}](http") and link.data.endswith(f"/runs/{run_id})")
    assert "**Passed**" in arts["labelgate-quality"].data


def test_runs_json_lists_every_run_with_metrics_and_outcome(history: dict) -> None:
    from labelgate.cli import main

    res = CliRunner().invoke(main, ["runs", "--db", history["db"], "--json", "--dataset", "sample"])
    assert res.exit_code == 0, res.output
    runs = json.loads(res.output)
    by_id = {r["run_id"]: r for r in runs}
    outcomes = [by_id[history[k]["run_id"]]["outcome"] for k in ("incremental", "shuffled", "blank", "shifted")]
    assert outcomes == ["exported", "blocked", "blocked", "blocked"]
    assert by_id[history["gate_off"]["run_id"]]["outcome"] == "exported"
    assert by_id[history["warm"]["run_id"]]["outcome"] == "exported"
    blocked = by_id[history["blank"]["run_id"]]
    assert blocked["quarantine_rate"] == 0.6 and blocked["exported_train"] is None
    assert blocked["quality"]["reasons"] == history["blank"]["quality"]["reasons"]
    first = by_id[history["incremental"]["run_id"]]
    assert first["texts_embedded"] == 20
    # the policy's counts as the flow returned them (not only "a number"): keep/relabel/exclude, some rows decided
    stored = history["incremental"]["record"]["metrics_json"]  # the run's metrics, as the flow returned them
    assert first["decisions"] == stored["decisions"] and sum(first["decisions"].values()) > 0
    assert first["duration_s"] > 0 and first["metrics"]["rows_in"] == first["rows_in"] == 380
    table = CliRunner().invoke(main, ["runs", "--db", history["db"]])
    assert "blocked" in table.output and "quality gate: 240 of 400 rows quarantined" in table.output
