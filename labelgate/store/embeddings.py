"""The embedding cache shared by all runs, keyed by (model, text sha256)."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa


def cached_hashes(con: duckdb.DuckDBPyConnection, model: str, hashes: list[str]) -> set[str]:
    """Return the subset of ``hashes`` that already have a vector for ``model``."""
    if not hashes:
        return set()
    wanted = pa.table({"h": pa.array(hashes, pa.string())})
    con.register("_lg_wanted", wanted)
    try:
        found = con.execute(
            "SELECT e.text_sha256 FROM embeddings e JOIN _lg_wanted w ON e.text_sha256 = w.h WHERE e.model = ?",
            [model],
        ).fetchall()
    finally:
        con.unregister("_lg_wanted")
    return {r[0] for r in found}


def put_embeddings(con: duckdb.DuckDBPyConnection, model: str, hashes: list[str], vectors: np.ndarray) -> int:
    """Store vectors (shape ``(n, dim)``, float32) for ``hashes``; existing keys are left as they are."""
    if len(hashes) != len(vectors):
        raise ValueError(f"{len(hashes)} hashes but {len(vectors)} vectors")
    if not hashes:
        return 0
    n, dim = vectors.shape
    table = pa.table(
        {
            "model": pa.array([model] * n, pa.string()),
            "text_sha256": pa.array(hashes, pa.string()),
            "dim": pa.array([dim] * n, pa.int32()),
            "vector": vectors_to_arrow(vectors),
        }
    )
    con.register("_lg_vectors", table)
    try:
        con.execute(
            "INSERT OR IGNORE INTO embeddings (model, text_sha256, dim, vector) "
            "SELECT model, text_sha256, dim, vector FROM _lg_vectors"
        )
    finally:
        con.unregister("_lg_vectors")
    return n


#: rows per batch when :func:`get_embeddings` streams the vectors
VECTOR_BATCH = 20_000


def get_embeddings(con: duckdb.DuckDBPyConnection, model: str, hashes: list[str]) -> np.ndarray:
    """Return the cached vectors of ``hashes`` for ``model`` in the given order, shape ``(n, dim)``.

    Raises:
        KeyError: a hash has no cached vector.
    """
    if not hashes:
        return np.zeros((0, 0), dtype=np.float32)
    wanted = pa.table({"h": pa.array(hashes, pa.string()), "i": pa.array(np.arange(len(hashes)), pa.int64())})
    con.register("_lg_wanted", wanted)
    out: np.ndarray | None = None
    missing: list[np.ndarray] = []
    try:
        # streamed in batches, each batch's vectors put in their rows of one array (no ORDER BY, no whole result held
        # by DuckDB, Arrow and numpy at once: a million rows' vectors are 1.5 GB and the whole result cost 5 times
        # that); the array is numpy's own, so nothing of it stays in Arrow's pool when it is dropped
        reader = con.sql(
            "SELECT w.i, e.vector FROM _lg_wanted w LEFT JOIN embeddings e ON e.text_sha256 = w.h AND e.model = $model",
            params={"model": model},
        ).fetch_record_batch(VECTOR_BATCH)
        for batch in reader:
            rows = batch.column("i").to_numpy()
            vec = batch.column("vector")
            if vec.null_count:
                absent = vec.is_null().to_numpy(zero_copy_only=False)
                missing.append(rows[absent])
                rows, vec = rows[~absent], vec.filter(pa.array(~absent))
            if len(rows) == 0:
                continue
            flat = vec.flatten().to_numpy(zero_copy_only=False)
            if out is None:
                out = np.empty((len(hashes), len(flat) // len(rows)), dtype=np.float32)
            out[rows] = flat.reshape(len(rows), -1)
    finally:
        con.unregister("_lg_wanted")
    if missing:
        absent_rows = np.sort(np.concatenate(missing))
        examples = [hashes[i] for i in absent_rows[:3]]
        raise KeyError(f"no cached vector for {len(absent_rows)} texts (e.g. {examples})")
    assert out is not None
    return out


def vectors_to_arrow(matrix: np.ndarray) -> pa.Array:
    """Return a list<float32> arrow array of the rows of ``matrix`` (shape ``(n, k)``)."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n, k = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32), pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), pa.float32()))
