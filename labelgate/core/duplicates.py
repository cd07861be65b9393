"""Duplicates, conflicting labels and train-test leakage, from normalised text and embedding neighbours.

- ``exact_duplicate``: a later row whose normalised text (case-folded, whitespace collapsed) equals an
  earlier row's; ``related_row_id`` is the first occurrence, which is not flagged.
- ``near_duplicate``: a later row whose embedding has cosine similarity >= a threshold with an earlier
  row (and is not an exact duplicate of it); ``related_row_id`` is the most similar earlier row.
- ``conflicting_label``: rows of an exact- or near-duplicate pair whose labels differ; both rows of the
  pair are flagged, each pointing at the other.
- ``leakage``: a row whose normalised text equals a test row's, or whose embedding has cosine
  similarity >= a threshold with a test row; ``related_row_id`` is the test row.

Neighbours are found exactly with matrix products in chunks: time ``O(n^2 * dim)`` (about a minute
for 100k rows of 384 dimensions on 2 cores, and quadratic beyond), memory ``O(chunk * n)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from labelgate.core.issues import issue_rows

#: rows of the query side multiplied at once (memory = CHUNK * n_other * 4 bytes)
CHUNK = 1024


def normalise_text(text: str | None) -> str:
    """Case-folded text with runs of whitespace collapsed to one space and the ends trimmed."""
    return " ".join(text.casefold().split()) if isinstance(text, str) else ""


def text_key(text: str | None) -> str:
    """sha256 of :func:`normalise_text` (the key of exact duplicates and exact leaks)."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


def _chunks(n: int, size: int = CHUNK) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@dataclass(frozen=True)
class Neighbours:
    """Nearest neighbours of each row within one set of vectors.

    Attributes:
        earlier_index: int array ``(n,)``: the most similar row *before* this one (-1 for row 0).
        earlier_sim: cosine similarity to it (-1 for row 0).
        knn_index: int array ``(n, k)``: the ``k`` most similar other rows, most similar first.
        knn_sim: float array ``(n, k)``: their cosine similarities.
    """

    earlier_index: np.ndarray
    earlier_sim: np.ndarray
    knn_index: np.ndarray
    knn_sim: np.ndarray


def neighbours(vectors: np.ndarray, *, k: int = 10) -> Neighbours:
    """Exact cosine neighbours of every row among the others (chunked matrix products).

    Args:
        vectors: float array ``(n, dim)``; normalised here.
        k: neighbours kept per row (capped at ``n - 1``).
    """
    X = _unit(vectors)
    n = len(X)
    k = max(0, min(k, n - 1))
    earlier_index = np.full(n, -1, dtype=np.int64)
    earlier_sim = np.full(n, -1.0, dtype=np.float32)
    knn_index = np.zeros((n, k), dtype=np.int64)
    knn_sim = np.zeros((n, k), dtype=np.float32)
    cols = np.arange(n)
    for part in _chunks(n):
        S = X[part] @ X.T
        rows = np.arange(part.start, part.stop)
        S[rows - part.start, rows] = -np.inf  # never one's own neighbour
        earlier = np.where(cols[None, :] < rows[:, None], S, -np.inf)
        if n > 1:
            best = earlier.argmax(axis=1)
            sim = earlier[np.arange(len(rows)), best]
            ok = np.isfinite(sim)
            earlier_index[rows[ok]] = best[ok]
            earlier_sim[rows[ok]] = sim[ok]
        if k:
            top = np.argpartition(-S, k - 1, axis=1)[:, :k]
            top_sim = np.take_along_axis(S, top, axis=1)
            order = np.argsort(-top_sim, axis=1)
            knn_index[part] = np.take_along_axis(top, order, axis=1)
            knn_sim[part] = np.take_along_axis(top_sim, order, axis=1)
    return Neighbours(earlier_index, earlier_sim, knn_index, knn_sim)


