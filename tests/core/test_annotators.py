from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labelgate.core.annotators import consensus, disagreement_matrix, encode, majority_vote
from labelgate.errors import ValidationError

CLASSES = ["a", "b", "c"]


def _table(n_items: int = 120, seed: int = 0) -> tuple[pd.DataFrame, dict[str, str]]:
    """Hand-made crowd: 'perfect' is always right, 'random' picks uniformly, 'fair1'/'fair2' are 80% right."""
    rng = np.random.default_rng(seed)
    truth = {f"i{i}": CLASSES[i % 3] for i in range(n_items)}
    rows = []
    for item, true in truth.items():
        rows.append((item, "perfect", true))
        rows.append((item, "random", CLASSES[rng.integers(3)]))
        for name in ("fair1", "fair2"):
            said = true if rng.random() < 0.8 else CLASSES[rng.integers(3)]
            rows.append((item, name, said))
    return pd.DataFrame(rows, columns=["item_id", "annotator", "label"]), truth


def test_perfect_and_random_annotators_are_told_apart() -> None:
    table, truth = _table()
    result = consensus(table)
    quality = result.annotators.set_index("annotator")
    assert quality.loc["perfect", "quality"] > 0.9
    assert quality.loc["random", "quality"] < 0.5
    assert quality.loc["perfect", "quality"] > quality.loc["fair1", "quality"] > quality.loc["random", "quality"]
    assert (quality["n_labels"] == 120).all()
    assert (quality["quality_sd"] > 0).all() and (quality["quality_sd"] < 0.1).all()
    labels = result.items.set_index("item_id")["consensus_label"]
    assert (labels == pd.Series(truth)).mean() > 0.97
    assert np.allclose(result.posterior.sum(axis=1), 1.0)


def test_consensus_follows_the_reliable_annotator_where_majority_vote_cannot() -> None:
    table, _ = _table()
    # one more item: the perfect annotator says 'a', the random one 'b' (a 1-1 tie for majority vote)
    extra = pd.DataFrame([("tie", "perfect", "a"), ("tie", "random", "b")], columns=table.columns)
    result = consensus(pd.concat([table, extra], ignore_index=True))
    row = result.items.set_index("item_id").loc["tie"]
    assert row["consensus_label"] == "a"
    assert row["agreement"] == pytest.approx(0.5)
    assert row["n_labels"] == 2
    assert row["labels"] == {"perfect": "a", "random": "b"}


def test_tie_follows_the_model_prior_between_equal_strangers() -> None:
    # two annotators who labelled nothing else disagree: the model decides
    table = pd.DataFrame(
        [("x", "p", "a"), ("x", "q", "b"), ("y", "p", "b"), ("y", "q", "a")], columns=["item_id", "annotator", "label"]
    )
    probs = np.array([[0.2, 0.8], [0.9, 0.1]])
    result = consensus(table, model_probs=probs, classes=["a", "b"])
    labels = result.items.set_index("item_id")["consensus_label"].to_dict()
    assert labels == {"x": "b", "y": "a"}
    flipped = consensus(table, model_probs=probs[:, ::-1], classes=["a", "b"])
    assert flipped.items.set_index("item_id")["consensus_label"].to_dict() == {"x": "a", "y": "b"}


def test_majority_vote_ties_go_to_the_most_frequent_class() -> None:
    table = pd.DataFrame(
        [("1", "u", "b"), ("2", "u", "b"), ("3", "u", "a"), ("3", "v", "b"), ("4", "u", "c")],
        columns=["item_id", "annotator", "label"],
    )
    assert majority_vote(table).to_dict() == {"1": "b", "2": "b", "3": "b", "4": "c"}


def test_an_item_with_one_label() -> None:
    table, _ = _table(60)
    single = pd.DataFrame([("solo", "perfect", "c")], columns=table.columns)
    result = consensus(pd.concat([table, single], ignore_index=True))
    row = result.items.set_index("item_id").loc["solo"]
    assert row["consensus_label"] == "c"
    assert row["agreement"] == 1.0 and row["n_labels"] == 1
    assert row["consensus_quality"] > 0.9
    # the same single label from the random annotator is a weak consensus
    weak = pd.DataFrame([("solo", "random", "c")], columns=table.columns)
    row = consensus(pd.concat([table, weak], ignore_index=True)).items.set_index("item_id").loc["solo"]
    assert row["consensus_quality"] < 0.6


def test_few_labels_mean_more_uncertainty() -> None:
    table, _ = _table(150)
    item_number = table["item_id"].str[1:].astype(int)
    few = table[~((table["annotator"] == "fair2") & (item_number % 30 != 0))]
    quality = consensus(few).annotators.set_index("annotator")
    assert quality.loc["fair2", "n_labels"] < 10
    assert quality.loc["fair2", "quality_sd"] > 2 * quality.loc["fair1", "quality_sd"]


