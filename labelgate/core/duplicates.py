"""Duplicates, conflicting labels and train-test leakage, from normalised text and embedding neighbours.

- ``exact_duplicate``: a later row whose normalised text (case-folded, whitespace collapsed) equals an
  earlier row's; ``related_row_id`` is the first occurrence, which is not flagged.
- ``near_duplicate``: a later row whose embedding has cosine similarity >= a threshold with an earlier
  row (and is not an exact duplicate of it); ``related_row_id`` is the most similar earlier row.
- ``conflicting_label``: rows of an exact- or near-duplicate pair whose labels differ; both rows of the
  pair are flagged, each pointing at the other.
- ``leakage``: a row whose normalised text equals a test row's, or whose embedding has cosine
  similarity >= a threshold with a test row; ``related_row_id`` is the test row.

Up to :data:`labelgate.core.neighbours.EXACT_MAX_ROWS` rows, neighbours are found exactly with matrix
products in chunks: time ``O(n^2 * dim)`` (about a minute for 100k rows of 384 dimensions on 2 cores, and
quadratic beyond), memory ``O(chunk * n)``. Above it they are approximate: k-means cells searched with
matrix products (:mod:`labelgate.core.neighbours`), time ``O(n^1.5 * dim)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from labelgate.core.issues import ISSUE_COLUMNS, issue_frame, issue_rows
from labelgate.core.text import normalise_text, text_key
from labelgate.core.vectors import unit_rows

#: rows of the query side multiplied at once (memory = CHUNK * n_other * 4 bytes)
CHUNK = 1024


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


def neighbours(vectors: np.ndarray, *, k: int = 10, exact_max_rows: int | None = None, seed: int = 0) -> Neighbours:
    """Cosine neighbours of every row among the others: exact up to ``exact_max_rows`` rows, approximate above.

    Args:
        vectors: float array ``(n, dim)``; normalised here (a ``np.memmap`` is read in parts when approximate).
        k: neighbours kept per row (capped at ``n - 1``).
        exact_max_rows: largest ``n`` searched exactly (default
            :data:`labelgate.core.neighbours.EXACT_MAX_ROWS`); above it
            :func:`labelgate.core.neighbours.approximate_knn` (``earlier_*`` and ``knn_*`` are then the best
            rows of the searched cells).
        seed: seed of the approximate search's k-means.
    """
    from labelgate.core import neighbours as ann

    n = len(vectors)
    k = max(0, min(k, n - 1))
    if n > (ann.EXACT_MAX_ROWS if exact_max_rows is None else exact_max_rows) and k >= 1:
        return Neighbours(*ann.approximate_knn(vectors, k=k, seed=seed))
    X = unit_rows(vectors)
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


def nearest_in(
    queries: np.ndarray, others: np.ndarray, *, exact_max_pairs: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the index and cosine similarity of its most similar row of ``others``.

    Exact up to ``exact_max_pairs`` query x other pairs (default
    :data:`labelgate.core.neighbours.EXACT_MAX_PAIRS`), approximate above
    (:func:`labelgate.core.neighbours.approximate_nearest`, cells built on ``others``).
    """
    from labelgate.core import neighbours as ann

    limit = ann.EXACT_MAX_PAIRS if exact_max_pairs is None else exact_max_pairs
    if len(queries) * len(others) > limit and len(others) > 1:
        return ann.approximate_nearest(queries, others, seed=seed)
    Q, R = unit_rows(queries), unit_rows(others)
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


def _first_occurrence(texts: Sequence[str]) -> np.ndarray:
    """For each row, the first earlier row with the same normalised text (-1 for a first occurrence)."""
    n = len(texts)
    codes, _ = pd.factorize(np.array([normalise_text(t) for t in texts], dtype=object))
    _, first = np.unique(codes, return_index=True)  # codes are 0.. in order of first appearance
    exact_of = first[codes] if n else np.zeros(0, dtype=np.int64)
    exact_of = exact_of.astype(np.int64)
    exact_of[exact_of == np.arange(n)] = -1
    return exact_of