def nearest_in(queries: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the index and cosine similarity of its most similar row of ``others``."""
    Q, R = _unit(queries), _unit(others)
    index = np.zeros(len(Q), dtype=np.int64)
    sim = np.full(len(Q), -1.0, dtype=np.float32)
    if len(R) == 0:
        return index, sim
    for part in _chunks(len(Q)):
        S = Q[part] @ R.T
        best = S.argmax(axis=1)
        index[part] = best
        sim[part] = S[np.arange(len(best)), best]
    return index, sim


def duplicate_issues(
    row_ids: Sequence[str],
    texts: Sequence[str],
    labels: Sequence[str],
    nb: Neighbours | None,
    *,
    near_threshold: float = 0.95,
) -> pd.DataFrame:
    """``exact_duplicate``, ``near_duplicate`` and ``conflicting_label`` issue rows (long format).

    Args:
        row_ids / texts / labels: the rows in input order (earlier rows are the originals).
        nb: :func:`neighbours` of the rows' embeddings (``None``: exact duplicates only).
        near_threshold: cosine similarity at or above which a later row is a near duplicate.

    Returns:
        :data:`labelgate.core.issues.ISSUE_COLUMNS` rows: every flagged exact duplicate and conflict,
        and a ``near_duplicate`` row for *every* row (score = 1 - similarity to the nearest other row;
        flagged for later copies only).
    """
    ids = [str(r) for r in row_ids]
    labels = [str(v) for v in labels]
    n = len(ids)
    first_of: dict[str, int] = {}
    exact_of = np.full(n, -1, dtype=np.int64)
    for i, t in enumerate(texts):
        key = text_key(t)
        if key in first_of:
            exact_of[i] = first_of[key]
        else:
            first_of[key] = i
    records: list[dict] = []
    conflicts: dict[int, tuple[int, str]] = {}

    def conflict(i: int, j: int, how: str) -> None:
        if labels[i] != labels[j]:
            conflicts.setdefault(i, (j, how))
            conflicts.setdefault(j, (i, how))

    for i in np.flatnonzero(exact_of >= 0):
        j = int(exact_of[i])
        records.append(
            {
                "row_id": ids[i],
                "issue_type": "exact_duplicate",
                "score": 0.0,
                "given_label": labels[i],
                "reason": f"exact duplicate of row {ids[j]} (labelled {labels[j]})",
                "related_row_id": ids[j],
            }
        )
        conflict(int(i), j, "same text")
    if nb is not None and n:
        nearest = nb.knn_sim[:, 0] if nb.knn_sim.shape[1] else np.full(n, -1.0)
        for i in range(n):
            j = int(nb.earlier_index[i])
            sim = float(nb.earlier_sim[i])
            flagged = j >= 0 and sim >= near_threshold and exact_of[i] < 0
            if flagged:
                conflict(i, j, f"cosine {sim:.2f}")
            records.append(
                {
                    "row_id": ids[i],
                    "issue_type": "near_duplicate",
                    "score": float(np.clip(1.0 - nearest[i], 0.0, 1.0)),
                    "is_issue": bool(flagged),
                    "given_label": labels[i],
                    "reason": f"near-duplicate of row {ids[j]} labelled {labels[j]} (cosine {sim:.2f})"
                    if flagged
                    else None,
                    "related_row_id": ids[j] if flagged else None,
                }
            )
    for i, (j, how) in sorted(conflicts.items()):
        records.append(
            {
                "row_id": ids[i],
                "issue_type": "conflicting_label",
                "score": 0.0,
                "given_label": labels[i],
                "suggested_label": labels[j],
                "reason": f"conflicting labels: {labels[i]} here, {labels[j]} on row {ids[j]} ({how})",
                "related_row_id": ids[j],
            }
        )
    return issue_rows(records)


def leakage_issues(
    row_ids: Sequence[str],
    texts: Sequence[str],
    vectors: np.ndarray | None,
    test_ids: Sequence[str],
    test_texts: Sequence[str],
    test_vectors: np.ndarray | None,
    *,
    threshold: float = 0.95,
) -> pd.DataFrame:
    """``leakage`` issue rows: rows whose text (normalised) equals a test row's or whose embedding is a near twin.

    Only flagged rows are returned; ``related_row_id`` is the test row id, ``score`` 1 - similarity (0 for
    identical text). ``vectors`` / ``test_vectors`` may be ``None`` (exact matches only).
    """
    test_key = {}
    for tid, t in zip(test_ids, test_texts):
        test_key.setdefault(text_key(t), str(tid))
    near_index = near_sim = None
    if vectors is not None and test_vectors is not None and len(test_ids) and len(row_ids):
        near_index, near_sim = nearest_in(vectors, test_vectors)
    test_ids = [str(t) for t in test_ids]
    records = []
    for i, (rid, t) in enumerate(zip(row_ids, texts)):
        exact = test_key.get(text_key(t))
        if exact is not None:
            records.append(
                {
                    "row_id": str(rid),
                    "issue_type": "leakage",
                    "score": 0.0,
                    "reason": f"leaks the test set: same text as test row {exact}",
                    "related_row_id": exact,
                }
            )
        elif near_sim is not None and near_sim[i] >= threshold:
            tid = test_ids[int(near_index[i])]
            records.append(
                {
                    "row_id": str(rid),
                    "issue_type": "leakage",
                    "score": float(np.clip(1.0 - near_sim[i], 0.0, 1.0)),
                    "reason": f"leaks the test set: near-twin of test row {tid} (cosine {near_sim[i]:.2f})",
                    "related_row_id": tid,
                }
            )
    return issue_rows(records)
