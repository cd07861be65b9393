"""export_run on a copy of the warmed database: leakage safety, manifest lineage, atomic and safe writes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_db

from labelgate import store
from labelgate.config import CurateParams
from labelgate.errors import ConfigError, ExportError
from labelgate.services.export import MANIFEST, ExportResult, clean_stale_staging, export_run, verify_manifest

pytestmark = pytest.mark.flow

ALL = ["openai-chat", "openai-completion", "hf-messages", "alpaca", "vertex-gemini", "bedrock-claude", "csv", "parquet"]


def _valid(db: str, run_id: str) -> pd.DataFrame:
    with store.connect(db, read_only=True) as con:
        return store.valid_rows(con, run_id)


def _exported_texts(result: ExportResult) -> set[str]:
    texts = set()
    for path in result.export_files:
        if path.endswith(".jsonl") and ".openai-chat." in path:
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                texts.add(json.loads(line)["messages"][1]["content"])
    return texts


def test_test_rows_and_flagged_twins_never_reach_the_files(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    run_id = warm_run["run_id"]
    valid = _valid(db, run_id)
    flagged, same_text = valid["row_id"].iloc[[5, 6]].tolist(), valid.iloc[8]
    with store.connect(db) as con, store.transaction(con):
        for rid in flagged:  # what the leakage detector writes for near-twins of test rows
            con.execute(
                "INSERT INTO issues (run_id, row_id, issue_type, score, is_issue, reason) "
                "VALUES (?, ?, 'leakage', 0.97, true, 'near-duplicate of a test row')",
                [run_id, rid],
            )
        con.execute(  # a human decision does not bring a leaked row back
            "INSERT INTO decisions (run_id, row_id, action, label, source) "
            "VALUES (?, ?, 'relabel', 'billing', 'human')",
            [run_id, flagged[0]],
        )
    test = tmp_path / "test.csv"
    pd.DataFrame(
        {"text": [f"  {same_text['text'].upper()} ", "a text not in train"], "label": ["billing", "account"]}
    ).to_csv(test, index=False)
    for gate in ("none", "auto"):
        out = tmp_path / f"out-{gate}"
        params = CurateParams(gate=gate, test_path=str(test), export_formats=["openai-chat", "csv"])
        result = export_run(db, run_id, str(out), params, apply=gate != "none")
        leaked = set(valid.loc[valid["row_id"].isin([*flagged, same_text["row_id"]]), "text"])
        assert not leaked & _exported_texts(result)
        assert result.leakage_excluded == 3
        assert result.leakage_flagged == 2 and result.leakage_text_match == 1
        assert result.exported_train + result.exported_val == len(valid) - result.excluded
        manifest = json.loads(Path(result.manifest).read_text())
        assert manifest["counts"]["leakage_excluded"] == 3
        assert manifest["decisions"]["by_source"]["leakage"] == {"exclude": 3}
        assert manifest["test"]["rows"] == 2
        table = pd.read_csv(Path(result.export_dir) / "cleaned.csv", dtype=str, keep_default_na=False)
        leaked_rows = table[table["source"] == "leakage"]
        assert sorted(leaked_rows["id"]) == sorted([*flagged, same_text["row_id"]])
        assert set(leaked_rows["split"]) == {"excluded"} and set(leaked_rows["label"]) == {""}


def test_manifest_records_lineage_and_matches_every_file(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    params = CurateParams(export_formats=ALL, price_per_mtok=8.0, label_map={"billing": "Billing"})
    result = export_run(db, warm_run["run_id"], str(tmp_path / "out"), params)
    folder = Path(result.export_dir)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert verify_manifest(folder) == []
    assert sorted(p.name for p in folder.iterdir()) == sorted([f["name"] for f in manifest["files"]] + [MANIFEST])
    assert len(manifest["files"]) == 14  # 6 JSONL formats x 2 splits + csv + parquet
    for entry in manifest["files"]:
        data = (folder / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        if entry["name"].endswith(".jsonl"):
            assert data.count(b"\n") == entry["lines"] == entry["records"]
            assert entry["records"] == getattr(result, f"exported_{entry['split']}")
    with store.connect(db, read_only=True) as con:
        run = store.run_record(con, warm_run["run_id"])
        rows = con.execute(
            "SELECT path, sha256, lines FROM exports WHERE run_id = ? AND starts_with(path, ?)",
            [warm_run["run_id"], str(folder.resolve())],
        ).fetchall()
    assert manifest["input_sha256"] == run["input_sha256"] and manifest["dataset_version"] == run["dataset_version"]
    assert manifest["counts"]["rows_in"] == 400
    assert manifest["counts"]["exported"] == manifest["counts"]["exported_train"] + manifest["counts"]["exported_val"]
    assert manifest["decisions"]["by_source"]["policy"]["relabel"] == manifest["counts"]["relabelled"]
    assert manifest["thresholds"]["relabel_threshold"] == 0.5
    assert manifest["model"]["embedding"] and manifest["model"]["detector"]
    assert manifest["templates"]["label_map"] == {"billing": "Billing"}
    assert manifest["tokenizer"]["name"] == "cl100k_base"
    cost = manifest["checks"]["train.openai-chat.jsonl"]["stats"]["cost"]
    assert cost["default_epochs"] == 3 and cost["estimated_cost"] > 0
    assert sorted(r[0] for r in rows) == sorted(result.export_files)
    assert all(r[1] == hashlib.sha256(Path(r[0]).read_bytes()).hexdigest() for r in rows)
    assert oct((folder / "train.alpaca.jsonl").stat().st_mode & 0o777) != "0o600"


def test_reexport_writes_a_new_version_and_never_touches_the_earlier_files(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    out = tmp_path / "out"
    first = {"export_dir": str(out / warm_run["run_id"])}  # version 1: (a copy of) the flow's export
    shutil.copytree(warm_run["export_dir"], first["export_dir"])
    before = {p.name: p.read_bytes() for p in Path(first["export_dir"]).iterdir()}
    second = export_run(db, warm_run["run_id"], str(out), CurateParams(export_formats=["bedrock-claude"]))
    third = export_run(db, warm_run["run_id"], str(out), CurateParams(export_formats=["bedrock-claude"]))
    folder = Path(second.export_dir)
    assert folder.name == f"{warm_run['run_id']}-v2" and second.export_version == 2
    assert Path(third.export_dir).name == f"{warm_run['run_id']}-v3"
    assert sorted(p.name for p in folder.iterdir()) == [
        MANIFEST,
        "train.bedrock-claude.jsonl",
        "val.bedrock-claude.jsonl",
    ]
    assert {p.name: p.read_bytes() for p in Path(first["export_dir"]).iterdir()} == before  # byte for byte
    assert sorted(p.name for p in out.iterdir()) == [
        warm_run["run_id"],
        f"{warm_run['run_id']}-v2",
        f"{warm_run['run_id']}-v3",
    ]  # no staging folders left behind
    manifest = json.loads((Path(third.export_dir) / MANIFEST).read_text())
    assert manifest["export_version"] == 3
    assert manifest["earlier_exports"] == [warm_run["export_dir"], str(folder)]  # as recorded in the database
    with store.connect(db, read_only=True) as con:
        rows = con.execute(
            "SELECT version, format FROM exports WHERE run_id = ? ORDER BY version", [warm_run["run_id"]]
        ).fetchall()
    assert {v for v, _ in rows} == {1, 2, 3}  # every export stays recorded (the flow's, then two more)
    assert {f for v, f in rows if v == 1} == {"openai-chat"} and {f for v, f in rows if v == 2} == {"bedrock-claude"}


def test_a_failed_check_writes_nothing_and_keeps_the_previous_export(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    out = tmp_path / "out"
    first = export_run(db, warm_run["run_id"], str(out), CurateParams())
    before = {p: Path(p).read_bytes() for p in [*first.export_files, first.manifest]}
    listed = sorted(e.name for e in out.iterdir())
    with pytest.raises(ExportError, match=r"train.openai-chat.jsonl failed the openai-chat checks: line 1: about"):
        export_run(db, warm_run["run_id"], str(out), CurateParams(max_example_tokens=10))
    assert {p: Path(p).read_bytes() for p in before} == before
    assert sorted(e.name for e in out.iterdir()) == listed  # the files written chunk by chunk went with the staging
    with pytest.raises(ExportError, match="failed"):
        export_run(db, warm_run["run_id"], str(tmp_path / "fresh" / "nested"), CurateParams(min_train_examples=5000))
    assert not (tmp_path / "fresh").exists()  # nor are the folders it had to create


def test_another_runs_folder_is_never_overwritten(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    folder = tmp_path / "out" / warm_run["run_id"]
    folder.mkdir(parents=True)
    (folder / MANIFEST).write_text(json.dumps({"run_id": "20990101T000000-abcdef"}))
    with pytest.raises(ExportError, match="holds the export of run '20990101T000000-abcdef'"):
        export_run(db, warm_run["run_id"], str(tmp_path / "out"), CurateParams())
    (folder / MANIFEST).unlink()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="already holds files but no labelgate manifest"):
        export_run(db, warm_run["run_id"], str(tmp_path / "out"), CurateParams())
    assert (folder / "notes.txt").read_text() == "mine"


def test_a_missing_test_file_is_an_error(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    with pytest.raises(ConfigError, match=r"test file .*nope\.csv' does not exist"):
        export_run(db, warm_run["run_id"], str(tmp_path / "out"), CurateParams(test_path=str(tmp_path / "nope.csv")))


def test_staging_folders_of_ended_runs_are_removed_and_a_running_runs_are_kept(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    out = tmp_path / "out"
    with store.connect(db) as con:
        done = store.resolve_run(con, "latest")
        con.execute(
            "INSERT INTO runs (run_id, dataset, input_path, params_json, status, started_at) "
            "SELECT 'r-live', dataset, input_path, params_json, 'running', current_timestamp "
            "FROM runs WHERE run_id = ?",
            [done],
        )
    stale = [out / f".{done}.staging-abc", out / f".{done}.old-xyz"]
    live = out / ".r-live.staging-def"
    other = out / ".not-a-run.staging-1"
    for folder in [*stale, live, other]:
        folder.mkdir(parents=True)
        (folder / "train.jsonl").write_text("{}\n")
    removed = clean_stale_staging(db, out)
    assert sorted(removed) == sorted(p.name for p in stale)
    assert live.exists() and other.exists()  # still running, or unknown to this database: left alone
    assert clean_stale_staging(db, tmp_path / "missing") == []
