"""A curate run of a long-format file (several annotators per item): consensus export, tables, the command."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from labelgate.cli import main
from tests.conftest import copy_db

pytestmark = pytest.mark.flow


def _long_file(sample_csv: Path, sample_truth: Path, dest: Path) -> tuple[Path, pd.Series]:
    """'ann' and 'bob' give the true label 90% of the time, 'eve' a random one; every item has 2-3 labels."""
    sample = pd.read_csv(sample_csv, dtype=str)
    truth = pd.read_csv(sample_truth, dtype=str).set_index("id")["true_label"]
    classes = sorted(truth.unique())
    rng = np.random.default_rng(0)
    rows = []
    for i, (rid, text) in enumerate(zip(sample["id"], sample["text"], strict=True)):
        true = truth[rid]
        for who in ("ann", "bob"):
            if who == "bob" and i % 3 == 0:
                continue
            said = true if rng.random() < 0.9 else classes[rng.integers(len(classes))]
            rows.append((rid, text, who, said))
        rows.append((rid, text, "eve", classes[rng.integers(len(classes))]))
    path = dest / "long.csv"
    pd.DataFrame(rows, columns=["id", "text", "annotator", "label"]).to_csv(path, index=False)
    return path, truth


def test_long_format_run_exports_the_consensus_and_lists_annotators(
    tmp_path: Path, warm_run: dict, sample_csv: Path, sample_truth: Path
) -> None:
    from labelgate.config import CurateParams
    from labelgate.flows.curate import curate

    path, truth = _long_file(sample_csv, sample_truth, tmp_path)
    db = copy_db(warm_run, tmp_path)  # the sample's embeddings are cached there
    params = CurateParams(annotator_col="annotator", gate="none", export_formats=["csv"])
    metrics = curate(str(path), db_path=db, out_dir=str(tmp_path / "out"), params=params)
    assert metrics["rows_in"] == len(truth)
    assert metrics["labels_in"] == len(pd.read_csv(path))
    assert metrics["consensus_items"] == metrics["rows_valid"] >= len(truth) - 5  # the sample's duplicates go

    con = duckdb.connect(db, read_only=True)
    consensus = con.execute("SELECT item_id, consensus_label FROM consensus WHERE run_id = ?", [metrics["run_id"]]).df()
    n_annotations = con.execute("SELECT count(*) FROM annotations WHERE run_id = ?", [metrics["run_id"]]).fetchall()
    con.close()
    assert n_annotations[0][0] == metrics["labels_in"]
    consensus = consensus.set_index("item_id")["consensus_label"]
    assert (consensus == truth.loc[consensus.index]).mean() > 0.9

    exported = pd.concat(pd.read_csv(f, dtype=str) for f in Path(metrics["export_dir"]).glob("*.csv"))
    assert exported["id"].is_unique and len(exported) == metrics["rows_valid"]
    assert (exported.set_index("id")["label"] == consensus.loc[exported["id"]].to_numpy()).all()

    res = CliRunner().invoke(main, ["annotators", "--db", db, "--run", "latest", "--format", "csv"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert [r["annotator"] for r in rows][-1] == "eve"  # best first: the random annotator is last
    assert {"annotator", "quality", "n_labels"} <= set(rows[0])
    quality = {r["annotator"]: float(r["quality"]) for r in rows}
    assert quality["ann"] > 0.8 and quality["eve"] < 0.5
    res = CliRunner().invoke(main, ["annotators", "--db", db, "--format", "json"])
    assert res.exit_code == 0 and len(json.loads(res.output)) == 3
    res = CliRunner().invoke(main, ["annotators", "--db", db, "--queue", "5", "--format", "csv"])
    assert res.exit_code == 0, res.output
    queue = list(csv.DictReader(io.StringIO(res.output)))
    assert len(queue) == 5
    qualities = [float(r["consensus_quality"]) for r in queue]
    assert qualities == sorted(qualities) and qualities[0] < 0.9


def test_low_agreement_items_are_excluded_with_their_reason(
    tmp_path: Path, prefect_harness: None, sample_csv: Path, sample_truth: Path
) -> None:
    """`labelgate run --annotator-col annotator --low-agreement exclude`: items whose three annotators all disagree
    (1 of 3 labels agree with any consensus) are not exported, and their decision says why."""
    from labelgate import store

    sample = pd.read_csv(sample_csv, dtype=str).head(160)
    truth = pd.read_csv(sample_truth, dtype=str).set_index("id")["true_label"]
    classes = sorted(truth.unique())
    split = set(sample["id"].iloc[5::20])  # 8 items: three annotators, three different labels
    rows = []
    for rid, text in zip(sample["id"], sample["text"], strict=True):
        true = truth[rid]
        others = [c for c in classes if c != true]
        said = [true, others[0], others[1]] if rid in split else [true, true, true]
        rows += [(rid, text, who, label) for who, label in zip(("ann", "bob", "cat"), said, strict=True)]
    path = tmp_path / "long.csv"
    pd.DataFrame(rows, columns=["id", "text", "annotator", "label"]).to_csv(path, index=False)
    db, out = str(tmp_path / "lg.duckdb"), str(tmp_path / "out")
    args = ["run", str(path), "--db", db, "--out", out, "--annotator-col", "annotator", "--format", "openai-chat,csv"]
    res = CliRunner().invoke(main, [*args, "--low-agreement", "exclude", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert "low agreement" in res.output and "excluded by the auto gate" in res.output

    with store.connect(db, read_only=True) as con:
        run_id = summary["run_id"]
        agreement = store.query_df(
            con, "SELECT item_id, agreement, n_labels FROM consensus WHERE run_id = ?", [run_id]
        ).set_index("item_id")
        decisions = store.latest_decisions(con, run_id).set_index("row_id")
        flagged = store.query_df(
            con, "SELECT row_id FROM issues WHERE run_id = ? AND issue_type = 'low_agreement' AND is_issue", [run_id]
        )
    low = set(agreement.index[(agreement["n_labels"] >= 2) & (agreement["agreement"] < 0.5)])
    assert split <= low and summary["low_agreement_items"] == len(low) == len(flagged)
    for rid in low:
        assert decisions.loc[rid, "action"] == "exclude" and decisions.loc[rid, "source"] == "policy"
        assert decisions.loc[rid, "reason"].startswith("low annotator agreement: 1 of 3 labels agree with consensus")
        assert decisions.loc[rid, "reason"].endswith("(min 0.5)")
    table = pd.read_csv(next(Path(summary["export_dir"]).glob("*.csv")), dtype=str).set_index("id")
    assert (table.loc[sorted(low), "action"] == "exclude").all() and table.loc[sorted(low), "label"].isna().all()
    trained = set()
    for f in Path(summary["export_dir"]).glob("*.jsonl"):
        for line in f.read_text(encoding="utf-8").splitlines():
            trained |= {m["content"] for m in json.loads(line)["messages"] if m["role"] == "user"}
    texts = sample.set_index("id")["text"]
    assert not trained & set(texts.loc[sorted(low)])
    assert len(trained) >= len(agreement) - len(low) - 10  # the agreeing items stay (bar the policy's other rules)