def test_model_probs_shape_and_labels_are_checked() -> None:
    table, _ = _table(9)
    with pytest.raises(ValidationError, match="expected \\(9, 3\\)"):
        consensus(table, model_probs=np.full((8, 3), 1 / 3))
    with pytest.raises(ValidationError, match="not among the classes"):
        encode(table, classes=["a", "b"])
    with pytest.raises(ValidationError, match="lack the column"):
        encode(table.rename(columns={"annotator": "who"}))


def test_disagreement_matrix_counts_every_label() -> None:
    table, truth = _table(30)
    matrix = disagreement_matrix(table, pd.Series(truth))
    assert int(matrix.to_numpy().sum()) == len(table)
    assert matrix.loc["a", "a"] >= 10  # the perfect annotator alone


def test_long_format_ingest_collapses_to_items_and_keeps_every_label(tmp_path) -> None:
    from labelgate.core.annotators import collapse_long
    from labelgate.core.ingest import read_dataset

    path = tmp_path / "long.csv"
    path.write_text(
        "id,text,who,label\n"
        "1,hello there,ann,polite\n"
        "1,hello there,bob,polite\n"
        "1,hello there,cy,rude\n"
        "2,go away,ann,rude\n"
        "2,go away,bob,\n"  # empty label: left out with a reason
        "2,go AWAY,cy,polite\n"  # text differs from the item's first text
        "2,go away,ann,polite\n"  # second label from the same annotator
        "3,fine,,polite\n"  # no annotator
    )
    result = read_dataset(path, annotator_col="who")
    assert len(result.rows) == 8 and list(result.annotators[:2]) == ["ann", "bob"]
    long = collapse_long(result.rows, result.annotators, broken_seqs=list(result.quarantine["seq"]))
    items = long.items.set_index("row_id")
    assert list(items.index) == ["1", "2", "3"]
    assert items.loc["1", "label"] == "polite" and items.loc["2", "label"] == "rude"
    assert items.loc["3", "label"] is None  # no usable label: validation quarantines the item
    reasons = long.annotations["reason"].dropna().tolist()
    assert len(reasons) == 4
    assert any(r.startswith("empty label") for r in reasons)
    assert any(r.startswith("text differs") for r in reasons)
    assert any(r.startswith("a second label") for r in reasons)
    assert "no annotator" in reasons
    assert len(long.usable) == 4


def test_missing_annotator_column_names_the_option(tmp_path) -> None:
    from labelgate.core.ingest import read_dataset
    from labelgate.errors import MissingColumnError

    path = tmp_path / "long.csv"
    path.write_text("id,text,label\n1,hi,a\n")
    with pytest.raises(MissingColumnError, match="--annotator-col"):
        read_dataset(path, annotator_col="annotator")


def test_wide_format_becomes_one_annotation_per_filled_cell(tmp_path) -> None:
    from labelgate.config import CurateParams
    from labelgate.services.inputs import read_input
    from labelgate.tasks.ingest import _wide

    path = tmp_path / "wide.csv"
    path.write_text("id,text,r1,r2,r3\n1,hello,pos,pos,neg\n2,bye,neg,,neg\n3,meh,,,\n")
    params = CurateParams(label_col="r1,r2,r3")
    assert params.multi_annotator and params.label_columns == ["r1", "r2", "r3"]
    first = read_input(str(path), params)
    long, n_labels, unparsed = _wide(str(path), params, first)
    assert (n_labels, unparsed) == (5, 0)
    assert long.items["row_id"].tolist() == ["1", "2", "3"]
    assert long.items["label"].tolist() == ["pos", "neg", None]
    usable = long.usable
    assert sorted(usable["annotator"].unique()) == ["r1", "r2", "r3"]
    assert usable.groupby("item_id").size().to_dict() == {"1": 3, "2": 2}
    assert usable["seq"].is_unique


def test_label_issues_are_the_items_with_an_unreliable_consensus() -> None:
    from labelgate.core.annotators import ISSUE_QUALITY, consensus_label_issues, relabel_queue

    table, _ = _table(60)
    extra = pd.DataFrame(
        [("split", "fair1", "a"), ("split", "fair2", "b"), ("solid", "perfect", "c"), ("solid", "fair1", "c")],
        columns=table.columns,
    )
    table = pd.concat([table, extra], ignore_index=True)
    probs = np.full((62, 3), 1 / 3)
    result = consensus(table, model_probs=probs)
    issues = consensus_label_issues(result, probs).set_index("row_id")
    assert issues.loc["split", "is_label_issue"] and not issues.loc["solid", "is_label_issue"]
    assert issues.loc["split", "label_score"] < ISSUE_QUALITY <= issues.loc["solid", "label_score"]
    split = issues.loc["split"]
    assert {split["suggested_label"], split["given_label"]} == {"a", "b"}
    assert issues.loc["split", "reason"].startswith("unreliable consensus")
    queue = relabel_queue(result, limit=3)
    assert queue["item_id"].iloc[0] == "split" and len(queue) == 3
