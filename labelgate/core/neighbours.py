"""Approximate cosine neighbours for large sets: k-means cells searched with matrix products (an IVF index).

Exact neighbours (:func:`labelgate.core.duplicates.neighbours`) cost ``O(n^2 * dim)``: a minute at 100k
rows, hours at a million. Above a size threshold the library uses this module instead, the inverted-file
(IVF) scheme of FAISS (Jégou et al. 2011, Johnson et al. 2019) written with numpy:

1. *Cells*: spherical k-means (cosine) on a seeded sample of the base rows, ``n_cells`` centroids
   (default ``sqrt(n_probe * n)``, which balances the two matrix products below).
2. *Assignment*: every base row goes to its nearest centroid (its cell); every query row lists its
   ``n_probe`` nearest centroids (the cells it searches), nearest first.
3. *Search*, rank by rank: first every query against the rows of its nearest cell (one matrix product
   per cell; the top ``k`` kept), then against its second cell, and so on. After the first pass only
   the similarities above a query's current ``k``-th best (or its best earlier row) are merged, so the
   search costs little more than its matrix products. A query is in one cell per rank, so the cells of a
   rank are searched in parallel threads (one BLAS thread each). The most similar *earlier* row is
   found the same way, among the rows of the probed cells that come before the query.

Cost ``O(n * (n_cells + n_probe * n / n_cells) * dim)`` time, nearly all of it in float32 matrix
products (about 1.5 minutes for a million rows of 384 dimensions on 2 cores), and ``O(n * k)`` memory
beside the vectors, which are read one cell at a time (a ``np.memmap`` works; rows already of unit
norm are not copied). The result is approximate: a true neighbour in a cell the query does not probe
is missed and the next best row takes its place. ``benchmarks/scale.py`` measures it against an exact
search: on its clustered data the row found nearest is a true nearest row for about 70-80% of rows,
while every near duplicate (cosine >= 0.95) is found, as a near copy shares its original's cell.

Rows the cells leave short (fewer than ``k`` candidates, or no earlier row in the probed cells) are
searched exactly, so the output has the shape and meaning of the exact search. Everything is
deterministic for a given ``seed``.

All functions here take and return plain arrays (the :class:`labelgate.core.duplicates.Neighbours`
wrapper lives with the exact search).
"""

from __future__ import annotations

import math
import os

import numpy as np

from labelgate.core.vectors import unit_rows

#: above this many rows, neighbour search is approximate (exact at or below it)
EXACT_MAX_ROWS = 50_000
#: above this many query x base pairs, :func:`labelgate.core.duplicates.nearest_in` is approximate
EXACT_MAX_PAIRS = 2_500_000_000
#: cells searched per query (more: higher recall, proportionally slower search)
N_PROBE = 8
#: k-means training rows per cell, and Lloyd iterations
KMEANS_ROWS_PER_CELL = 20
KMEANS_ITERATIONS = 6
#: threads of the cell search (``None``: one per CPU)
WORKERS: int | None = None
#: similarities computed at once per thread in the cell search (memory = BLOCK * 4 bytes)
BLOCK = 1 << 23
#: rows per matrix product when assigning rows to cells (memory = CHUNK * n_cells * 4 bytes)
CHUNK = 8192

__all__ = [
    "EXACT_MAX_PAIRS",
    "EXACT_MAX_ROWS",
    "N_PROBE",
    "approximate_knn",
    "approximate_nearest",
    "default_cells",
    "kmeans_cells",
    "nearest_cells",
    "unit_rows",
]


def _parallel(function, items) -> list:
    """``[function(item) for item in items]`` on :data:`WORKERS` threads, one BLAS thread each.

    Many small matrix products run far faster this way than on a multi-threaded BLAS (which also
    collapses when other processes share the cores); numpy releases the GIL in the heavy operations.
    """
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    workers = WORKERS or os.cpu_count() or 1
    with threadpool_limits(limits=1, user_api="blas"):
        if workers == 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(function, items))


def _read(X, rows: np.ndarray | slice) -> np.ndarray:
    """Unit-norm float32 ``X[rows]`` of an array or a :class:`_Reader`."""
    return X[rows] if isinstance(X, _Reader) else unit_rows(X, rows)


def default_cells(n: int, n_probe: int = N_PROBE) -> int:
    """``sqrt(n_probe * n)`` cells, at least 1 and at most ``n``."""
    return int(min(max(1, round(math.sqrt(n_probe * n))), n))


