"""`labelgate evaluate` from the command line: the tables of every trainer, JSON, option errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO, copy_db

from labelgate import store
from labelgate.cli import main

pytestmark = pytest.mark.flow


def test_evaluate_prints_every_trainer_side_by_side(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    test = str(REPO / "data" / "sample_test.csv")
    res = CliRunner().invoke(main, ["evaluate", "--db", db, "--test", test])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "2 trainer(s) trained on raw vs cleaned rows, scored on 120 test rows" in lines[0]
    top = next(i for i, line in enumerate(lines) if line.startswith("trainer "))
    assert [line.split()[0] for line in lines[top + 1 : top + 3]] == ["proxy", "proxy-c4"]
    assert "strongly regularised" in lines[top + 3] and lines[top + 4].startswith("  proxy-c4: the same features, C=4")
    headers = [i for i, line in enumerate(lines) if line.split() == ["raw", "cleaned", "delta"]]
    assert len(headers) == 2  # one per-class table per trainer, each under its name and model
    assert lines[headers[0] - 1].startswith("proxy: tfidf") and lines[headers[1] - 1].startswith("proxy-c4: tfidf")
    metrics = [line.split()[0] for line in lines[headers[0] + 1 : headers[0] + 8]]
    assert metrics == ["train", "accuracy", "macro-F1", "F1", "F1", "F1", "F1"]


def test_evaluate_json_holds_every_trainer_asked_for(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    test = str(REPO / "data" / "sample_test.csv")
    res = CliRunner().invoke(main, ["evaluate", "--db", db, "--test", test, "--trainer", "proxy,proxy-c4", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["run_id"] == warm_run["run_id"] and out["n_test"] == 120
    assert set(out) >= {"trainers", "test_sha256", "test_path", "leakage_excluded"}
    assert list(out["trainers"]) == ["proxy", "proxy-c4"]
    for name, c in out["trainers"].items():
        assert c["trainer"] == name and set(c) >= {"raw", "cleaned", "model", "n_test", "details"}
        assert 0.5 < c["raw"]["accuracy"] <= 1 and c["cleaned"]["seconds"] > 0
    res = CliRunner().invoke(main, ["evaluate", "--db", db, "--test", test, "--trainer", "proxy-c4", "--json"])
    out = json.loads(res.output.strip().splitlines()[-1])
    assert list(out["trainers"]) == ["proxy-c4"]  # only what was asked for (the database keeps both)


def test_evaluate_with_an_unknown_trainer_names_the_option(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    res = CliRunner().invoke(main, ["evaluate", "--db", db, "--trainer", "proxy,roberta"])
    assert res.exit_code == 2
    assert res.output.strip() == (
        "labelgate: error: --trainer: unknown trainer 'roberta'; choose from: proxy, proxy-c4, finetune"
    )


def test_evaluate_without_a_test_file_says_how(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    res = CliRunner().invoke(main, ["evaluate", "--db", db])
    assert res.exit_code == 2
    assert res.output.strip() == (
        "labelgate: error: no test file: pass --test FILE (a held-out file with the same columns as the input)"
    )


def test_run_checks_the_trainer_options_before_any_work(tmp_path: Path) -> None:
    db = str(tmp_path / "never.duckdb")
    sample = str(REPO / "data" / "sample.csv")
    res = CliRunner().invoke(main, ["run", sample, "--db", db, "--trainer", "proxy,gpt"])
    assert res.exit_code == 2
    assert (
        res.output.strip()
        == "labelgate: error: --trainer: unknown trainer 'gpt'; choose from: proxy, proxy-c4, finetune"
    )
    res = CliRunner().invoke(main, ["run", sample, "--db", db, "--trainer", "finetune", "--finetune-epochs", "0"])
    assert res.exit_code == 2 and res.output.startswith("labelgate: error: --finetune-epochs: Input should be greater")
    assert not Path(db).exists()


@pytest.mark.slow
def test_evaluate_with_the_finetune_trainer_stores_it_next_to_the_proxy(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    test = str(REPO / "data" / "sample_test.csv")
    args = ["evaluate", "--db", db, "--test", test, "--trainer", "finetune,proxy", "--finetune-epochs", "0.1"]
    res = CliRunner().invoke(main, [*args, "--finetune-max-seconds", "600", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    ft = out["trainers"]["finetune"]
    assert list(out["trainers"]) == ["finetune", "proxy"] and ft["n_test"] == 120
    # 10% of ceil(400 / 32) = 13 steps per epoch -> 2 steps, on both sides
    assert (ft["details"]["steps"], ft["details"]["stopped_by"]) == (2, "epochs")
    assert ft["model"].startswith("fine-tuned sentence-transformers/all-MiniLM-L6-v2") and "600 s" in ft["model"]
    with store.connect(db, read_only=True) as con:
        latest = store.latest_evaluations(con, warm_run["run_id"])
    assert latest["trainer"].tolist() == ["finetune", "proxy"] and (latest["seconds"] > 0).all()
