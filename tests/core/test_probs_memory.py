"""The ensemble's arithmetic in less memory gives the same bits: the mean of the members without stacking them, the
normalisation and the temperature scaling in place (what 100,000 rows x 150 classes needed; see
docs/benchmarks.md)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.core.probs import (
    CHAR_NGRAMS,
    WORD_NGRAMS,
    _chars_member,
    _mean,
    _ngram_counts,
    _normalise,
    _rows,
    _words_member,
    temperature_scale,
)

pytestmark = pytest.mark.unit


def _old_temperature_scale(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """temperature_scale as it was before it worked in place (the reference)."""
    from scipy.optimize import minimize_scalar

    def normalise(p: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1.0)
        return p / p.sum(axis=1, keepdims=True)

    logp = np.log(np.clip(probs, 1e-12, 1.0))

    def scaled(T: float) -> np.ndarray:
        z = logp / T
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def loss(T: float) -> float:
        return float(-np.log(np.clip(scaled(T)[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())

    T = float(minimize_scalar(loss, bounds=(0.05, 20.0), method="bounded").x)
    return normalise(scaled(T)), T


@settings(max_examples=50, deadline=None)
@given(members=st.integers(1, 6), rows=st.integers(1, 40), classes=st.integers(2, 9), seed=st.integers(0, 10**6))
def test_the_mean_of_the_members_is_numpys_mean_bit_for_bit(members, rows, classes, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.dirichlet(np.ones(classes), size=rows) for _ in range(members)]
    want = np.mean(arrays, axis=0)
    got = _mean(arrays)
    assert got.tobytes() == want.tobytes()
    assert all(a is not got for a in arrays)  # a new array: the members are left as they were


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(2, 60), classes=st.integers(2, 7), seed=st.integers(0, 10**6))
def test_normalising_and_temperature_scaling_in_place_give_the_same_bits(rows, classes, seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(classes, 0.5), size=rows)
    probs[0, 0] = 0.0  # clipped to 1e-9
    labels = rng.integers(classes, size=rows)
    reference = np.clip(probs, 1e-9, 1.0)
    reference = reference / reference.sum(axis=1, keepdims=True)
    assert _normalise(probs).tobytes() == reference.tobytes()
    copy = probs.copy()
    assert _normalise(copy, inplace=True).tobytes() == reference.tobytes() and copy.tobytes() == reference.tobytes()
    got, temperature = temperature_scale(probs, labels)
    want, temperature_want = _old_temperature_scale(probs, labels)
    assert temperature == temperature_want and got.tobytes() == want.tobytes()


def _texts(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed)
    words = ["refund", "card", "lost", "please", "why", "my", "the", "top-up", "pending", "!", "?", "again"]
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 12)))) for _ in range(n)]


@pytest.mark.parametrize("options", [CHAR_NGRAMS, WORD_NGRAMS], ids=["chars", "words"])
def test_ngram_counts_are_small_integers_that_read_back_as_the_float64_counts(options):
    from sklearn.feature_extraction.text import CountVectorizer

    texts = np.asarray(_texts(0, 300), dtype=object)
    counts = _ngram_counts(texts, **options)
    assert counts.data.dtype == np.uint8  # short texts: each count fits in a byte (an eighth of float64's bytes)
    reference = CountVectorizer(dtype=np.float64, **options).fit_transform(texts).tocsr()
    rows = np.random.default_rng(1).permutation(len(texts))[:200]
    got, want = _rows(counts, rows), reference[rows]
    assert got.dtype == np.float64
    # the same entries in the same stored order (the order a fit's sums run in), not merely equal matrices
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)


def test_ngram_counts_widen_when_a_count_passes_a_byte():
    counts = _ngram_counts(np.asarray(["ab " * 300, "ab cd"], dtype=object), **CHAR_NGRAMS)
    assert counts.data.dtype == np.uint16 and counts.data.max() == 300  # " ab " 300 times in the first text


def test_the_lexical_members_on_integer_counts_give_the_float64_counts_bits():
    from sklearn.feature_extraction.text import CountVectorizer

    texts = np.asarray(_texts(2, 240), dtype=object)
    y = np.arange(len(texts)) % 3
    train, test = np.arange(0, 240, 4), np.setdiff1d(np.arange(240), np.arange(0, 240, 4))
    train, test = test, train  # fit on three quarters
    for member, options in ((_chars_member, CHAR_NGRAMS), (_words_member, WORD_NGRAMS)):
        small = _ngram_counts(texts, **options)
        wide = CountVectorizer(dtype=np.float64, **options).fit_transform(texts).tocsr()
        np.testing.assert_array_equal(member(small, y, train, test, 3), member(wide, y, train, test, 3))


@pytest.mark.parametrize("chunk", [1, 7, 59, 10**6])
def test_the_chars_member_scores_its_rows_in_chunks_with_the_same_bits(monkeypatch, chunk):
    import labelgate.core.probs as probs

    texts = np.asarray(_texts(3, 300), dtype=object)
    y = np.arange(len(texts)) % 4
    train, test = np.arange(0, 300, 3), np.setdiff1d(np.arange(300), np.arange(0, 300, 3))
    counts = _ngram_counts(texts, **CHAR_NGRAMS)
    whole = _chars_member(counts, y, train, test, 5)  # 5 columns: class 4 has no rows, its column stays 0
    monkeypatch.setattr(probs, "SCORE_CHUNK_ROWS", chunk)
    chunked = _chars_member(counts, y, train, test, 5)
    assert chunked.tobytes() == whole.tobytes()
    assert (whole[:, 4] == 0).all() and np.allclose(whole[:, :4].sum(axis=1), 1.0)


def _old_layers_member(F, y, train, test, k, grid):
    """The ``layers`` member before it standardised in place and skipped the copy for one C (the reference)."""
    from sklearn.linear_model import LogisticRegression

    mean = F[train].mean(axis=0)
    scale = F[train].std(axis=0)
    scale[scale < 1e-12] = 1.0
    X_train, X_test = (F[train] - mean) / scale, (F[test] - mean) / scale
    out = np.zeros((len(test), k, len(grid)))
    clf = LogisticRegression(C=grid[0], max_iter=3000, warm_start=True)
    for g, C in enumerate(grid):
        clf.set_params(C=C)
        clf.fit(X_train, y[train])
        part = np.zeros((len(test), k))
        part[:, clf.classes_] = clf.predict_proba(X_test)
        out[:, :, g] = part
    return out


@pytest.mark.parametrize("grid", [(0.005,), (0.005, 0.05)])
@pytest.mark.parametrize("k", [3, 4])  # with k=4 the training rows lack class 3: its column stays 0
def test_the_layers_member_gives_the_same_bits_with_fewer_arrays(grid, k):
    from labelgate.core.probs import _layers_member

    rng = np.random.default_rng(1)
    y = np.arange(120) % 3
    F = (rng.normal(size=(3, 6))[y] + rng.normal(size=(120, 6))).astype(np.float32)
    train, test = np.arange(0, 120, 2), np.arange(1, 120, 2)
    got = _layers_member(F, y, train, test, k, grid)
    want = _old_layers_member(F, y, train, test, k, grid)
    assert got.shape == want.shape == (60, k, len(grid)) and got.flags.c_contiguous
    # one C: scikit-learn's float32 probabilities as they are (half the bytes); several: the float64 grid array. The
    # ensemble widens them to float64, which is exact: the same bits as the old float64 result
    assert got.dtype == (np.float32 if len(grid) == 1 else np.float64)
    assert got.astype(np.float64).tobytes() == want.tobytes()


@pytest.mark.parametrize("block_rows", [1, 7, 64, 10**6])
def test_label_issues_found_block_by_block_are_those_of_the_whole_matrices(block_rows: int) -> None:
    """find_label_issues works a block of rows at a time (a million rows x 150 classes held 6 GB of whole matrices);
    every figure equals, bit for bit, what the whole class-adjusted and posterior matrices give."""
    from labelgate.core.ambiguity import ambiguity_scores
    from labelgate.core.detect import (
        Probabilities,
        confident_thresholds,
        find_label_issues,
        find_label_issues_cleanlab,
        noise_rates,
        true_label_posterior,
    )

    rng = np.random.default_rng(block_rows)
    n, k = 500, 7
    probs = rng.random((n, k)) ** 3
    labels = rng.integers(0, k, n)
    probs[np.arange(n), labels] += rng.random(n) * 2
    probs /= probs.sum(axis=1, keepdims=True)
    p = Probabilities(probs=probs, classes=[f"c{i}" for i in range(k)], labels=labels, method="test")
    ids = [f"r{i}" for i in range(n)]
    found = find_label_issues(ids, p, block_rows=block_rows)

    q = probs / confident_thresholds(probs, labels)[None, :]  # the whole matrices, as before
    q = q / q.sum(axis=1, keepdims=True)
    idx = np.arange(n)
    best = q.argmax(axis=1)
    posterior = true_label_posterior(probs, labels, noise_rates(probs, labels))
    assert (found["suggested_label"].to_numpy() == np.asarray(p.classes, dtype=object)[best]).all()
    assert np.array_equal(found["label_score"].to_numpy(), q[idx, labels])
    assert np.array_equal(found["suggested_prob"].to_numpy(), posterior[idx, best])
    assert np.array_equal(found["ambiguity"].to_numpy(), ambiguity_scores(adjusted=q, labels=labels, suggested=best))
    flagged = found[found["is_label_issue"]]
    assert 0 < len(flagged) < (best != labels).sum() + 1
    i = int(flagged.index[0])
    assert f"(class-adjusted {q[i, best[i]]:.2f} vs {q[i, labels[i]]:.2f})" in flagged["reason"].iloc[0]
    assert found.equals(find_label_issues(ids, p))
    plain = find_label_issues_cleanlab(ids, p)
    top = probs.argmax(axis=1)
    assert np.array_equal(plain["ambiguity"].to_numpy(), ambiguity_scores(adjusted=probs, labels=labels, suggested=top))
    with pytest.raises(ValueError, match="block_rows must be at least 1, got 0"):
        find_label_issues(ids, p, block_rows=0)


@pytest.mark.parametrize("chunk", [1, 3, 10**6])
@pytest.mark.parametrize("options", [CHAR_NGRAMS, WORD_NGRAMS], ids=["chars", "words"])
def test_ngram_counts_counted_in_chunks_are_fit_transforms_matrix_entry_for_entry(chunk: int, options: dict) -> None:
    """_ngram_counts counts the texts a chunk at a time (fit_transform held every count of a million texts in Python
    lists, 10 GB); the matrix is fit_transform's: the same entries in the same order within each row (the order the
    members' sums run in), the same vocabulary order, counts in the smallest unsigned type."""
    from sklearn.feature_extraction.text import CountVectorizer

    texts = np.asarray(
        ["the card was lost", "", "lost card lost card", "Ünïcødé and the card", "!!", "new card new card new"] * 3
        + ["a text seen once, with a tail of letters: " + "z" * 300],
        dtype=object,
    )
    expected = CountVectorizer(dtype=np.int64, **options).fit_transform(texts).tocsr()
    got = _ngram_counts(texts, chunk=chunk, **options)
    assert got.shape == expected.shape and got.dtype == np.min_scalar_type(int(expected.data.max()))
    assert np.array_equal(got.indptr, expected.indptr) and np.array_equal(got.indices, expected.indices)
    assert np.array_equal(got.data, expected.data)
    if options is CHAR_NGRAMS:
        assert not expected.has_sorted_indices  # so the order within rows is compared, not only the entries
    assert _ngram_counts(np.asarray(["", ""], dtype=object), chunk=chunk, **options) is None  # no n-gram at all