def kmeans_cells(X: np.ndarray, n_cells: int, *, seed: int = 0, iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """Spherical k-means centroids of a seeded sample of ``X``'s rows: float32 ``(n_cells, dim)``, unit rows.

    The sample holds :data:`KMEANS_ROWS_PER_CELL` rows per cell (all rows when fewer); a cell that ends
    an iteration empty restarts at a random sample row.
    """
    n = len(X)
    rng = np.random.default_rng(seed)
    m = min(n, n_cells * KMEANS_ROWS_PER_CELL)
    sample = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
    S = _read(X, sample)
    n_cells = min(n_cells, m)
    C = S[rng.choice(m, size=n_cells, replace=False)].copy()
    for _ in range(iterations):
        assign = np.concatenate(_parallel(lambda a, C=C: (S[a : a + CHUNK] @ C.T).argmax(axis=1), range(0, m, CHUNK)))
        sums = np.zeros_like(C)
        _add_rows(sums, assign, S)
        norms = np.linalg.norm(sums, axis=1)
        empty = norms <= 1e-12
        if empty.any():
            sums[empty] = S[rng.choice(m, size=int(empty.sum()), replace=False)]
            norms[empty] = np.linalg.norm(sums[empty], axis=1)
        C = (sums / norms[:, None]).astype(np.float32)
    return C


def _add_rows(sums: np.ndarray, assign: np.ndarray, S: np.ndarray) -> None:
    """``sums[c] += sum of S's rows assigned to c`` (sorted segments: faster than ``np.add.at``)."""
    order = np.argsort(assign, kind="stable")
    counts = np.bincount(assign, minlength=len(sums))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    nonempty = np.flatnonzero(counts)
    sums[nonempty] += np.add.reduceat(S[order], starts[nonempty], axis=0)


def nearest_cells(X: np.ndarray, centroids: np.ndarray, n_probe: int) -> np.ndarray:
    """The ``n_probe`` most similar centroids of every row of ``X``: int32 ``(n, n_probe)``, nearest first."""
    n, c = len(X), len(centroids)
    n_probe = min(n_probe, c)
    out = np.empty((n, n_probe), dtype=np.int32)

    def chunk(a: int) -> None:
        S = _read(X, slice(a, a + CHUNK)) @ centroids.T
        if n_probe < c:
            top = np.argpartition(S, c - n_probe, axis=1)[:, c - n_probe :]
        else:
            top = np.broadcast_to(np.arange(c), S.shape)
        order = np.argsort(-np.take_along_axis(S, top, axis=1), axis=1, kind="stable")
        out[a : a + len(S)] = np.take_along_axis(top, order, axis=1)

    _parallel(chunk, range(0, n, CHUNK))
    return out


def _groups(keys: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``keys`` sorted by key (stable) and the offsets of each key's run, ``(n_groups + 1,)``."""
    order = np.argsort(keys, kind="stable")
    bounds = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n_groups), out=bounds[1:])
    return order, bounds


class _Reader:
    """Unit-norm float32 rows of one array, read by index (no copy of the whole array is made)."""

    def __init__(self, X: np.ndarray) -> None:
        self.X = X
        # rows already unit-norm float32 (checked once, chunk by chunk) are read as they are
        self.unit = X.dtype == np.float32 and all(
            np.allclose(np.einsum("ij,ij->i", part, part), 1.0, atol=1e-4)
            for part in (X[a : a + 65536] for a in range(0, len(X), 65536))
        )

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, rows: np.ndarray | slice) -> np.ndarray:
        if self.unit:
            return np.ascontiguousarray(self.X[rows])
        return unit_rows(self.X, rows)


