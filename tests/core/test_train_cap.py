"""The cap on training rows per fold (stratified seeded sample above it) that keeps every member's fits bounded."""

from __future__ import annotations

import numpy as np
import pytest

import labelgate.core.probs as probs

pytestmark = pytest.mark.unit


def _data(n: int = 1200, k: int = 4, seed: int = 0, spread: float = 2.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, 16)) * spread
    y = np.repeat(np.arange(k), n // k)
    y[: n // 40] = 3  # an unbalanced class mix
    X = (centres[y] + rng.normal(size=(len(y), 16))).astype(np.float32)
    return X, y


def _texts(y: np.ndarray) -> list[str]:
    words = ["alpha beta", "gamma delta", "epsilon zeta", "eta theta"]
    return [f"{words[v]} item {i % 7} {'!' if i % 3 else '?'}" for i, v in enumerate(y)]


@pytest.mark.parametrize(
    ("n_classes", "cap"),
    [(2, 100_000), (60, 100_000), (61, 98_360), (77, 77_922), (150, 40_000), (300, 60_000), (3000, 100_000)],
)
def test_the_cap_shrinks_with_the_classes_within_its_bounds(n_classes, cap):
    assert probs.train_rows_cap(n_classes) == cap


@pytest.mark.parametrize(
    ("n_rows", "cap", "folds"),
    [
        (10_000, 40_000, 10),
        (40_000, 40_000, 5),
        (49_999, 40_000, 5),
        (50_001, 40_000, 5),
        (60_000, 40_000, 3),
        (100_000, 40_000, 2),
        (10**6, 100_000, 2),
        (150_000, 100_000, 3),
    ],
)
def test_fewer_folds_once_every_fold_would_fit_a_capped_sample(n_rows, cap, folds):
    k = probs.auto_folds(n_rows, 10**6, train_cap=cap)
    assert k == folds
    assert n_rows - n_rows // k >= min(cap, n_rows - n_rows // probs.auto_folds(n_rows, 10**6))
    if k > 2:  # one fold fewer would train on fewer rows than the cap
        assert n_rows - n_rows // (k - 1) < cap


def test_a_sample_below_the_cap_is_every_training_row():
    _, y = _data()
    train = np.arange(0, 1200, 2)
    assert probs.train_sample(y, train, 4, len(train)) is train


def test_above_the_cap_a_stratified_seeded_sample_in_input_order():
    _, y = _data()
    train = np.arange(0, 1200, 2)
    first = probs.train_sample(y, train, 4, 150)
    assert first.tobytes() == probs.train_sample(y, train, 4, 150).tobytes()
    assert 150 - 4 <= len(first) <= 150
    assert (np.diff(first) > 0).all() and np.isin(first, train).all()
    counts, full = np.bincount(y[first], minlength=4), np.bincount(y[train], minlength=4)
    assert (np.abs(counts - full * 150 / len(train)) <= 1).all()  # each class keeps its share
    assert (counts >= 1).all()


def test_every_member_fits_the_capped_rows_and_every_row_is_still_scored(monkeypatch):
    X, y = _data(n=480, spread=0.8)
    labels = [f"c{v}" for v in y]
    seen = []
    real = probs._fit_predict

    def recording(clf, X_train, y_train, X_test, n_classes):
        seen.append(X_train.shape[0])
        return real(clf, X_train, y_train, X_test, n_classes)

    monkeypatch.setattr(probs, "_fit_predict", recording)
    monkeypatch.setattr(probs, "MAX_TRAIN_ROWS", 120)  # folds of 4 train on 360 rows
    capped = probs.ensemble_oof_probs(X, labels, texts=_texts(y), layer_features=X, n_folds=4)
    plan = probs.plan_oof(X, labels, texts=_texts(y), layer_features=X, n_folds=4)
    assert plan.train_rows_cap == 120
    assert all(120 - 4 <= len(train) <= 120 for train, _ in plan.folds)
    assert sorted(np.concatenate([test for _, test in plan.folds]).tolist()) == list(range(len(y)))
    assert seen and max(seen) <= 120  # embedding, chars and every C of layers; words' one-vs-rest too
    assert capped.probs.shape == (len(y), 4) and np.allclose(capped.probs.sum(axis=1), 1.0)
    assert (capped.probs.argmax(axis=1) == y).mean() > 0.6


def test_probabilities_are_unchanged_while_folds_stay_below_the_cap(monkeypatch):
    X, y = _data(n=400, spread=0.5)  # overlapping classes: probabilities well inside (0, 1)
    labels = [f"c{v}" for v in y]
    kw = {"texts": _texts(y), "members": ["embedding", "chars"], "n_folds": 4}
    before = probs.ensemble_oof_probs(X, labels, **kw)
    assert probs.plan_oof(X, labels, n_folds=4).train_rows_cap is None
    monkeypatch.setattr(probs, "MAX_TRAIN_ROWS", 300)  # folds train on exactly 300 rows
    after = probs.ensemble_oof_probs(X, labels, **kw)
    assert after.probs.tobytes() == before.probs.tobytes()
    monkeypatch.setattr(probs, "MAX_TRAIN_ROWS", 100)
    capped = probs.ensemble_oof_probs(X, labels, **kw)
    assert capped.probs.shape == before.probs.shape and capped.probs.tobytes() != before.probs.tobytes()
