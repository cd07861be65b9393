"""Duplicates, conflicting labels and leakage."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate.core.duplicates import duplicate_issues, leakage_issues, nearest_in, neighbours, normalise_text

pytestmark = pytest.mark.unit


def _vectors():
    return np.array(
        [[1, 0, 0], [0, 1, 0], [0.99, 0.1, 0], [0, 0, 1], [0, 0.05, 1]],
        dtype=np.float32,
    )


def test_neighbours_are_exact_and_exclude_self():
    nb = neighbours(_vectors(), k=2)
    assert nb.earlier_index[0] == -1
    assert nb.earlier_index[2] == 0 and nb.earlier_sim[2] > 0.99
    assert nb.knn_index[0, 0] == 2
    assert (nb.knn_index != np.arange(5)[:, None]).all()
    assert (np.diff(nb.knn_sim, axis=1) <= 1e-6).all()


def test_neighbours_chunks_agree_with_one_product(monkeypatch):
    import labelgate.core.duplicates as dup

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 8)).astype(np.float32)
    whole = neighbours(X, k=3)
    monkeypatch.setattr(dup, "CHUNK", 7)
    chunked = neighbours(X, k=3)
    assert (whole.knn_index == chunked.knn_index).all()
    assert (whole.earlier_index == chunked.earlier_index).all()


def test_duplicates_near_duplicates_and_conflicts():
    ids = ["a", "b", "c", "d", "e"]
    texts = ["Refund please", "where is my parcel", "refund   PLEASE", "reset password", "reset my password"]
    labels = ["billing", "shipping", "shipping", "account", "account"]
    out = duplicate_issues(ids, texts, labels, neighbours(_vectors(), k=2), near_threshold=0.95)
    flagged = out[out["is_issue"]].set_index(["row_id", "issue_type"])
    assert normalise_text(texts[2]) == normalise_text(texts[0])
    assert flagged.loc[("c", "exact_duplicate"), "related_row_id"] == "a"
    assert ("c", "near_duplicate") not in flagged.index  # exact wins
    assert flagged.loc[("e", "near_duplicate"), "related_row_id"] == "d"
    assert "near-duplicate of row d labelled account (cosine" in flagged.loc[("e", "near_duplicate"), "reason"]
    assert flagged.loc[("a", "conflicting_label"), "suggested_label"] == "shipping"
    assert flagged.loc[("c", "conflicting_label"), "related_row_id"] == "a"
    assert ("e", "conflicting_label") not in flagged.index  # same label: a duplicate, not a conflict
    near = out[out["issue_type"] == "near_duplicate"]
    assert len(near) == 5 and near["score"].between(0, 1).all()


def test_exact_duplicates_without_vectors():
    out = duplicate_issues(["a", "b"], ["x", "x"], ["p", "p"], None)
    assert list(out["issue_type"]) == ["exact_duplicate"]


def test_leakage_exact_and_near():
    X = _vectors()
    out = leakage_issues(
        ["a", "b", "c"],
        ["Hello there", "unrelated", "x"],
        X[:3],
        ["t1", "t2"],
        ["hello THERE", "nothing"],
        np.array([[0, 0, 1], [0.02, 1, 0]], np.float32),
        threshold=0.95,
    ).set_index("row_id")
    assert out.loc["a", "related_row_id"] == "t1" and out.loc["a", "score"] == 0.0
    assert out.loc["b", "related_row_id"] == "t2" and "near-twin of test row t2" in out.loc["b", "reason"]
    assert "c" not in out.index
    _, sim = nearest_in(X[:1], np.zeros((0, 3), np.float32))
    assert sim[0] == -1.0


def _duplicate_issues_by_records(row_ids, texts, labels, nb, *, near_threshold=0.95):
    """The record-by-record builder that duplicate_issues replaced (the reference of its output)."""
    from labelgate.core.duplicates import text_key
    from labelgate.core.issues import issue_rows

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


def test_column_wise_builder_equals_the_record_builder():
    import pandas as pd

    rng = np.random.default_rng(0)
    conflicts = 0
    for trial in range(40):
        n = int(rng.integers(0, 200))
        X = rng.normal(size=(n, 6)).astype(np.float32)
        if n > 10:  # near copies, some of them of several rows, and exact texts
            src, dst = rng.integers(0, n, n // 4), rng.integers(0, n, n // 4)
            X[dst] = X[src] + rng.normal(0, 0.02, (len(dst), 6))
        pool = max(1, n // 3 if trial % 2 else n * 5)
        texts = [f"Text  {v}" if v % 2 else f"text {v}" for v in rng.integers(0, pool, n).tolist()]
        if n:
            texts[0] = None
        labels = rng.choice(["a", "b", "c"], n).tolist()
        ids = [f"r{i}" for i in range(n)]
        nb = neighbours(X, k=int(rng.integers(0, 4))) if n else None
        for vectors in (nb, None):
            threshold = float(rng.choice([0.9, 0.95, 0.99]))
            want = _duplicate_issues_by_records(ids, texts, labels, vectors, near_threshold=threshold)
            got = duplicate_issues(ids, texts, labels, vectors, near_threshold=threshold)
            pd.testing.assert_frame_equal(got, want)
            conflicts += int((want["issue_type"] == "conflicting_label").sum())
    assert conflicts > 50  # the comparison covered conflicts of both kinds of pair