class _Best:
    """The running ``k`` best (similarity, row) of every query, and the best earlier row (optional)."""

    def __init__(self, nq: int, k: int, earlier: bool) -> None:
        self.sim = np.full((nq, k), -np.inf, dtype=np.float32)
        self.index = np.full((nq, k), -1, dtype=np.int64)
        self.floor = np.full(nq, -np.inf, dtype=np.float32)  # the k-th best so far
        self.earlier_sim = np.full(nq, -np.inf, dtype=np.float32) if earlier else None
        self.earlier_index = np.full(nq, -1, dtype=np.int64) if earlier else None

    def dense(self, q: np.ndarray, S: np.ndarray, rows: np.ndarray, before: np.ndarray | None) -> None:
        """First block of queries ``q`` (nothing found yet): keep the top ``k`` of each row of ``S``."""
        k, m = self.sim.shape[1], S.shape[1]
        kk = min(k, m)
        top = np.argpartition(S, m - kk, axis=1)[:, m - kk :] if kk < m else np.broadcast_to(np.arange(m), S.shape)
        self.sim[q, :kk] = np.take_along_axis(S, top, axis=1)
        self.index[q, :kk] = rows[top]
        self.floor[q] = self.sim[q].min(axis=1)
        if before is not None:
            has = np.flatnonzero(before > 0)
            if len(has):
                E = S[has]
                E[np.arange(m)[None, :] >= before[has, None]] = -np.inf
                best = E.argmax(axis=1)
                self.earlier_sim[q[has]] = E[np.arange(len(has)), best]
                self.earlier_index[q[has]] = rows[best]

    def merge(self, q: np.ndarray, S: np.ndarray, rows: np.ndarray, before: np.ndarray | None) -> None:
        """A later block: only entries above a query's current k-th best (or best earlier) can change anything."""
        floor = self.floor[q] if before is None else np.minimum(self.floor[q], self.earlier_sim[q])
        r, c = np.nonzero(floor[:, None] < S)
        if not len(r):
            return
        s = S[r, c]
        k = self.sim.shape[1]
        up = s > self.floor[q[r]]
        if up.any():
            ru, cu, su = r[up], c[up], s[up]
            touched, local, counts = np.unique(ru, return_inverse=True, return_counts=True)
            width = int(counts.max())
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            col = np.arange(len(ru)) - starts[local]  # ru is sorted (row-major nonzero)
            qs = q[touched]
            buf_sim = np.full((len(touched), k + width), -np.inf, dtype=np.float32)
            buf_index = np.full((len(touched), k + width), -1, dtype=np.int64)
            buf_sim[:, :k] = self.sim[qs]
            buf_index[:, :k] = self.index[qs]
            buf_sim[local, k + col] = su
            buf_index[local, k + col] = rows[cu]
            top = np.argpartition(buf_sim, width, axis=1)[:, width:]
            self.sim[qs] = np.take_along_axis(buf_sim, top, axis=1)
            self.index[qs] = np.take_along_axis(buf_index, top, axis=1)
            self.floor[qs] = self.sim[qs].min(axis=1)
        if before is not None:
            ok = (c < before[r]) & (s > self.earlier_sim[q[r]])
            if ok.any():
                re, ce, se = r[ok], c[ok], s[ok]
                order = np.lexsort((-se, re))
                first = order[np.unique(re[order], return_index=True)[1]]
                self.earlier_sim[q[re[first]]] = se[first]
                self.earlier_index[q[re[first]]] = rows[ce[first]]

    def sorted(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-self.sim, axis=1, kind="stable")
        return np.take_along_axis(self.index, order, axis=1), np.take_along_axis(self.sim, order, axis=1)


