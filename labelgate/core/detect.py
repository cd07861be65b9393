"""Label-issue detection: out-of-sample predicted probabilities, then confident learning.

The probabilities come from K-fold cross-validation, so every row is scored by a
model that never saw it. cleanlab's ``find_label_issues`` and
``get_label_quality_scores`` turn them into per-row flags and scores.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from labelgate.errors import ValidationError

LABEL_ISSUE_COLUMNS = [
    "row_id",
    "given_label",
    "suggested_label",
    "suggested_prob",
    "given_prob",
    "label_score",
    "is_label_issue",
    "reason",
]


@dataclass(frozen=True)
class Probabilities:
    """Out-of-sample predicted probabilities.

    Attributes:
        probs: float array, shape ``(n_rows, n_classes)``; rows sum to 1.
        classes: the class names, in column order (sorted).
        labels: int array, shape ``(n_rows,)``: the given label of each row as a column index.
        method: a short name of the model that produced them.
    """

    probs: np.ndarray
    classes: list[str]
    labels: np.ndarray
    method: str


def encode_labels(labels: pd.Series | list[str]) -> tuple[np.ndarray, list[str]]:
    """Map string labels to column indices of the sorted class list; return ``(indices, classes)``."""
    values = np.asarray(list(labels), dtype=object)
    classes = sorted({str(v) for v in values})
    index = {c: i for i, c in enumerate(classes)}
    return np.fromiter((index[str(v)] for v in values), dtype=np.int64, count=len(values)), classes


def out_of_fold_probs(
    features: np.ndarray,
    labels: pd.Series | list[str],
    *,
    n_folds: int = 5,
    seed: int = 0,
    C: float = 1.0,
) -> Probabilities:
    """K-fold out-of-sample probabilities of a multinomial logistic regression on ``features``.

    Args:
        features: float array, shape ``(n_rows, dim)`` (e.g. normalised sentence embeddings).
        labels: the given label of each row (strings), length ``n_rows``.
        n_folds: number of stratified folds, at least 2 and at most the size of the smallest class.
        seed: seed of the fold shuffle.
        C: inverse regularisation strength.

    Raises:
        ValidationError: fewer than 2 classes, or a class smaller than ``n_folds``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    y, classes = encode_labels(labels)
    if len(classes) < 2:
        raise ValidationError(f"label-issue detection needs at least 2 classes, got {classes}")
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < n_folds:
        small = classes[int(counts.argmin())]
        raise ValidationError(f"class {small!r} has {int(counts.min())} rows; {n_folds}-fold detection needs {n_folds}")
    X = np.asarray(features, dtype=np.float32)
    probs = np.zeros((len(y), len(classes)), dtype=np.float64)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in folds.split(X, y):
        clf = LogisticRegression(C=C, max_iter=2000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X[train_idx], y[train_idx])
        fold_probs = np.zeros((len(test_idx), len(classes)))
        fold_probs[:, clf.classes_] = clf.predict_proba(X[test_idx])
        probs[test_idx] = fold_probs
    probs = np.clip(probs, 1e-9, 1.0)
    probs /= probs.sum(axis=1, keepdims=True)
    return Probabilities(probs=probs, classes=classes, labels=y, method=f"logreg-{n_folds}fold")


def find_label_issues(row_ids: list[str] | pd.Series, p: Probabilities) -> pd.DataFrame:
    """Flag likely label errors with cleanlab; one row per input row.

    Returns a DataFrame with columns :data:`LABEL_ISSUE_COLUMNS`:
    ``label_score`` in [0, 1] (higher = the given label is more likely right; cleanlab's
    self-confidence), ``suggested_label`` the most probable class, ``is_label_issue`` cleanlab's
    confident-learning flag (``prune_by_noise_rate``), ``reason`` a sentence for flagged rows.
    """
    from cleanlab.filter import find_label_issues as cl_find_label_issues
    from cleanlab.rank import get_label_quality_scores

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flags = cl_find_label_issues(labels=p.labels, pred_probs=p.probs, filter_by="prune_by_noise_rate")
        scores = get_label_quality_scores(labels=p.labels, pred_probs=p.probs, method="self_confidence")
    best = p.probs.argmax(axis=1)
    n = len(p.labels)
    classes = np.asarray(p.classes, dtype=object)
    given = classes[p.labels]
    suggested = classes[best]
    suggested_prob = p.probs[np.arange(n), best]
    given_prob = p.probs[np.arange(n), p.labels]
    reasons = [
        f"model disagrees: {s} {sp:.2f} vs given {g} {gp:.2f}" if flag else None
        for flag, s, sp, g, gp in zip(flags, suggested, suggested_prob, given, given_prob)
    ]
    return pd.DataFrame(
        {
            "row_id": list(row_ids),
            "given_label": given,
            "suggested_label": suggested,
            "suggested_prob": suggested_prob,
            "given_prob": given_prob,
            "label_score": np.asarray(scores, dtype=float),
            "is_label_issue": np.asarray(flags, dtype=bool),
            "reason": reasons,
        },
        columns=LABEL_ISSUE_COLUMNS,
    )
