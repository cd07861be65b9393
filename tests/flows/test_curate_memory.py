"""Curation memory end to end: a person's decisions on run 1 (through the API) are applied by run 2 of the same
dataset (10% new rows appended, rows shuffled), none of them is queued for review again, the summary counts them
as carried, and run 1's export files stay byte for byte what they were."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, copy_db
from fastapi.testclient import TestClient

from labelgate import store
from labelgate.config import CurateParams
from labelgate.flows.curate import curate
from labelgate.services import reports, review
from labelgate.services.export import export_run
from labelgate.web.app import create_app

pytestmark = pytest.mark.flow


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _exported(metrics: dict) -> dict[str, str]:
    """user text -> assistant label over the run's exported chat examples."""
    out = {}
    for path in metrics["export_files"]:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            messages = json.loads(line)["messages"]
            user = next(m["content"] for m in messages if m["role"] == "user")
            out[user] = next(m["content"] for m in messages if m["role"] == "assistant")
    return out


@pytest.fixture(scope="module")
def scenario(warm_run: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run 1 (the warm run); 20 relabels and 5 exclusions through the API; run 2 on the grown, shuffled file."""
    base = tmp_path_factory.mktemp("memory")
    db = copy_db(warm_run, base)
    run1 = warm_run["run_id"]
    run1_folder = base / "exports" / run1  # (a copy of) run 1's export, where run 2 and the re-export also write
    shutil.copytree(warm_run["export_dir"], run1_folder)
    before = _digests(run1_folder)

    client = TestClient(create_app(db, reviewer="ann"))
    items = client.get(f"/api/runs/{run1}/issues").json()["items"]
    with store.connect(db) as con:
        classes = review.run_classes(con, run1)
    sample = pd.read_csv(REPO / "data" / "sample.csv", dtype=str, keep_default_na=False)
    once = set(sample["text"].drop_duplicates(keep=False))  # rows told apart by their text in the export files
    items = [it for it in items if it["text"] in once]
    label_rows = [it for it in items if "label" in it["issue_types"]]
    relabel = label_rows[:20]
    exclude = [it for it in items if it["id"] not in {r["id"] for r in relabel}][:5]
    body = {
        "decisions": [
            {"id": it["id"], "action": "relabel", "label": next(c for c in classes if c != it["given_label"])}
            for it in relabel
        ]
        + [{"id": it["id"], "action": "exclude"} for it in exclude],
        "reviewer": "ann",
        "note": "checked by hand",
    }
    answer = client.post(f"/api/runs/{run1}/decisions", json=body)
    assert answer.status_code == 200, answer.text
    decided = {d["id"]: d for d in answer.json()["recorded"]}
    assert sum(d["action"] == "relabel" for d in decided.values()) == 20
    assert sum(d["action"] == "exclude" for d in decided.values()) == 5

    # a re-export of run 1 after the review: a new folder, the first one untouched
    again = export_run(db, run1, str(base / "exports"), CurateParams(**warm_run_params(db, run1)))

    # run 2: the same file, rows shuffled, 10% new rows (the held-out sample, new ids) appended
    extra = pd.read_csv(REPO / "data" / "sample_test.csv", dtype=str, keep_default_na=False).head(40)
    extra["id"] = "new-" + extra["id"]
    grown = pd.concat([sample.sample(frac=1.0, random_state=7), extra], ignore_index=True)
    path = base / "batch" / "sample.csv"  # the same stem: the same dataset
    path.parent.mkdir()
    grown.to_csv(path, index=False)
    metrics = curate(str(path), db_path=db, out_dir=str(base / "exports"), params=CurateParams())
    texts = dict(zip(sample["id"], sample["text"]))
    return {
        "db": db,
        "run1": run1,
        "run1_folder": run1_folder,
        "warm_export_dir": warm_run["export_dir"],
        "before": before,
        "reexport": again,
        "decided": decided,
        "texts": texts,
        "metrics": metrics,
        "new_ids": set(extra["id"]),
    }


def warm_run_params(db: str, run_id: str) -> dict:
    with store.connect(db, read_only=True) as con:
        return store.run_record(con, run_id)["params_json"]


def test_run_2_applies_every_decision_a_person_made_on_run_1(scenario: dict) -> None:
    exported = _exported(scenario["metrics"])
    texts = scenario["texts"]
    for rid, d in scenario["decided"].items():
        if d["action"] == "relabel":
            assert exported[texts[rid]] == d["label"], rid
        else:
            assert texts[rid] not in exported, rid
    with store.connect(scenario["db"], read_only=True) as con:
        latest = store.latest_decisions(con, scenario["metrics"]["run_id"]).set_index("row_id")
    carried = latest.loc[list(scenario["decided"])]
    assert set(carried["source"]) == {"memory"} and set(carried["reviewer"]) == {"ann"}
    assert carried["reason"].str.startswith(f"remembered from run {scenario['run1']} (human ann)").all()


def test_none_of_the_decided_rows_is_queued_for_review_again(scenario: dict) -> None:
    run2 = scenario["metrics"]["run_id"]
    with store.connect(scenario["db"], read_only=True) as con:
        queue = review.review_items(con, run2, filters=review.ReviewFilters(status="undecided"))
        items = review.review_items(con, run2, filters=review.ReviewFilters(scope="all")).set_index("id")
        prog = review.review_progress(con, run2)
    assert not set(queue["id"]) & set(scenario["decided"])
    assert items.loc[list(scenario["decided"]), "carried"].all()
    # what is new: the appended rows, and only them
    assert set(items.index[items["new"]]) == scenario["new_ids"] & set(items.index)
    assert len(scenario["new_ids"] & set(items.index)) >= 38
    assert prog.carried_total == 25
    assert prog.remaining == prog.flagged - prog.carried - prog.reviewed


def test_summary_runs_and_manifest_count_the_carried_decisions(scenario: dict) -> None:
    m = scenario["metrics"]
    run1 = scenario["run1"]
    assert m["memory"]["carried"] == 25
    assert m["memory"]["by_action"] == {"keep": 0, "relabel": 20, "exclude": 5}
    assert m["memory"]["from_runs"] == {run1: 25}
    assert m["memory"]["rows_new"] == m["rows_valid"] - m["memory"]["rows_seen"] >= 38
    manifest = json.loads(Path(m["manifest"]).read_text(encoding="utf-8"))
    assert manifest["memory"]["carried"] == 25 and manifest["memory"]["from_runs"] == {run1: 25}
    assert manifest["decisions"]["by_source"]["memory"] == {"relabel": 20, "exclude": 5}
    assert manifest["thresholds"]["exclude_below_chance"] is False
    assert manifest["settings"]["exclude_below_chance"] is False
    with store.connect(scenario["db"], read_only=True) as con:
        history = {r["run_id"]: r for r in reports.run_history(con)}
    assert history[m["run_id"]]["carried"] == 25 and history[m["run_id"]]["carried_from"] == {run1: 25}


def test_run_1_export_files_are_untouched_and_a_reexport_is_a_new_folder(scenario: dict) -> None:
    assert _digests(scenario["run1_folder"]) == scenario["before"]
    again = Path(scenario["reexport"].export_dir)
    assert again.name == f"{scenario['run1']}-v2" and scenario["reexport"].export_version == 2
    manifest = json.loads((again / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["earlier_exports"] == [str(Path(scenario["warm_export_dir"]))]  # as the database recorded it
    assert manifest["decisions"]["by_source"]["human"] == {"relabel": 20, "exclude": 5}
    with store.connect(scenario["db"], read_only=True) as con:
        versions = store.query_df(con, "SELECT DISTINCT version FROM exports WHERE run_id = ?", [scenario["run1"]])
    assert sorted(versions["version"].fillna(1).astype(int)) == [1, 2]
