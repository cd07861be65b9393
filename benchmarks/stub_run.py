"""``labelgate run`` with the embedding stubbed: what ``benchmarks/pipeline.py --stub-embedding`` runs in its child.

Not a test, and not for curation: the sentence vectors and the middle-layer features are a hashing vectoriser's
counts of each text times two fixed random matrices (384 columns each, L2-normalised vectors), so every array has
the real model's shape and every stage after the embedding does its real work at the real size, while the
embedding itself costs seconds instead of an hour at a million rows. The vectors carry none of the model's meaning:
a run's detection quality says nothing about labelgate's. ::

    python benchmarks/stub_run.py data.csv --db lg.duckdb --out out --json   # the arguments of ``labelgate run``
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

#: columns of the stubbed vectors and middle-layer features (MiniLM's)
DIM = 384
#: hashed token features the random matrices map from
HASHED = 2**14


def stub_pair(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors, layer features)``: float32 ``(len(texts), DIM)`` each, the vectors L2-normalised; deterministic."""
    from sklearn.feature_extraction.text import HashingVectorizer

    counts = HashingVectorizer(n_features=HASHED, alternate_sign=False, norm=None).transform(list(texts))
    counts = counts.astype(np.float32)
    rng = np.random.default_rng(0)
    vectors = np.asarray(counts @ rng.normal(size=(HASHED, DIM)).astype(np.float32), dtype=np.float32)
    layers = np.asarray(counts @ rng.normal(size=(HASHED, DIM)).astype(np.float32), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
    return vectors, layers


def main(argv: list[str]) -> None:
    import labelgate.embedding as embedding
    from labelgate.cli import main as cli

    embedding.encode_with_layers = lambda model, texts, **kwargs: stub_pair(texts)
    embedding.encode = lambda model, texts, **kwargs: stub_pair(texts)[0]
    sys.argv = ["labelgate", "run", *argv]
    cli()


if __name__ == "__main__":
    main(sys.argv[1:])
