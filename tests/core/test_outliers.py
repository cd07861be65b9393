"""kNN outliers with a robust z-score."""

from __future__ import annotations

import numpy as np

from labelgate.core.duplicates import neighbours
from labelgate.core.outliers import modified_z, outlier_issues


def test_far_row_is_flagged_and_typical_rows_are_not():
    rng = np.random.default_rng(0)
    centre = np.eye(32)[0]
    far = np.eye(32)[31]
    X = np.vstack([centre + rng.normal(0, 0.05, (60, 32)), far]).astype(np.float32)
    ids = [f"r{i}" for i in range(61)]
    out = outlier_issues(ids, ["a"] * 61, neighbours(X, k=5)).set_index("row_id")
    assert out.loc["r60", "is_issue"]
    assert out["is_issue"].sum() == 1
    assert out.loc["r60", "score"] < 0.5 and out["score"].max() == 1.0
    assert out.loc["r60", "reason"].startswith("outlier: mean cosine distance")


def test_small_sets_and_constant_distances_flag_nothing():
    X = np.eye(4, dtype=np.float32)
    out = outlier_issues(list("abcd"), list("xxxx"), neighbours(X, k=2))
    assert not out["is_issue"].any()
    assert (modified_z(np.ones(5)) == 0).all()