def _concat(parts: list[dict], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Column-wise concatenation of parts (dicts of equal-length arrays; a missing column is None)."""
    out = {}
    for name in names:
        pieces = []
        for part in parts:
            rows = len(next(iter(part.values())))
            value = part.get(name)
            pieces.append(np.full(rows, value, dtype=object) if value is None or np.isscalar(value) else value)
        out[name] = np.concatenate(pieces) if pieces else np.zeros(0, dtype=object)
    return out


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
        :data:`labelgate.core.issues.ISSUE_COLUMNS` rows: every flagged exact duplicate, then a
        ``near_duplicate`` row for *every* row (score = 1 - similarity to the nearest other row;
        flagged for later copies only), then the conflicts by row. A conflict row points at the other
        row of the first pair (exact pairs before near pairs, each by later row) whose labels differ.
        Built column-wise: seconds for a million rows.
    """
    ids = np.array([str(r) for r in row_ids], dtype=object)
    labels = np.array([str(v) for v in labels], dtype=object)
    n = len(ids)
    exact_of = _first_occurrence(texts)
    parts: list[dict] = []
    exact = np.flatnonzero(exact_of >= 0)
    if len(exact):
        j = exact_of[exact]
        parts.append(
            {
                "row_id": ids[exact],
                "issue_type": np.full(len(exact), "exact_duplicate", dtype=object),
                "score": np.zeros(len(exact)),
                "is_issue": np.ones(len(exact), dtype=bool),
                "given_label": labels[exact],
                "reason": np.array(
                    [f"exact duplicate of row {ids[b]} (labelled {labels[b]})" for b in j.tolist()], dtype=object
                ),
                "related_row_id": ids[j],
            }
        )
    # conflict events in the order the pairs are met: exact pairs, then near pairs, each by later row
    ev_i, ev_j, ev_how = [exact], [exact_of[exact]], [np.full(len(exact), "same text", dtype=object)]
    if nb is not None and n:
        nearest = nb.knn_sim[:, 0] if nb.knn_sim.shape[1] else np.full(n, -1.0)
        j = np.asarray(nb.earlier_index, dtype=np.int64)
        sim = np.asarray(nb.earlier_sim).astype(np.float64)
        flagged = (j >= 0) & (sim >= near_threshold) & (exact_of < 0)
        near = np.flatnonzero(flagged)
        near_how = np.array([f"cosine {v:.2f}" for v in sim[near].tolist()], dtype=object)
        reason = np.full(n, None, dtype=object)
        reason[near] = [
            f"near-duplicate of row {ids[b]} labelled {labels[b]} ({how})" for b, how in zip(j[near].tolist(), near_how)
        ]
        related = np.full(n, None, dtype=object)
        related[near] = ids[j[near]]
        parts.append(
            {
                "row_id": ids,
                "issue_type": np.full(n, "near_duplicate", dtype=object),
                "score": np.clip(1.0 - nearest, 0.0, 1.0).astype(np.float64),
                "is_issue": flagged,
                "given_label": labels,
                "reason": reason,
                "related_row_id": related,
            }
        )
        ev_i.append(near)
        ev_j.append(j[near])
        ev_how.append(near_how)
    ev_i, ev_j, ev_how = np.concatenate(ev_i), np.concatenate(ev_j), np.concatenate(ev_how)
    differ = labels[ev_i] != labels[ev_j]
    ev_i, ev_j, ev_how = ev_i[differ], ev_j[differ], ev_how[differ]
    if len(ev_i):
        # each row of a pair points at the other; a row keeps the first pair it is met in
        row = np.concatenate([ev_i, ev_j])
        other = np.concatenate([ev_j, ev_i])
        event = np.tile(np.arange(len(ev_i)), 2)
        order = np.lexsort((event, row))
        first = order[np.unique(row[order], return_index=True)[1]]
        i, o, how = row[first], other[first], np.tile(ev_how, 2)[first]
        parts.append(
            {
                "row_id": ids[i],
                "issue_type": np.full(len(i), "conflicting_label", dtype=object),
                "score": np.zeros(len(i)),
                "is_issue": np.ones(len(i), dtype=bool),
                "given_label": labels[i],
                "suggested_label": labels[o],
                "reason": np.array(
                    [
                        f"conflicting labels: {labels[a]} here, {labels[b]} on row {ids[b]} ({h})"
                        for a, b, h in zip(i.tolist(), o.tolist(), how)
                    ],
                    dtype=object,
                ),
                "related_row_id": ids[o],
            }
        )
    if not parts:
        return issue_rows([])
    columns = _concat(parts, ISSUE_COLUMNS)
    return issue_frame(len(columns["row_id"]), **columns)


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
