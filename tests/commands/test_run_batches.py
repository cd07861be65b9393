"""`labelgate run incoming/` and `labelgate run 'incoming/*.csv'`: a folder of nightly batch files is one input,
the dataset is the folder, and a night with one new batch embeds only its new texts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import REPO, copy_db

from labelgate import store
from labelgate.cli import main

pytestmark = pytest.mark.flow


def _run(args: list[str]) -> dict:
    res = CliRunner().invoke(main, ["run", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output.strip().splitlines()[-1])


def test_a_folder_of_batches_is_one_run_and_a_new_batch_embeds_only_its_texts(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)  # the sample's texts are cached
    sample = pd.read_csv(REPO / "data" / "sample.csv", dtype=str, keep_default_na=False)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    sample.iloc[200:].to_csv(incoming / "2026-12-02.csv", index=False)  # written first, read second
    sample.iloc[:200].to_csv(incoming / "2026-12-01.csv", index=False)
    (incoming / "README.md").write_text("nightly batches land here\n", encoding="utf-8")
    out = str(tmp_path / "exports")

    night1 = _run([f"{incoming}/", "--db", db, "--out", out])
    assert night1["rows_in"] == 400 and night1["texts_embedded"] == 0
    with store.connect(db, read_only=True) as con:
        run = store.run_record(con, night1["run_id"])
    assert run["dataset"] == "incoming"
    files = run["metrics_json"]["input_files"]
    assert [(Path(f["path"]).name, f["rows"], f["first_seq"]) for f in files] == [
        ("2026-12-01.csv", 200, 0),
        ("2026-12-02.csv", 200, 200),
    ]

    extra = pd.read_csv(REPO / "data" / "sample_test.csv", dtype=str, keep_default_na=False).head(40)
    extra.assign(id="new-" + extra["id"]).to_csv(incoming / "2026-12-03.csv", index=False)
    night2 = _run([f"{incoming}/*.csv", "--db", db, "--out", out])
    assert night2["rows_in"] == 440
    assert 0 < night2["texts_embedded"] <= 40 and night2["texts_cached"] >= 394
    assert night2["memory"]["rows_new"] >= 38  # only the new batch's rows are new to the dataset 'incoming'
    with store.connect(db, read_only=True) as con:
        assert store.run_record(con, night2["run_id"])["dataset"] == "incoming"


def test_batch_errors_name_the_pattern_and_the_files(tmp_path: Path) -> None:
    db = str(tmp_path / "x.duckdb")
    res = CliRunner().invoke(main, ["run", f"{tmp_path}/incoming/*.csv", "--db", db])
    assert res.exit_code == 2
    (line,) = [x for x in res.output.splitlines() if x.startswith("labelgate: error:")]
    assert f"INPUT pattern '{tmp_path}/incoming/*.csv' matches no file" in line

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "a.csv").write_text("id,text,label\n1,hi,x\n2,yo,y\n", encoding="utf-8")
    (incoming / "b.csv").write_text("id,text,category\n3,hey,x\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["run", str(incoming), "--db", db])
    assert res.exit_code == 2
    (line,) = [x for x in res.output.splitlines() if x.startswith("labelgate: error:")]
    assert f"'{incoming / 'b.csv'}'" in line and "label column 'label' not found" in line
    assert not Path(db).exists()  # stopped before any run started