def _search(
    base: np.ndarray,
    queries: np.ndarray | None,
    *,
    k: int,
    n_probe: int,
    n_cells: int | None,
    seed: int,
    earlier: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Cell search of ``queries`` (``None``: the base rows themselves, each excluded from its own list).

    The probed cells are searched rank by rank (every query's nearest cell first), so after the first
    pass only the entries above a query's current ``k``-th best need merging.

    Returns ``(knn_index (nq, k) int64, knn_sim (nq, k) float32, earlier_index, earlier_sim)``; unfilled
    slots hold index -1 and similarity -inf (filled exactly by the callers).
    """
    B = _Reader(base)
    self_join = queries is None
    Q = B if self_join else _Reader(queries)
    n = len(B)
    n_cells = default_cells(n, n_probe) if n_cells is None else max(1, min(n_cells, n))
    centroids = kmeans_cells(B, n_cells, seed=seed)
    n_cells = len(centroids)
    n_probe = min(n_probe, n_cells)
    base_cells = nearest_cells(B, centroids, n_probe if self_join else 1)
    probes = base_cells if self_join else nearest_cells(Q, centroids, n_probe)
    members, member_bounds = _groups(base_cells[:, 0], n_cells)
    best = _Best(len(Q), k, earlier)

    def block(c: int, queries: np.ndarray, rank: int) -> None:
        rows = members[member_bounds[c] : member_bounds[c + 1]]
        if not len(rows):
            return
        cell = B[rows].T
        step = max(64, BLOCK // len(rows))  # a crowded cell (many equal vectors) is searched in parts
        for a in range(0, len(queries), step):
            part(queries[a : a + step], rows, cell, rank)

    def part(q: np.ndarray, rows: np.ndarray, cell: np.ndarray, rank: int) -> None:
        S = Q[q] @ cell
        if self_join:  # both sorted ascending: a query's own column, if it is in the cell
            pos = np.searchsorted(rows, q)
            own = np.flatnonzero(pos < len(rows))
            own = own[rows[pos[own]] == q[own]]
            S[own, pos[own]] = -np.inf
        before = np.searchsorted(rows, q) if earlier else None  # cell rows that precede each query
        (best.dense if rank == 0 else best.merge)(q, S, rows, before)

    for rank in range(n_probe):  # a query is in one cell per rank: the cells of a rank run in parallel
        pairs, pair_bounds = _groups(probes[:, rank], n_cells)
        _parallel(
            lambda c, pairs=pairs, pair_bounds=pair_bounds, rank=rank: block(
                c, pairs[pair_bounds[c] : pair_bounds[c + 1]], rank
            ),
            range(n_cells),
        )
    knn_index, knn_sim = best.sorted()
    return knn_index, knn_sim, best.earlier_index, best.earlier_sim


def _exact_rows(base: np.ndarray, queries: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of base rows for ``queries[rows]`` (self excluded when ``queries is base``)."""
    index = np.empty((len(rows), k), dtype=np.int64)
    sim = np.empty((len(rows), k), dtype=np.float32)
    for a in range(0, len(rows), 256):
        part = rows[a : a + 256]
        S = np.concatenate(
            [unit_rows(queries, part) @ unit_rows(base, slice(b, b + 65536)).T for b in range(0, len(base), 65536)],
            axis=1,
        )
        if queries is base:
            S[np.arange(len(part)), part] = -np.inf
        top = np.argpartition(-S, k - 1, axis=1)[:, :k]
        top_sim = np.take_along_axis(S, top, axis=1)
        order = np.argsort(-top_sim, axis=1, kind="stable")
        index[a : a + len(part)] = np.take_along_axis(top, order, axis=1)
        sim[a : a + len(part)] = np.take_along_axis(top_sim, order, axis=1)
    return index, sim


def _exact_earlier(X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row ``i`` of ``rows`` (sorted, all > 0), the exact most similar row before it and the similarity."""
    index = np.full(len(rows), -1, dtype=np.int64)
    sim = np.full(len(rows), -np.inf, dtype=np.float32)
    for a, i in enumerate(rows):
        q = unit_rows(X, slice(i, i + 1))[0]
        for b in range(0, int(i), 65536):
            s = unit_rows(X, slice(b, min(b + 65536, int(i)))) @ q
            j = int(s.argmax())
            if s[j] > sim[a]:
                index[a], sim[a] = b + j, s[j]
    return index, sim


def approximate_knn(
    X: np.ndarray, *, k: int, n_probe: int = N_PROBE, n_cells: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Approximate cosine neighbours of every row of ``X`` among the others, by cell search.

    Args:
        X: float array ``(n, dim)`` (any scale: rows are normalised as they are read; a memmap works).
        k: neighbours per row, ``1 <= k < n``.
        n_probe: cells searched per row.
        n_cells: number of k-means cells (default :func:`default_cells`).
        seed: seed of the k-means sample and initialisation.

    Returns:
        ``(earlier_index (n,), earlier_sim (n,), knn_index (n, k), knn_sim (n, k))`` as in
        :class:`labelgate.core.duplicates.Neighbours`: the most similar earlier row found (-1 / -1.0 for
        row 0) and the ``k`` most similar other rows found, most similar first.
    """
    n = len(X)
    if not 1 <= k < n:
        raise ValueError(f"k must be between 1 and n - 1 = {n - 1}, got {k}")
    knn_index, knn_sim, earlier_index, earlier_sim = _search(
        X, None, k=k, n_probe=n_probe, n_cells=n_cells, seed=seed, earlier=True
    )
    short = np.flatnonzero(np.isneginf(knn_sim[:, -1]))
    if len(short):
        knn_index[short], knn_sim[short] = _exact_rows(X, X, short, k)
    lost = np.flatnonzero(earlier_index < 0)
    lost = lost[lost > 0]
    if len(lost):
        earlier_index[lost], earlier_sim[lost] = _exact_earlier(X, lost)
    earlier_sim[0] = -1.0
    return earlier_index, earlier_sim, knn_index, knn_sim


def approximate_nearest(
    queries: np.ndarray, others: np.ndarray, *, n_probe: int = N_PROBE, n_cells: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate most similar row of ``others`` for every query row: ``(index (nq,), cosine (nq,))``.

    The cells are built on ``others``; ``others`` must not be empty.
    """
    index, sim, _, _ = _search(others, queries, k=1, n_probe=n_probe, n_cells=n_cells, seed=seed, earlier=False)
    short = np.flatnonzero(np.isneginf(sim[:, 0]))
    if len(short):
        index[short], sim[short] = _exact_rows(others, queries, short, 1)
    return index[:, 0], sim[:, 0]
