"""The curate flow end to end on the bundled sample, with the real embedding model, under Prefect's test harness."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_db

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.metrics import STAGES, RunMetrics, stage_sum
from labelgate.errors import ValidationError
from labelgate.flows.curate import SUMMARY_KEYS, curate

pytestmark = pytest.mark.flow


def _jsonl(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def test_counts_reconcile_and_every_stage_is_stored(warm_run: dict) -> None:
    m = warm_run
    assert set(SUMMARY_KEYS) <= set(m)
    assert m["rows_in"] == 400
    assert m["rows_valid"] + m["rows_quarantined"] == m["rows_in"]
    assert m["rows_quarantined"] >= 3  # two blank texts and one empty label in the sample
    with store.connect(m["db_path"], read_only=True) as con:
        run = store.run_record(con, m["run_id"])
        q = store.query_df(con, "SELECT row_id, reason FROM quarantine WHERE run_id = ?", [m["run_id"]])
        n_pred = store.scalar(con, "SELECT count(*) FROM predictions WHERE run_id = ?", [m["run_id"]])
        n_valid = store.scalar(con, "SELECT count(*) FROM valid_rows WHERE run_id = ?", [m["run_id"]])
        gx = store.scalar(con, "SELECT result_json FROM validations WHERE run_id = ?", [m["run_id"]])
        sources = {r[0] for r in con.execute("SELECT source FROM decisions WHERE run_id = ?", [m["run_id"]]).fetchall()}
    assert run["status"] == "completed" and run["prefect_flow_run_id"]
    assert run["input_sha256"] == hashlib.sha256(Path(run["input_path"]).read_bytes()).hexdigest()
    reasons = dict(zip(q["row_id"], q["reason"]))
    assert reasons["t0220"] == "text is blank" and reasons["t0037"] == "label is missing"
    assert n_pred == n_valid == m["rows_valid"]
    assert json.loads(gx)  # the Great Expectations result is kept
    assert sources == {"policy"}


def test_every_stage_records_its_seconds_within_the_run_wall_time(warm_run: dict) -> None:
    stages = warm_run["seconds_by_stage"]
    ran = {"ingest", "validate", "embed", "layers", "detect", "quality", "memory", "gate", "export"}
    assert ran <= set(stages) <= set(STAGES) | {k for k in stages if k.startswith("detect.")}
    assert "evaluate" not in stages and "annotators" not in stages  # no --test, one annotator: they did not run
    assert all(v >= 0 for v in stages.values())
    assert stages["embed"] > 0 and stages["detect"] > 0 and stages["layers"] > 0
    # detect's parts: the label rule (with the fits), neighbours, and each member's out-of-fold fits
    members = {"embedding", "words", "chars", "layers"}
    assert {"detect.label", "detect.neighbours"} | {f"detect.fit.{m}" for m in members} <= set(stages)
    assert sum(stages[f"detect.fit.{m}"] for m in members) <= stages["detect.label"] + 0.01
    assert stage_sum(stages) <= warm_run["seconds"] + 0.01
    with store.connect(warm_run["db_path"], read_only=True) as con:
        stored = RunMetrics.from_json(store.run_record(con, warm_run["run_id"])["metrics_json"])
    assert stored.seconds_by_stage == stages and stored.seconds == warm_run["seconds"]


def test_detection_finds_most_injected_errors(warm_run: dict, sample_truth: Path) -> None:
    truth = pd.read_csv(sample_truth, dtype=str, keep_default_na=False)
    errors = set(truth.loc[truth["is_label_error"] == "True", "id"])
    with store.connect(warm_run["db_path"], read_only=True) as con:
        flagged = {
            r[0]
            for r in con.execute(
                "SELECT row_id FROM issues WHERE run_id = ? AND issue_type = 'label' AND is_issue",
                [warm_run["run_id"]],
            ).fetchall()
        }
    hits = len(errors & flagged)
    assert hits / len(errors) >= 0.6, f"recall {hits}/{len(errors)}"
    assert hits / len(flagged) >= 0.6, f"precision {hits}/{len(flagged)}"


def test_export_files_are_valid_chat_examples_matching_the_manifest(warm_run: dict) -> None:
    manifest = json.loads(Path(warm_run["manifest"]).read_text())
    assert manifest["run_id"] == warm_run["run_id"]
    classes = {"billing", "technical", "shipping", "account"}
    total = 0
    for entry in manifest["files"]:
        path = Path(warm_run["export_dir"]) / entry["name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        examples = _jsonl(str(path))
        assert len(examples) == entry["lines"]
        for ex in examples:
            roles = [msg["role"] for msg in ex["messages"]]
            assert roles == ["system", "user", "assistant"]
            assert ex["messages"][2]["content"] in classes
            assert ex["messages"][1]["content"].strip()
        total += len(examples)
    assert total == warm_run["exported_train"] + warm_run["exported_val"]
    assert warm_run["exported_val"] >= 4  # every class is represented in validation


def test_a_second_run_embeds_nothing_and_exports_identical_files(
    warm_run: dict, tmp_path: Path, sample_csv: Path
) -> None:
    db = copy_db(warm_run, tmp_path)
    m2 = curate(str(sample_csv), db_path=db, out_dir=str(tmp_path / "out"), params=CurateParams())
    assert m2["run_id"] != warm_run["run_id"]
    assert m2["texts_embedded"] == 0
    assert m2["texts_cached"] == warm_run["texts_embedded"] + warm_run["texts_cached"]
    for a, b in zip(sorted(warm_run["export_files"]), sorted(m2["export_files"])):
        assert Path(a).name == Path(b).name
        assert Path(a).read_bytes() == Path(b).read_bytes()
    with store.connect(db, read_only=True) as con:
        assert store.scalar(con, "SELECT count(*) FROM runs") == 2


def test_gate_none_exports_the_given_labels(warm_run: dict, tmp_path: Path, sample_csv: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    m = curate(str(sample_csv), db_path=db, out_dir=str(tmp_path / "out"), params=CurateParams(gate="none"))
    sample = pd.read_csv(sample_csv, dtype=str, keep_default_na=False)
    given: dict[str, set[str]] = {}
    for text, label in zip(sample["text"], sample["label"].str.strip()):
        given.setdefault(text, set()).add(label)
    examples = [ex for f in m["export_files"] for ex in _jsonl(f)]
    assert len(examples) == m["rows_valid"]
    for ex in examples:  # every exported label is the one given for that text
        assert ex["messages"][2]["content"] in given[ex["messages"][1]["content"]]
    with store.connect(db, read_only=True) as con:
        assert store.scalar(con, "SELECT count(*) FROM decisions WHERE run_id = ?", [m["run_id"]]) == 0


def test_table_level_failure_stops_the_run_and_records_why(prefect_harness: None, tmp_path: Path) -> None:
    f = tmp_path / "one_class.csv"
    f.write_text("text,label\n" + "".join(f"message number {i},only\n" for i in range(20)))
    db = str(tmp_path / "f.duckdb")
    with pytest.raises(ValidationError, match=r"2 classes|at least 2"):
        curate(str(f), db_path=db, out_dir=str(tmp_path / "out"), params=CurateParams())
    with store.connect(db, read_only=True) as con:
        status, message = con.execute("SELECT status, message FROM runs").fetchall()[0]
    assert status == "failed" and "class" in message
    assert not (tmp_path / "out").exists()


def test_the_run_publishes_prefect_artifacts(warm_run: dict) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with store.connect(warm_run["db_path"], read_only=True) as con:
        flow_run_id = store.run_record(con, warm_run["run_id"])["prefect_flow_run_id"]
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)]))
        )
    by_key = {a.key: a for a in arts}
    assert {"labelgate-summary", "labelgate-top-issues"} <= set(by_key)
    assert warm_run["run_id"] in by_key["labelgate-summary"].data
    rows = (
        json.loads(by_key["labelgate-top-issues"].data)
        if isinstance(by_key["labelgate-top-issues"].data, str)
        else by_key["labelgate-top-issues"].data
    )
    assert rows and {"row_id", "given_label", "suggested_label", "label_score"} <= set(rows[0])
