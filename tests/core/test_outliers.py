"""kNN outliers with a robust z-score."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate.core.duplicates import neighbours
from labelgate.core.outliers import modified_z, outlier_issues

pytestmark = pytest.mark.unit


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


def _outlier_issues_by_records(row_ids, labels, nb, *, z_threshold=3.5, min_rows=20):
    """The record-by-record builder that outlier_issues replaced (the reference of its output)."""
    from labelgate.core.issues import issue_rows
    from labelgate.core.outliers import knn_distance

    d = knn_distance(nb)
    z = modified_z(d)
    scores = np.power(2.0, -np.maximum(z, 0.0) / z_threshold)
    flags = (z > z_threshold) & (len(d) >= min_rows)
    med = float(np.median(d)) if len(d) else 0.0
    k = nb.knn_sim.shape[1]
    return issue_rows(
        {
            "row_id": str(rid),
            "issue_type": "outlier",
            "score": float(s),
            "is_issue": bool(f),
            "given_label": str(label),
            "reason": (
                f"outlier: mean cosine distance {dist:.2f} to its {k} nearest rows vs median {med:.2f} "
                f"(robust z {zz:.1f} > {z_threshold:g})"
            )
            if f
            else None,
        }
        for rid, label, s, f, dist, zz in zip(row_ids, labels, scores, flags, d, z)
    )


def test_column_wise_builder_equals_the_record_builder():
    import pandas as pd

    rng = np.random.default_rng(1)
    flagged = 0
    for n in (0, 1, 5, 30, 200, 500):
        X = rng.normal(size=(n, 8)).astype(np.float32)
        X[: n // 50] *= 0.0
        X[: n // 50] += 5.0 * rng.normal(size=(n // 50, 8)).astype(np.float32)
        if n > 50:
            X[n // 50 :] = X[n // 50 :] * 0.05 + 1.0  # one tight blob and a few far rows
        nb = neighbours(X, k=min(5, max(n - 1, 0)))
        ids, labels = [f"r{i}" for i in range(n)], rng.choice(["a", "b"], n).tolist()
        for z in (2.0, 3.5):
            want = _outlier_issues_by_records(ids, labels, nb, z_threshold=z)
            pd.testing.assert_frame_equal(outlier_issues(ids, labels, nb, z_threshold=z), want)
            flagged += int(want["is_issue"].sum())
    assert flagged > 0
