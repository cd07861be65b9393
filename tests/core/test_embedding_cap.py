"""The embedding member's cap on training rows per fold (stratified seeded sample above it)."""

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


def _spy(monkeypatch):
    seen = []
    real = probs._fit_predict

    def recording(clf, X_train, y_train, X_test, n_classes):
        seen.append((len(X_train), np.bincount(y_train, minlength=n_classes)))
        return real(clf, X_train, y_train, X_test, n_classes)

    monkeypatch.setattr(probs, "_fit_predict", recording)
    return seen


def test_below_the_cap_every_training_row_is_fitted(monkeypatch):
    X, y = _data()
    train, test = np.arange(0, 1200, 2), np.arange(1, 1200, 2)
    want = probs._fit_predict(probs._logreg(1.0), X[train], y[train], X[test], 4)
    seen = _spy(monkeypatch)
    monkeypatch.setattr(probs, "MAX_EMBEDDING_TRAIN_ROWS", len(train))
    got = probs._embedding_member(X, y, train, test, 4)
    assert seen[0][0] == len(train)
    assert got.tobytes() == want.tobytes()


def test_above_a_forced_cap_a_stratified_seeded_sample_is_fitted(monkeypatch):
    X, y = _data()
    train, test = np.arange(0, 1200, 2), np.arange(1, 1200, 2)
    seen = _spy(monkeypatch)
    monkeypatch.setattr(probs, "MAX_EMBEDDING_TRAIN_ROWS", 150)
    first = probs._embedding_member(X, y, train, test, 4)
    again = probs._embedding_member(X, y, train, test, 4)
    rows, counts = seen[0]
    full = np.bincount(y[train], minlength=4)
    assert rows <= 150 and rows >= 150 - 4
    assert (np.abs(counts - full * 150 / len(train)) <= 1).all()  # each class keeps its share
    assert (counts >= 1).all()
    assert first.tobytes() == again.tobytes()
    assert first.shape == (len(test), 4) and np.allclose(first.sum(axis=1), 1.0)
    assert (first.argmax(axis=1) == y[test]).mean() > 0.9


def test_ensemble_probabilities_are_unchanged_while_folds_stay_below_the_cap(monkeypatch):
    X, y = _data(n=400, spread=0.5)  # overlapping classes: probabilities well inside (0, 1)
    labels = [f"c{v}" for v in y]
    before = probs.ensemble_oof_probs(X, labels, members=["embedding"], n_folds=4)
    monkeypatch.setattr(probs, "MAX_EMBEDDING_TRAIN_ROWS", 300)  # folds train on exactly 300 rows
    after = probs.ensemble_oof_probs(X, labels, members=["embedding"], n_folds=4)
    assert after.probs.tobytes() == before.probs.tobytes()
    monkeypatch.setattr(probs, "MAX_EMBEDDING_TRAIN_ROWS", 100)
    capped = probs.ensemble_oof_probs(X, labels, members=["embedding"], n_folds=4)
    assert capped.probs.shape == before.probs.shape and capped.probs.tobytes() != before.probs.tobytes()
