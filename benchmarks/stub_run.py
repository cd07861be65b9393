"""``labelgate run`` with the embedding stubbed: what ``benchmarks/pipeline.py --stub-embedding`` runs in its child.

Not a test, and not for curation: the sentence vectors and the middle-layer features are a hashing vectoriser's
counts of each text times two fixed random matrices (384 columns each, L2-normalised vectors), so every array has
the real model's shape and every stage after the embedding does its real work at the real size, while the
embedding itself costs seconds instead of an hour at a million rows. The vectors carry none of the model's meaning:
a run's detection quality says nothing about labelgate's. ::

    python benchmarks/stub_run.py data.csv --db lg.duckdb --out out --json   # the arguments of ``labelgate run``
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence

import numpy as np

#: columns of the stubbed vectors and middle-layer features (MiniLM's)
DIM = 384
#: hashed token features the random matrices map from
HASHED = 2**14


@functools.cache
def _projections() -> tuple[np.ndarray, np.ndarray]:
    """The two fixed random ``(HASHED, DIM)`` float32 matrices (drawn once per process, not once per chunk)."""
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(HASHED, DIM)).astype(np.float32),
        rng.normal(size=(HASHED, DIM)).astype(np.float32),
    )


def _hashed(texts: Sequence[str]):  # -> scipy.sparse float32 (len(texts), HASHED)
    from sklearn.feature_extraction.text import HashingVectorizer

    hashing = HashingVectorizer(n_features=HASHED, alternate_sign=False, norm=None)
    return hashing.transform(list(texts)).astype(np.float32)


def stub_vectors(texts: Sequence[str]) -> np.ndarray:
    """The stubbed sentence vectors: float32 ``(len(texts), DIM)``, L2-normalised; deterministic."""
    vectors = np.asarray(_hashed(texts) @ _projections()[0], dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
    return vectors


def stub_pair(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors, layer features)``: float32 ``(len(texts), DIM)`` each, the vectors as :func:`stub_vectors`."""
    return stub_vectors(texts), np.asarray(_hashed(texts) @ _projections()[1], dtype=np.float32)


def main(argv: list[str]) -> None:
    import labelgate.embedding as embedding
    from labelgate.cli import main as cli

    embedding.encode_with_layers = lambda model, texts, **kwargs: stub_pair(texts)
    embedding.encode = lambda model, texts, **kwargs: stub_vectors(texts)
    sys.argv = ["labelgate", "run", *argv]
    cli()


if __name__ == "__main__":
    main(sys.argv[1:])
