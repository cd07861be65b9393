"""The curate flow with several export formats and a held-out test file: export, leakage safety, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, copy_db

from labelgate import store
from labelgate.config import CurateParams
from labelgate.flows.curate import curate
from labelgate.services.export import verify_manifest

pytestmark = pytest.mark.flow


def _artifact_keys(flow_run_id: str) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key for a in found}


def test_run_with_test_file_exports_every_format_and_evaluates(
    warm_run: dict, tmp_path: Path, sample_csv: Path
) -> None:
    db = copy_db(warm_run, tmp_path)
    sample = pd.read_csv(sample_csv, dtype=str, keep_default_na=False)
    test = tmp_path / "test.csv"  # the held-out file plus five rows copied from the training input
    pd.concat([pd.read_csv(REPO / "data" / "sample_test.csv", dtype=str), sample.iloc[10:15]]).to_csv(test, index=False)
    params = CurateParams(test_path=str(test), export_formats=["openai-chat", "vertex-gemini", "parquet"])
    m = curate(str(sample_csv), db_path=db, out_dir=str(tmp_path / "out"), params=params)
    assert m["leakage_excluded"] >= 5
    assert verify_manifest(m["export_dir"]) == []
    assert [Path(p).name for p in m["export_files"]] == [
        "train.openai-chat.jsonl",
        "val.openai-chat.jsonl",
        "train.vertex-gemini.jsonl",
        "val.vertex-gemini.jsonl",
        "cleaned.parquet",
    ]
    exported = {
        json.loads(line)["messages"][1]["content"]
        for p in m["export_files"][:2]
        for line in Path(p).read_text(encoding="utf-8").splitlines()
    }
    assert not exported & set(sample["text"].iloc[10:15])
    ev = m["evaluation"]
    assert ev["n_test"] == 125 and ev["leakage_excluded"] == m["leakage_excluded"]
    assert list(ev["trainers"]) == ["proxy", "proxy-c4"]
    assert ev["trainers"]["proxy"]["raw"]["n_train"] == m["rows_valid"] - m["leakage_excluded"]
    with store.connect(db, read_only=True) as con:
        run = store.run_record(con, m["run_id"])
        n_eval = store.scalar(con, "SELECT count(*) FROM evaluations WHERE run_id = ?", [m["run_id"]])
    assert run["status"] == "completed" and n_eval == 4  # two trainers x raw, cleaned
    assert {"labelgate-evaluation", "labelgate-evaluation-summary"} <= _artifact_keys(run["prefect_flow_run_id"])


@pytest.mark.slow
def test_politeness_before_after_evaluation(politeness_dir: Path, prefect_harness: None, tmp_path: Path) -> None:
    params = CurateParams(test_path=str(politeness_dir / "test.csv"), gate="auto")
    m = curate(
        str(politeness_dir / "train.csv"),
        db_path=str(tmp_path / "p.duckdb"),
        out_dir=str(tmp_path / "out"),
        params=params,
    )
    ev = m["evaluation"]
    assert ev["n_test"] == 1117
    for c in ev["trainers"].values():
        assert c["raw"]["n_train"] == m["rows_valid"] - m["leakage_excluded"]
        assert 0.4 < c["raw"]["accuracy"] < 0.8 and 0.4 < c["cleaned"]["accuracy"] < 0.8
        assert set(c["cleaned"]["per_class_f1"]) == {"impolite", "neutral", "polite"}
