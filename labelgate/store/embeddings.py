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


def get_embeddings(con: duckdb.DuckDBPyConnection, model: str, hashes: list[str]) -> np.ndarray:
    """Return the cached vectors of ``hashes`` for ``model`` in the given order, shape ``(n, dim)``.

    Raises:
        KeyError: a hash has no cached vector.
    """
    if not hashes:
        return np.zeros((0, 0), dtype=np.float32)
    wanted = pa.table({"h": pa.array(hashes, pa.string()), "i": pa.array(np.arange(len(hashes)), pa.int64())})
    con.register("_lg_wanted", wanted)
    try:
        table = con.sql(
            "SELECT w.i, e.vector FROM _lg_wanted w LEFT JOIN embeddings e "
            "ON e.text_sha256 = w.h AND e.model = $model ORDER BY w.i",
            params={"model": model},
        ).to_arrow_table()
    finally:
        con.unregister("_lg_wanted")
    vec = table.column("vector").combine_chunks()
    if vec.null_count:
        missing = [hashes[i] for i, v in enumerate(vec.is_null().to_pylist()) if v][:3]
        raise KeyError(f"no cached vector for {vec.null_count} texts (e.g. {missing})")
    flat = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    # a copy in numpy's own memory: Arrow's buffers go back to its pool, which the connection's close empties
    # (:func:`labelgate.store.connection.connect`), and the caller's array is given back to the OS when it is dropped
    # (a million rows' vectors are 1.5 GB, which Arrow's pool would otherwise keep for the rest of the run)
    return np.array(flat.reshape(len(hashes), -1), dtype=np.float32, copy=True)


def vectors_to_arrow(matrix: np.ndarray) -> pa.Array:
    """Return a list<float32> arrow array of the rows of ``matrix`` (shape ``(n, k)``)."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n, k = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32), pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), pa.float32()))
