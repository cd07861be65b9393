"""Duplicates, conflicting labels and leakage."""

from __future__ import annotations

import numpy as np

from labelgate.core.duplicates import duplicate_issues, leakage_issues, nearest_in, neighbours, normalise_text


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
