"""Vector helpers shared by the embedding, duplicate and neighbour code."""

from __future__ import annotations

import numpy as np

__all__ = ["unit_rows"]


def unit_rows(X: np.ndarray, rows: np.ndarray | slice | None = None) -> np.ndarray:
    """``X[rows]`` (all rows when None) as a float32 copy, each row divided by its L2 norm (zero rows stay zero).

    Args:
        X: ``(n, d)`` array of any float dtype.
        rows: row indices or a slice of ``X``.

    Returns:
        ``(len(rows), d)`` float32.
    """
    part = np.array(X if rows is None else X[rows], dtype=np.float32)
    norms = np.linalg.norm(part, axis=1, keepdims=True)
    part /= np.maximum(norms, 1e-12)
    return part
