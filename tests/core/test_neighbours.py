"""Approximate neighbour search (k-means cells) against the exact search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelgate.core import neighbours as ann
from labelgate.core.duplicates import nearest_in, neighbours

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def _clustered(n: int = 5000, dim: int = 32, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Tight clusters; the 50 rows from ``0.8 n`` are near copies of rows 0..49."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    X = centres[rng.integers(0, clusters, n)] + rng.normal(0, 0.15, (n, dim))
    at = int(0.8 * n)
    X[at : at + 50] = X[:50] + rng.normal(0, 0.01, (50, dim))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def test_approximate_path_agrees_with_exact_above_a_forced_threshold():
    X = _clustered()
    exact = neighbours(X, k=5)  # 5000 rows: exact by default
    approx = neighbours(X, k=5, exact_max_rows=1000)
    n = len(X)
    assert approx.knn_index.shape == exact.knn_index.shape and approx.knn_index.dtype == np.int64
    assert approx.knn_sim.dtype == np.float32 and approx.earlier_sim.dtype == np.float32
    assert (approx.knn_index != np.arange(n)[:, None]).all()
    assert (np.diff(approx.knn_sim, axis=1) <= 0).all()
    # nothing found can beat the truth, and the truth is found for nearly every row
    assert (approx.knn_sim[:, 0] <= exact.knn_sim[:, 0] + 1e-5).all()
    assert np.mean(np.abs(approx.knn_sim[:, 0] - exact.knn_sim[:, 0]) < 1e-5) > 0.95
    assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(approx.knn_index, exact.knn_index)]) > 0.9
    # the most similar earlier row: before the row, never better than exact, exact for the near copies
    assert approx.earlier_index[0] == -1 and approx.earlier_sim[0] == -1.0
    assert (approx.earlier_index[1:] < np.arange(1, n)).all() and (approx.earlier_index[1:] >= 0).all()
    assert (approx.earlier_sim <= exact.earlier_sim + 1e-5).all()
    copies = np.flatnonzero(exact.earlier_sim >= 0.95)
    assert set(range(4000, 4050)) <= set(copies.tolist())
    assert (approx.earlier_index[copies] == exact.earlier_index[copies]).all()
    sims = np.einsum("ij,ij->i", X[copies], X[approx.earlier_index[copies]])
    assert np.allclose(sims, approx.earlier_sim[copies], atol=1e-5)


def test_approximate_search_is_deterministic_and_reads_unnormalised_memmaps(tmp_path):
    X = _clustered(n=3000, seed=1)
    first = ann.approximate_knn(X, k=4, seed=3)
    scale = np.random.default_rng(2).uniform(0.5, 3.0, (len(X), 1)).astype(np.float32)
    path = tmp_path / "x.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=X.shape)
    mm[:] = X * scale
    mm.flush()
    again = ann.approximate_knn(np.load(path, mmap_mode="r"), k=4, seed=3)
    assert (first[0] == again[0]).all() and (first[2] == again[2]).all()
    assert np.allclose(first[3], again[3], atol=1e-5)


def test_rows_the_cells_leave_short_are_searched_exactly():
    # as many cells as a third of the rows: many cells hold fewer rows than k, so rows lack candidates
    X = _clustered(n=600, seed=4)
    earlier_index, earlier_sim, knn_index, knn_sim = ann.approximate_knn(X, k=8, n_probe=1, n_cells=200)
    assert np.isfinite(knn_sim).all() and (knn_index >= 0).all()
    assert (knn_index != np.arange(600)[:, None]).all()
    assert (earlier_index[1:] >= 0).all() and np.isfinite(earlier_sim).all()
    S = X @ X.T
    np.fill_diagonal(S, -np.inf)
    assert np.allclose(np.take_along_axis(S, knn_index, axis=1), knn_sim, atol=1e-5)


def test_nearest_in_approximate_matches_exact_on_clustered_data():
    X = _clustered(n=4000, seed=5)
    queries, others = X[:1500], X[1500:]
    exact_index, exact_sim = nearest_in(queries, others)
    index, sim = nearest_in(queries, others, exact_max_pairs=0)
    assert index.shape == exact_index.shape and sim.dtype == np.float32
    assert (sim <= exact_sim + 1e-5).all()
    assert np.mean(np.abs(sim - exact_sim) < 1e-5) > 0.95


def test_k_must_leave_another_row():
    with pytest.raises(ValueError, match="k must be between 1 and n - 1 = 2"):
        ann.approximate_knn(np.eye(3, dtype=np.float32), k=3)
