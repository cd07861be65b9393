"""Likely mislabelled vs ambiguous label issues and the review queue's order (labelgate.core.ambiguity), on hand-made
probability arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labelgate.core.ambiguity import (
    AMBIGUITY_THRESHOLD,
    AMBIGUOUS,
    LABEL_KINDS,
    MISLABELLED,
    UNSURE_BELOW,
    ambiguity_scores,
    issue_type_names,
    kind_counts,
    label_kinds,
    queue_order,
    queue_severity,
)
from labelgate.core.detect import LABEL_ISSUE_COLUMNS, Probabilities, find_label_issues
from labelgate.core.issues import ISSUE_COLUMNS, issue_rows, label_issue_rows

pytestmark = pytest.mark.unit

#: three rows given class 0: a confident disagreement, a near tie, no disagreement
ADJUSTED = np.array(
    [
        [0.02, 0.95, 0.03],  # given 0, suggested 1 with a wide margin
        [0.45, 0.50, 0.05],  # given 0, suggested 1 by a hair
        [0.80, 0.10, 0.10],  # given 0 and suggested 0
    ]
)
LABELS = np.array([0, 0, 0])
SUGGESTED = ADJUSTED.argmax(axis=1)


def test_a_confident_disagreement_scores_far_less_ambiguous_than_a_near_tie() -> None:
    amb = ambiguity_scores(adjusted=ADJUSTED, labels=LABELS, suggested=SUGGESTED)
    assert amb.shape == (3,)
    # row 0: the tie is 0.02 / 0.95, the suggestion is sure (unsureness 0.4 / (2 * 0.95)): the larger part counts
    assert amb[0] == pytest.approx(UNSURE_BELOW / (2 * 0.95)) and amb[0] < AMBIGUITY_THRESHOLD
    assert amb[1] == pytest.approx(0.45 / 0.50)  # a near tie
    assert amb[2] == 1.0  # nothing to disagree about
    assert ((amb >= 0) & (amb <= 1)).all()
    kinds = label_kinds(ambiguity=amb, flags=np.array([True, True, False]))
    assert kinds.tolist() == [MISLABELLED, AMBIGUOUS, None]
    # the clearer error also gets the higher queue severity, and each kind keeps its own side of 0.5
    severity = queue_severity(label_scores=ADJUSTED[[0, 1], 0], kinds=kinds[:2])
    assert severity[0] > 0.5 >= severity[1]


def test_the_threshold_splits_the_kinds_and_is_checked() -> None:
    amb = np.array([0.0, AMBIGUITY_THRESHOLD - 1e-9, AMBIGUITY_THRESHOLD, 1.0])
    flags = np.ones(4, dtype=bool)
    assert label_kinds(ambiguity=amb, flags=flags).tolist() == [MISLABELLED, MISLABELLED, AMBIGUOUS, AMBIGUOUS]
    assert label_kinds(ambiguity=amb, flags=flags, threshold=1.0).tolist() == [MISLABELLED] * 3 + [AMBIGUOUS]
    with pytest.raises(ValueError, match="threshold"):
        label_kinds(ambiguity=amb, flags=flags, threshold=1.5)
    with pytest.raises(ValueError, match="shape"):
        label_kinds(ambiguity=amb, flags=flags[:3])
    with pytest.raises(ValueError, match="n_rows"):
        ambiguity_scores(adjusted=ADJUSTED, labels=LABELS[:2], suggested=SUGGESTED)


def test_an_unsure_suggestion_is_ambiguous_even_when_the_given_label_has_no_support() -> None:
    """Many classes: the given label has almost nothing, but neither has the suggestion (0.2 < UNSURE_BELOW)."""
    adjusted = np.array([[0.001, 0.2, 0.19, 0.18, 0.429], [0.001, 0.9, 0.03, 0.03, 0.039]])
    amb = ambiguity_scores(adjusted=adjusted, labels=np.array([0, 0]), suggested=np.array([4, 1]))
    assert amb[0] == pytest.approx(UNSURE_BELOW / (2 * 0.429)) and amb[1] == pytest.approx(UNSURE_BELOW / 1.8)
    unsure = ambiguity_scores(adjusted=adjusted, labels=np.array([0, 0]), suggested=np.array([1, 1]))
    assert unsure[0] == 1.0  # a suggestion at 0.2: unsureness 0.4 / 0.4
    kinds = label_kinds(ambiguity=np.r_[unsure[0], amb[1]], flags=np.ones(2, bool))
    assert kinds.tolist() == [AMBIGUOUS, MISLABELLED]


def test_zero_probabilities_do_not_divide_by_zero() -> None:
    adjusted = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    amb = ambiguity_scores(adjusted=adjusted, labels=np.array([0, 0]), suggested=np.array([1, 1]))
    assert amb.tolist() == [1.0, UNSURE_BELOW / 2]  # both zero: no evidence; the given label at 0: a clear error


def test_the_queue_lists_mislabelled_rows_first_each_kind_by_label_score() -> None:
    scores = np.array([0.30, 0.05, 0.20, 0.10, 0.40, 0.01])
    kinds = np.array([MISLABELLED, AMBIGUOUS, MISLABELLED, None, AMBIGUOUS, None], dtype=object)
    flags = np.array([True, True, True, True, True, False])  # the last row is not flagged
    order = queue_order(label_scores=scores, kinds=kinds, flags=flags)
    assert order.tolist() == [3, 2, 0, 1, 4]  # kindless rows rank with the mislabelled ones
    # sorting by queue severity (descending) gives the same order
    severity = queue_severity(label_scores=scores, kinds=kinds)
    by_severity = sorted(np.flatnonzero(flags), key=lambda i: (-severity[i], scores[i]))
    assert by_severity == order.tolist()
    assert queue_order(label_scores=scores, kinds=kinds, flags=np.zeros(6, bool)).shape == (0,)


def test_ties_keep_the_input_order() -> None:
    order = queue_order(
        label_scores=np.array([0.2, 0.2, 0.2]), kinds=np.array([AMBIGUOUS, MISLABELLED, AMBIGUOUS]), flags=np.ones(3)
    )
    assert order.tolist() == [1, 0, 2]


def test_counts_and_names() -> None:
    assert kind_counts(kinds=[AMBIGUOUS, None, float("nan"), MISLABELLED, AMBIGUOUS]) == {
        MISLABELLED: 1,
        AMBIGUOUS: 2,
    }
    assert list(kind_counts(kinds=[AMBIGUOUS, MISLABELLED])) == list(LABEL_KINDS)
    assert kind_counts(kinds=[]) == {}
    assert issue_type_names(["label", "near_duplicate"], MISLABELLED) == [
        "label (likely mislabelled)",
        "near_duplicate",
    ]
    assert issue_type_names(["label"], None) == ["label"]


def _probabilities(probs: np.ndarray, labels: np.ndarray) -> Probabilities:
    return Probabilities(probs=probs, classes=["a", "b", "c"], labels=labels, method="hand-made")


def test_find_label_issues_classifies_every_flagged_row_and_only_those() -> None:
    rng = np.random.default_rng(0)
    n = 60
    labels = np.repeat([0, 1, 2], n // 3)
    probs = np.full((n, 3), 0.2)
    probs[np.arange(n), labels] = 0.6  # clean rows
    probs[0] = [0.01, 0.98, 0.01]  # labelled a, clearly b
    probs[1] = [0.37, 0.62, 0.01]  # labelled a, b but a nearly as likely
    probs += rng.uniform(0, 0.01, probs.shape)
    probs /= probs.sum(axis=1, keepdims=True)
    found = find_label_issues([f"r{i}" for i in range(n)], _probabilities(probs, labels))
    assert list(found.columns) == LABEL_ISSUE_COLUMNS
    flagged = found[found["is_label_issue"]]
    assert set(flagged["row_id"]) == {"r0", "r1"}
    assert found.set_index("row_id").loc[["r0", "r1"], "label_kind"].tolist() == [MISLABELLED, AMBIGUOUS]
    assert found.loc[~found["is_label_issue"], "label_kind"].isna().all()
    assert found["ambiguity"].between(0, 1).all() and found.loc[0, "ambiguity"] < found.loc[1, "ambiguity"]
    rows = label_issue_rows(found)
    assert list(rows.columns) == ISSUE_COLUMNS
    assert rows.loc[0, "label_kind"] == MISLABELLED and rows["ambiguity"].dtype == "float64"


def test_issue_frames_without_kinds_get_empty_kind_columns() -> None:
    frame = issue_rows([{"row_id": "x", "issue_type": "outlier", "score": 0.4}])
    assert frame.loc[0, "label_kind"] is None and np.isnan(frame.loc[0, "ambiguity"])
    consensus_like = pd.DataFrame(
        {c: [None] for c in LABEL_ISSUE_COLUMNS if c not in ("label_kind", "ambiguity")}
    ).assign(label_score=0.4, is_label_issue=True, suggested_prob=0.3, model_prob=0.2)
    rows = label_issue_rows(consensus_like)
    assert rows.loc[0, "label_kind"] is None and np.isnan(rows.loc[0, "ambiguity"])
