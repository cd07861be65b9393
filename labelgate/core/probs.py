"""Out-of-sample predicted probabilities: an ensemble of embedding and lexical models, cross-fitted.

Confident learning is only as good as the predicted probabilities it is given. One logistic
regression on one sentence embedding (the published recipe) sees topic well and style badly; word
and character n-grams see style (``please``, ``?``, ``thanks``, shouting) well and topic badly. Their
average is better than either (measured in ``benchmarks/detection.py``). Every row is scored by models
that never saw it: K stratified folds, each member fitted on K-1 folds and predicting the held-out one.

Members (all linear, so fitting is linear in the number of rows and features):

- ``embedding``: multinomial logistic regression on the (L2-normalised) sentence embeddings.
- ``words``: NB-LR (Wang & Manning 2012) on binary word uni+bigrams, punctuation kept as tokens:
  one-vs-rest logistic regressions on features scaled by their naive-Bayes log-count ratios.
- ``chars``: logistic regression on sublinear TF-IDF of character 2-5-grams inside word boundaries.
- ``layers``: logistic regression on the mean-pooled *middle* transformer layers of the embedding model
  (:func:`labelgate.embedding.encode_layers`), standardised. The final sentence embedding is trained for
  topical similarity; the middle layers keep more of the surface form and syntax that tone, register and
  intent live in (Jawahar et al. 2019; Tenney et al. 2019). Its regularisation strength is chosen per run
  from :data:`LAYERS_C_GRID` by out-of-fold log-loss on the given labels (no truth is read).

The ensemble's probabilities are the mean of the members', calibrated by one temperature fitted to the
given labels (:func:`temperature_scale`).

The number of folds is chosen from the data's size when none is given (:func:`auto_folds`): every model
trains on ``(K-1)/K`` of the rows, and on small data that share matters. On politeness-wikipedia (3038 rows)
the precision of the 100 worst-scored rows was 0.78 on average over 10 fold seeds with 5 folds (0.75-0.83),
0.81 with 10 (0.77-0.83) and 0.81 with 20 (0.79-0.83); F1 did not change (0.560 both). The cost grows with
folds x rows while large data needs no larger share, so the total work is capped.

Nothing else is fitted to a dataset: the regularisation strengths are fixed defaults for L2-normalised /
binary features, except the ``layers`` member's, chosen by cross-validation on the given labels.
"""

from __future__ import annotations

import functools
import warnings
from array import array as typed_array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from labelgate.errors import ValidationError

#: every member :func:`ensemble_oof_probs` knows, in the order of its results (``Probabilities.members``)
MEMBERS = ("embedding", "words", "chars", "layers")
#: the members used when none are named (``layers`` needs :func:`labelgate.embedding.encode_layers` features)
DEFAULT_MEMBERS = ("embedding", "words", "chars", "layers")
#: every member of :data:`MEMBERS`, from the costliest fit to the cheapest (the order :func:`plan_oof` lists their jobs
#: in); measured at 3,038 rows of 3 classes and 100,000 rows of 150 classes alike (seconds per fit there: 110, 48, 44,
#: 18)
JOB_COST_ORDER = ("chars", "layers", "words", "embedding")
#: inverse regularisation strengths tried by the ``layers`` member (standardised features; a log grid)
LAYERS_C_GRID = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02)
#: above this many training rows the ``layers`` member uses the grid's middle value without a search
LAYERS_GRID_MAX_ROWS = 100_000
#: ... and above this many scored cells (rows x classes): the search keeps every row's probabilities for every C
#: until the C is chosen (float64, 6 C values: 0.96 GB at this size; 7 GB for a million rows of 150 classes)
LAYERS_GRID_MAX_CELLS = 20_000_000

#: :func:`combine_oof` keeps each member's own ``(n_rows, n_classes)`` array (``Probabilities.members``) up to this
#: many cells (40 MB of float64 each); larger inputs keep only the ensemble and each member's accuracy
KEEP_MEMBERS_MAX_CELLS = 5_000_000

#: automatic folds: as many as fit this many training-row fits in total, between the two bounds below
AUTO_FOLDS_ROW_BUDGET = 100_000
#: fewest folds :func:`auto_folds` picks (from ``AUTO_FOLDS_ROW_BUDGET / AUTO_MIN_FOLDS`` = 20,000 rows up)
AUTO_MIN_FOLDS = 5
#: most folds :func:`auto_folds` picks (up to ``AUTO_FOLDS_ROW_BUDGET / AUTO_MAX_FOLDS`` = 5,000 rows)
AUTO_MAX_FOLDS = 20

#: words and punctuation marks are both tokens (``?`` and ``!`` carry tone)
TOKEN_PATTERN = r"(?u)\b\w+\b|[^\w\s]"
#: the ``words`` member's n-grams (``CountVectorizer`` options): binary word uni- and bigrams
WORD_NGRAMS = {"ngram_range": (1, 2), "binary": True, "token_pattern": TOKEN_PATTERN}
#: the ``chars`` member's n-grams: character 2-5-grams inside word boundaries
CHAR_NGRAMS = {"analyzer": "char_wb", "ngram_range": (2, 5)}

#: an n-gram enters a fold's ``chars`` vocabulary when this many of its training rows have it
CHARS_MIN_DF = 3
#: cap of the character n-gram vocabulary (memory and time stay bounded on large inputs)
MAX_CHAR_FEATURES = 100_000
#: cap of the word n-gram vocabulary
MAX_WORD_FEATURES = 200_000
#: most parameters (features x classes) of the ``chars`` member's multinomial model: with many classes its
#: vocabulary is capped at this / classes features (:func:`char_features_cap`). The fit's memory (L-BFGS keeps 20
#: copies of the parameters) and each iteration's time grow with it: on 20,000 generated texts of 150 intents the fit
#: held 1.25 GiB; capping that vocabulary from 22,874 to 10,000 or 5,000 features left its error ranking unchanged
#: (precision at the error count 0.987 each) and cut its CPU by 16% / 43%.
MAX_CHAR_PARAMS = 3_000_000
#: ... but the ``chars`` vocabulary is never capped below this many features
MIN_CHAR_FEATURES = 5_000


@dataclass(frozen=True)
class Probabilities:
    """Out-of-sample predicted probabilities.

    Attributes:
        probs: float array, shape ``(n_rows, n_classes)``; rows sum to 1.
        classes: the class names, in column order (sorted).
        labels: int array, shape ``(n_rows,)``: the given label of each row as a column index.
        method: a short name of the model that produced them (e.g. ``ensemble(embedding+words+chars)-5fold``).
        members: each member's own out-of-sample probabilities (same shape as ``probs``), by member name; empty when
            :func:`combine_oof` did not keep them (large inputs, see :data:`KEEP_MEMBERS_MAX_CELLS`).
        member_accuracy: each member's out-of-sample accuracy on the given labels (argmax), by member name.
        chosen: what was fitted to the run's given labels: the calibration ``temperature`` and any member's
            cross-validated ``<member>_C``.
        n_folds: the number of cross-validation folds the probabilities came from.
        train_rows_cap: the cap on each fold's training rows when it applied (:attr:`OofPlan.train_rows_cap`).
        char_features_cap: the cap on the ``chars`` member's vocabulary when it applied
            (:attr:`OofPlan.char_features_cap`).
        layers_fixed_C: the ``layers`` member's C when :func:`layers_grid` left one value (large inputs), else None.
    """

    probs: np.ndarray
    classes: list[str]
    labels: np.ndarray
    method: str
    members: dict[str, np.ndarray] = field(default_factory=dict)
    member_accuracy: dict[str, float] = field(default_factory=dict)
    chosen: dict[str, float] = field(default_factory=dict)
    n_folds: int | None = None
    train_rows_cap: int | None = None
    char_features_cap: int | None = None
    layers_fixed_C: float | None = None


def encode_labels(labels: pd.Series | Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Map string labels to column indices of the sorted class list; return ``(indices, classes)``."""
    values = np.asarray(list(labels), dtype=object)
    classes = sorted({str(v) for v in values})
    index = {c: i for i, c in enumerate(classes)}
    return np.fromiter((index[str(v)] for v in values), dtype=np.int64, count=len(values)), classes


def auto_folds(n_rows: int, smallest_class: int, *, train_cap: int | None = None) -> int:
    """The number of folds used when none is given: ``AUTO_FOLDS_ROW_BUDGET // n_rows``, kept within
    [:data:`AUTO_MIN_FOLDS`, :data:`AUTO_MAX_FOLDS`] and at most ``smallest_class`` (at least 2).

    20 folds up to 5,000 rows, 10 at 10,000, 5 from 20,000: on small data each model then trains on 95% of
    the rows instead of 80%, at a cost (folds x rows) that stays within the budget as data grows.

    When ``train_cap`` (:func:`train_rows_cap`) is given and those folds would train on more rows than it, the fewest
    folds (at least 2) whose training rows still reach the cap: every model is fitted on a sample of ``train_cap``
    rows either way, so more folds would only add fits.

    >>> auto_folds(3038, 900), auto_folds(10_000, 900), auto_folds(1_000_000, 900), auto_folds(88, 7)
    (20, 10, 5, 7)
    >>> auto_folds(50_000, 300, train_cap=40_000), auto_folds(100_000, 300, train_cap=40_000)
    (5, 2)
    """
    k = min(AUTO_MAX_FOLDS, max(AUTO_MIN_FOLDS, AUTO_FOLDS_ROW_BUDGET // max(int(n_rows), 1)))
    n = int(n_rows)
    if train_cap is not None and n - n // k > train_cap:
        k = 2
        while n - n // k < train_cap:
            k += 1
    return max(2, min(k, int(smallest_class)))


def _check_folds(y: np.ndarray, classes: list[str], n_folds: int | None, *, train_cap: int | None = None) -> int:
    """The number of folds to use (``None``: :func:`auto_folds` with ``train_cap``), after checking every class has
    that many rows."""
    if len(classes) < 2:
        raise ValidationError(f"label-issue detection needs at least 2 classes, got {classes}")
    counts = np.bincount(y, minlength=len(classes))
    if n_folds is None:
        n_folds = auto_folds(len(y), int(counts.min()), train_cap=train_cap)
    if counts.min() < n_folds:
        small = classes[int(counts.argmin())]
        raise ValidationError(
            f"class {small!r} has {int(counts.min())} rows; {n_folds}-fold detection needs at least {n_folds} "
            "rows per class (merge or drop the class, or lower --folds)"
        )
    return int(n_folds)


def _folds(y: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def _normalise(probs: np.ndarray, *, inplace: bool = False) -> np.ndarray:
    """``probs`` clipped to [1e-9, 1] and each row divided by its sum (float64); ``inplace``: into ``probs`` itself
    (a float64 array the caller no longer needs)."""
    probs = np.asarray(probs, dtype=np.float64)
    probs = np.clip(probs, 1e-9, 1.0, out=probs if inplace else None)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs


def _mean(arrays: Iterable[np.ndarray]) -> np.ndarray:
    """``np.mean(list(arrays), axis=0)``, bit for bit (numpy adds the stacked arrays one after another along that
    axis), without the stacked copy of them all; a new array. ``arrays`` may be a generator, so that only the array
    it yields need exist beside the sum."""
    them = iter(arrays)
    total = np.array(next(them), dtype=np.float64)
    count = 1
    for array in them:
        total += array
        count += 1
    total /= count
    return total


def _logreg(C: float):  # -> LogisticRegression
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=3000)


def _fit(clf, X_train, y_train):  # -> the fitted clf (convergence warnings silenced)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clf.fit(X_train, y_train)


def _fit_predict(clf, X_train, y_train, X_test, n_classes: int) -> np.ndarray:
    return _predict(_fit(clf, X_train, y_train), X_test, n_classes)


#: the ``chars`` member scores its held-out rows this many at a time: their TF-IDF matrix and probabilities exist one
#: chunk at a time (each row's numbers do not depend on the others': the same bits as scoring them at once)
SCORE_CHUNK_ROWS = 20_000


def _predict_chunks(clf, features: Callable[[np.ndarray], Any], rows: np.ndarray, n_classes: int) -> np.ndarray:
    """:func:`_predict` of ``features(rows)``, built and scored :data:`SCORE_CHUNK_ROWS` rows at a time (for sparse
    features, whose products are computed row by row; dense ones go through BLAS, whose blocking may differ)."""
    out = np.zeros((len(rows), n_classes))
    for start in range(0, len(rows), SCORE_CHUNK_ROWS):
        part = rows[start : start + SCORE_CHUNK_ROWS]
        out[start : start + len(part)] = _predict(clf, features(part), n_classes)
    return out


def _predict(clf, X_test, n_classes: int) -> np.ndarray:
    """The fitted ``clf``'s probabilities of ``X_test``'s rows, one column per class of ``n_classes`` (0 for a class
    its training rows lacked)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        part = clf.predict_proba(X_test)
    # float32 features give float32 probabilities: kept so (half the bytes of a fold's result, in the worker and in
    # its result file); they are widened to float64 where they are combined, which is exact, so the bits do not move
    if len(clf.classes_) == n_classes:  # every class was among the training rows: the columns are in order already
        return np.ascontiguousarray(part)
    out = np.zeros((X_test.shape[0], n_classes), dtype=part.dtype)
    out[:, clf.classes_] = part
    return out


#: most training rows any member fits per fold; above it (and above :func:`train_rows_cap`), a stratified seeded
#: sample (a linear model of a few hundred features needs no more, and a fit's time stays bounded at any size)
MAX_TRAIN_ROWS = 100_000
#: a fold's fits cost about (training rows x classes): above this many, the rows are capped (:func:`train_rows_cap`)
TRAIN_CELL_BUDGET = 6_000_000
#: ... but never below this many training rows per class (on banking77, 77 classes, fitting 57 rows per class
#: instead of 115 cost 0.03 F1: the cap must not bite where classes are thin)
MIN_TRAIN_ROWS_PER_CLASS = 200


def train_rows_cap(n_classes: int) -> int:
    """Most training rows a member fits per fold with ``n_classes`` classes: :data:`TRAIN_CELL_BUDGET` / classes,
    at least :data:`MIN_TRAIN_ROWS_PER_CLASS` per class, at most :data:`MAX_TRAIN_ROWS`.

    Multinomial and one-vs-rest logistic regressions cost about rows x classes per pass, so a fit's time is bounded
    whatever the size of the data: out-of-fold scoring then grows linearly (each fold's held-out rows are scored by
    a model of bounded size), and :func:`auto_folds` then fits only as many folds as it needs. 100,000 rows up to 60
    classes, 77,922 for 77, 40,000 for 150, 60,000 for 300.

    >>> train_rows_cap(3), train_rows_cap(77), train_rows_cap(150), train_rows_cap(300), train_rows_cap(5000)
    (100000, 77922, 40000, 60000, 100000)
    """
    k = max(int(n_classes), 1)
    return min(MAX_TRAIN_ROWS, max(MIN_TRAIN_ROWS_PER_CLASS * k, TRAIN_CELL_BUDGET // k))


def char_features_cap(n_classes: int) -> int:
    """Most features of the ``chars`` member with ``n_classes`` classes: :data:`MAX_CHAR_PARAMS` / classes, within
    [:data:`MIN_CHAR_FEATURES`, :data:`MAX_CHAR_FEATURES`] (the most frequent n-grams of a fold's training rows, the
    way ``max_features`` picks them). It bites from 31 classes, and only where the vocabulary is that large.

    >>> [char_features_cap(k) for k in (3, 30, 77, 150, 900)]
    [100000, 100000, 38961, 20000, 5000]
    """
    k = max(int(n_classes), 1)
    return min(MAX_CHAR_FEATURES, max(MIN_CHAR_FEATURES, MAX_CHAR_PARAMS // k))


def train_sample(y: np.ndarray, train: np.ndarray, k: int, cap: int) -> np.ndarray:
    """``train`` (row indices) when it has at most ``cap`` rows; else a stratified seeded sample of about ``cap`` of
    them, in input order: every class keeps its share of the rows (at least one), drawn with a seed fixed by the
    fold's size."""
    if len(train) <= cap:
        return train
    y_train = y[train]
    counts = np.bincount(y_train, minlength=k)
    quota = np.maximum(counts * cap // len(train), np.minimum(counts, 1))
    shuffled = np.random.default_rng(len(train)).permutation(len(train))
    by_class = shuffled[np.argsort(y_train[shuffled], kind="stable")]  # grouped by class, random within
    rank = np.empty(len(train), dtype=np.int64)
    rank[by_class] = np.arange(len(train)) - np.repeat(np.cumsum(counts) - counts, counts)
    return train[rank < quota[y_train]]


def _embedding_member(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    """Multinomial logistic regression on the embeddings of ``train``; probabilities of ``test`` ``(n_test, k)``.
    (:func:`run_oof_job` runs every member on one BLAS thread.)"""
    return _fit_predict(_logreg(1.0), X[train], y[train], X[test], k)


def _layers_member(
    F: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, k: int, grid: Sequence[float]
) -> np.ndarray:
    """Standardised multinomial logistic regression for every C of ``grid``: shape ``(n_test, k, len(grid))``."""
    from sklearn.linear_model import LogisticRegression

    mean = F[train].mean(axis=0)
    scale = F[train].std(axis=0)
    scale[scale < 1e-12] = 1.0
    X_train = (F[train] - mean) / scale
    X_test = F[test]  # a copy, standardised in place: the same numbers as (F[test] - mean) / scale, one array fewer
    X_test -= mean
    X_test /= scale
    clf = LogisticRegression(C=grid[0], max_iter=3000, warm_start=True)
    if len(grid) == 1:  # (large inputs, :func:`layers_grid`): the one C's probabilities, without a copy
        return _fit_predict(clf, X_train, y[train], X_test, k)[:, :, None]
    out = np.zeros((len(test), k, len(grid)))
    for g, C in enumerate(grid):  # increasing C, each fit starts from the previous solution
        clf.set_params(C=C)
        out[:, :, g] = _fit_predict(clf, X_train, y[train], X_test, k)
    return out


def layers_grid(n_rows: int, *, scored_cells: int = 0) -> tuple[float, ...]:
    """The C values the ``layers`` member tries with ``n_rows`` training rows per fold: the grid's middle value alone
    above :data:`LAYERS_GRID_MAX_ROWS` rows or :data:`LAYERS_GRID_MAX_CELLS` ``scored_cells`` (all rows x classes).

    >>> len(layers_grid(9_000, scored_cells=10_000 * 77)), layers_grid(40_000, scored_cells=1_000_000 * 150)
    (6, (0.005,))
    """
    if n_rows > LAYERS_GRID_MAX_ROWS or scored_cells > LAYERS_GRID_MAX_CELLS:
        return (LAYERS_C_GRID[len(LAYERS_C_GRID) // 2],)
    return LAYERS_C_GRID


#: texts counted at a time by :func:`_ngram_counts`
COUNT_CHUNK = 20_000


def _ngram_counts(texts: np.ndarray, *, chunk: int = COUNT_CHUNK, **options: Any) -> Any:
    """Sparse n-gram counts ``(n_rows, vocabulary)`` of every text (what ``CountVectorizer(**options).fit_transform``
    of all of them gives, vocabulary in its sorted order), or ``None`` when no text has any n-gram.

    Extracted once per plan; every fold then keeps the columns a vectoriser fitted on its training rows alone
    would keep (:func:`_fold_columns`), which gives the same matrices as refitting per fold without redoing
    the text analysis (most of a lexical member's time).

    The texts are counted ``chunk`` at a time, each chunk's counts turned into arrays at once: scikit-learn's
    ``fit_transform`` collects every count of every text in Python lists first (at a million texts of character
    n-grams, 10 GB). The matrix is the same, entry for entry and in the same order within each row: each row's
    entries sorted by when their n-gram was first seen in the texts, then numbered in the vocabulary's sorted
    order, as ``fit_transform`` does.

    The counts are stored in the smallest unsigned integer type that holds the largest of them (``uint8`` for short
    texts: an eighth of float64's bytes, in the run's process and in every worker's mapped pages); every member
    reads its rows as float64 (:func:`_rows`), so its numbers are the same as from float64 counts.
    """
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(dtype=np.int64, **options)
    analyze = vectorizer.build_analyzer()
    seen: dict[str, int] = {}  # n-gram -> the order in which it was first seen
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (row lengths, columns by first sight, counts)
    for start in range(0, len(texts), chunk):
        columns: list[int] = []
        counts = typed_array("q")
        lengths = typed_array("q")
        for text in texts[start : start + chunk]:
            found: dict[int, int] = {}
            for gram in analyze(text):
                column = seen.setdefault(gram, len(seen))
                found[column] = found.get(column, 0) + 1
            columns.extend(found)
            counts.extend(found.values())
            lengths.append(len(found))
        lengths_a = np.frombuffer(lengths, dtype=np.int64) if len(lengths) else np.zeros(0, dtype=np.int64)
        block = sp.csr_array(
            (
                np.frombuffer(counts, dtype=np.int64) if len(counts) else np.zeros(0, dtype=np.int64),
                np.asarray(columns, dtype=np.int64),
                np.concatenate([[0], np.cumsum(lengths_a)]),
            ),
            shape=(len(lengths_a), max(len(seen), 1)),
        )
        block.sort_indices()  # within each row, by first sight (what fit_transform's one matrix does)
        top = int(block.data.max()) if block.nnz else 0
        parts.append((lengths_a, block.indices.astype(np.int32), block.data.astype(np.min_scalar_type(top))))
        del block, columns, counts
    if not seen:  # empty vocabulary (fit_transform raises ValueError)
        return None
    names = sorted(seen)
    rank = np.empty(len(names), dtype=np.int32)  # first-sight order -> the vocabulary's sorted order
    for position, gram in enumerate(names):
        rank[seen[gram]] = position
    del names, seen
    nnz = sum(len(c) for _, c, _ in parts)
    top = 1 if vectorizer.binary else max((int(d.max()) for _, _, d in parts if len(d)), default=0)
    indices = np.empty(nnz, dtype=np.int32 if nnz <= np.iinfo(np.int32).max else np.int64)
    data = np.empty(nnz, dtype=np.min_scalar_type(top))
    lengths_all = []
    at = 0
    while parts:
        lengths_a, cols, vals = parts.pop(0)
        indices[at : at + len(cols)] = rank[cols]
        data[at : at + len(vals)] = vals
        at += len(cols)
        lengths_all.append(lengths_a)
        del cols, vals
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(lengths_all))]).astype(indices.dtype)
    out = sp.csr_matrix((data, indices, indptr), shape=(len(texts), len(rank)))
    if vectorizer.binary:
        out.data.fill(1)
    return out


def _rows(counts: Any, rows: np.ndarray) -> Any:
    """The rows ``rows`` of :func:`_ngram_counts`' matrix, as float64 counts (exact: they are small integers), with
    the stored entries in the order float64 counts would have had (scipy's ``astype`` would also sort each row's
    column indices, which changes the order sums run in, and so the last bits of every fit)."""
    part = counts[rows]
    part.data = part.data.astype(np.float64)
    return part


def _fold_columns(X: Any, *, min_df: int, max_features: int) -> tuple[np.ndarray, np.ndarray]:
    """The columns of ``X`` (a fold's training rows of :func:`_ngram_counts`) that
    ``CountVectorizer(min_df=, max_features=)`` fitted on those rows alone would keep, in its order
    (scikit-learn's ``_limit_features``), and every column's document frequency in them."""
    dfs = np.bincount(X.indices, minlength=X.shape[1])
    mask = dfs >= min_df
    if mask.sum() > max_features:
        tfs = np.asarray(X.sum(axis=0)).ravel()
        keep = (-tfs[mask]).argsort()[:max_features]
        limited = np.zeros(len(dfs), dtype=bool)
        limited[np.where(mask)[0][keep]] = True
        mask = limited
    return np.flatnonzero(mask), dfs


def _prior(y: np.ndarray, train: np.ndarray, n_test: int, k: int) -> np.ndarray:
    return np.tile(np.bincount(y[train], minlength=k) / len(train), (n_test, 1))


def _words_member(counts: Any, y: np.ndarray, train: np.ndarray, test: np.ndarray, k: int) -> np.ndarray:
    """NB-LR on binary word uni+bigrams (``counts``: :data:`WORD_NGRAMS` of every text): one-vs-rest,
    features scaled by log-count ratios (:func:`_nblr`)."""
    if counts is None:
        return _prior(y, train, len(test), k)
    X_train = _rows(counts, train)
    cols, _ = _fold_columns(X_train, min_df=2, max_features=MAX_WORD_FEATURES)
    if len(cols) == 0:  # no token occurs twice: nothing to learn from words
        return _prior(y, train, len(test), k)
    return _nblr(X_train[:, cols], y[train], _rows(counts, test)[:, cols], k)


def _nblr(X_train: Any, y_train: np.ndarray, X_test: Any, k: int) -> np.ndarray:
    """NB-LR (Wang & Manning 2012): per class, a logistic regression of class-vs-rest on the features scaled
    by their naive-Bayes log-count ratios; probabilities ``(n_test, k)`` (not normalised)."""
    import scipy.sparse as sp

    out = np.zeros((X_test.shape[0], k))
    for c in range(k):
        pos = y_train == c
        if not pos.any() or pos.all():
            out[:, c] = float(pos.mean())
            continue
        p = 1.0 + np.asarray(X_train[pos].sum(axis=0)).ravel()
        q = 1.0 + np.asarray(X_train[~pos].sum(axis=0)).ravel()
        ratio = sp.diags(np.log((p / p.sum()) / (q / q.sum())))
        clf = _logreg(0.1)
        out[:, c] = _fit_predict(clf, X_train @ ratio, pos.astype(int), X_test @ ratio, 2)[:, 1]
    return out


def _chars_member(
    counts: Any, y: np.ndarray, train: np.ndarray, test: np.ndarray, k: int, max_features: int = MAX_CHAR_FEATURES
) -> np.ndarray:
    """Logistic regression on sublinear TF-IDF of character 2-5-grams (``counts``: :data:`CHAR_NGRAMS` of
    every text), vocabulary and IDF from the training rows (what ``TfidfVectorizer(min_df=3, max_features=)``
    fitted on them gives)."""
    from sklearn.preprocessing import normalize

    if counts is None:
        return _prior(y, train, len(test), k)
    X_train = _rows(counts, train)
    cols, dfs = _fold_columns(X_train, min_df=CHARS_MIN_DF, max_features=max_features)
    if len(cols) == 0:
        return _prior(y, train, len(test), k)
    idf = np.full(len(cols), float(len(train) + 1), dtype=np.float64)
    idf /= dfs[cols].astype(np.float64) + 1.0
    np.log(idf, out=idf)
    idf += 1.0

    def tfidf(rows: Any) -> Any:  # the kept columns of ``rows``' counts, sublinear TF-IDF, rows L2-normalised
        part = rows[:, cols].tocsr()
        np.log(part.data, out=part.data)
        part.data += 1.0
        part.data *= idf[part.indices]
        return normalize(part, norm="l2", copy=False)

    # one matrix at a time: the test rows' features are built once the fit (and L-BFGS's history, 20 copies of the
    # parameters) has let go of its memory; the numbers are the same as building both first
    X_fit = tfidf(X_train)
    del X_train
    clf = _fit(_logreg(1.0), X_fit, y[train])
    del X_fit
    return _predict_chunks(clf, lambda rows: tfidf(_rows(counts, rows)), test, k)


@dataclass(frozen=True)
class OofJob:
    """One unit of out-of-fold work: fit ``member`` on every fold but ``fold`` and score the held-out fold."""

    member: str
    fold: int


@dataclass(frozen=True)
class OofPlan:
    """Everything the jobs of :func:`ensemble_oof_probs` need (picklable: a job may run on another machine).

    Attributes:
        features: float32 array ``(n_rows, dim)`` or ``None`` (no ``embedding`` member).
        y: int array ``(n_rows,)``: the given labels as column indices of ``classes``.
        classes: the class names, sorted.
        folds: ``(train_index, test_index)`` per fold.
        members: member names, in :data:`MEMBERS` order of fitting.
        jobs: one :class:`OofJob` per (member, fold).
        layer_features: float32 array ``(n_rows, hidden)`` or ``None`` (no ``layers`` member).
        layers_grid: the C values the ``layers`` member tries (see :func:`layers_grid`).
        word_counts: sparse :data:`WORD_NGRAMS` counts of every text, or ``None`` (no ``words`` member, or no
            word in any text); each fold keeps its training rows' vocabulary.
        char_counts: sparse :data:`CHAR_NGRAMS` counts of every text, or ``None``.
        char_max_features: the ``chars`` member's vocabulary cap (:func:`char_features_cap` of the classes).
        char_features_cap: ``char_max_features`` when it is below :data:`MAX_CHAR_FEATURES` and the vocabulary
            (n-grams in at least :data:`CHARS_MIN_DF` of all the rows) is larger, so some fold's vocabulary may be
            capped by it (an approximation the run's metrics record); else ``None``.
        train_rows_cap: when some fold had more training rows than :func:`train_rows_cap` allows, that cap (every
            fold's training rows are then a stratified sample of that many, :func:`train_sample`); else ``None``.
    """

    features: np.ndarray | None
    y: np.ndarray
    classes: list[str]
    folds: list[tuple[np.ndarray, np.ndarray]]
    members: tuple[str, ...]
    jobs: tuple[OofJob, ...]
    layer_features: np.ndarray | None = None
    layers_grid: tuple[float, ...] = LAYERS_C_GRID
    word_counts: Any = None
    char_counts: Any = None
    train_rows_cap: int | None = None
    char_max_features: int = MAX_CHAR_FEATURES
    char_features_cap: int | None = None


def available_members(
    *, features: np.ndarray | None, texts: Sequence[str] | None, layer_features: np.ndarray | None
) -> tuple[str, ...]:
    """The :data:`DEFAULT_MEMBERS` whose inputs are given (what ``members=None`` means)."""
    has = {"embedding": features is not None, "words": texts is not None, "chars": texts is not None}
    has["layers"] = layer_features is not None
    return tuple(m for m in DEFAULT_MEMBERS if has[m])


def plan_oof(
    features: np.ndarray | None,
    labels: pd.Series | Sequence[str],
    *,
    texts: Sequence[str] | None = None,
    layer_features: np.ndarray | None = None,
    members: Sequence[str] | None = None,
    n_folds: int | None = None,
    seed: int = 0,
) -> OofPlan:
    """Check the inputs of :func:`ensemble_oof_probs` and split the work into jobs (no model is fitted here).

    Raises:
        ValidationError: fewer than 2 classes, a class smaller than ``n_folds``, or an unknown member.
        ValueError: a member's input is missing or of the wrong length.
    """
    if members is None:
        members = available_members(features=features, texts=texts, layer_features=layer_features)
    unknown = [m for m in members if m not in MEMBERS]
    if unknown or not members:
        raise ValidationError(f"unknown detector member(s) {unknown or list(members)!r}; choose from {list(MEMBERS)}")
    y, classes = encode_labels(labels)
    cap = train_rows_cap(len(classes))
    n_folds = _check_folds(y, classes, n_folds, train_cap=cap)
    n = len(y)
    X = None
    if "embedding" in members:
        if features is None or len(features) != n:
            raise ValueError(
                f"member 'embedding' needs {n} feature rows, got {None if features is None else len(features)}"
            )
        X = np.asarray(features, dtype=np.float32)
    F = None
    if "layers" in members:
        if layer_features is None or len(layer_features) != n:
            got = None if layer_features is None else len(layer_features)
            raise ValueError(f"member 'layers' needs {n} layer-feature rows, got {got}")
        F = np.asarray(layer_features, dtype=np.float32)
    T = None
    if {"words", "chars"} & set(members):
        if texts is None or len(texts) != n:
            raise ValueError(f"lexical members need {n} texts, got {None if texts is None else len(texts)}")
        T = np.asarray([t if isinstance(t, str) else "" for t in texts], dtype=object)
    folds = _folds(y, n_folds, seed)
    capped = any(len(train) > cap for train, _ in folds)
    if capped:
        folds = [(train_sample(y, train, len(classes), cap), test) for train, test in folds]
    members = tuple(members)
    # the costliest member's jobs first: workers taking jobs in this order finish together instead of one waiting
    # on a late `chars` fit (combine_oof reads each member's folds in fold order either way: the same bits)
    jobs = tuple(OofJob(m, f) for m in sorted(members, key=JOB_COST_ORDER.index) for f in range(len(folds)))
    char_counts = _ngram_counts(T, **CHAR_NGRAMS) if "chars" in members else None
    char_max = char_features_cap(len(classes))
    char_capped = None
    if char_counts is not None and char_max < MAX_CHAR_FEATURES:
        vocabulary = int((np.bincount(char_counts.indices, minlength=char_counts.shape[1]) >= CHARS_MIN_DF).sum())
        char_capped = char_max if vocabulary > char_max else None
    return OofPlan(
        features=X,
        y=y,
        classes=classes,
        folds=folds,
        members=members,
        jobs=jobs,
        layer_features=F,
        layers_grid=layers_grid(n - n // n_folds, scored_cells=n * len(classes)),
        train_rows_cap=cap if capped else None,
        word_counts=_ngram_counts(T, **WORD_NGRAMS) if "words" in members else None,
        char_counts=char_counts,
        char_max_features=char_max,
        char_features_cap=char_capped,
    )


def run_oof_job(plan: OofPlan, job: OofJob) -> np.ndarray:
    """Fit ``job.member`` on the other folds and score fold ``job.fold``'s rows.

    Returns ``(n_test, k)`` probabilities; for ``layers``, ``(n_test, k, len(plan.layers_grid))`` (one per C).
    """
    from threadpoolctl import threadpool_limits

    # one BLAS thread: these fits are many small matrix products, and BLAS's own threads (2 here) spin against
    # each other and any other process on shared cores; measured on politeness (3038 rows, 4 members, load ~2.7
    # on 2 cores): 33 s with the default threads, 6.3 s with one. Parallelism comes from running jobs side by side.
    with threadpool_limits(limits=1, user_api="blas"):
        return _run_member(plan, job)


def _run_member(plan: OofPlan, job: OofJob) -> np.ndarray:
    train, test = plan.folds[job.fold]
    k = len(plan.classes)
    if job.member == "embedding":
        return _embedding_member(plan.features, plan.y, train, test, k)
    if job.member == "words":
        return _words_member(plan.word_counts, plan.y, train, test, k)
    if job.member == "chars":
        return _chars_member(plan.char_counts, plan.y, train, test, k, plan.char_max_features)
    if job.member == "layers":
        return _layers_member(plan.layer_features, plan.y, train, test, k, plan.layers_grid)
    raise ValidationError(f"unknown detector member {job.member!r}; choose from {list(MEMBERS)}")


def _given_log_probs(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's log-probability of its label ``y`` (clipped at 1e-12), shape ``(n_rows,)``."""
    return np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))


def _log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-_given_log_probs(probs, y).mean())


def _oof_log_loss(parts: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray, g: int) -> float:
    """:func:`_log_loss` of the normalised C-``g`` probabilities of every fold's ``(test rows, (n_test, k, C))``
    result, the same number as on the assembled ``(n, k)`` array (each row's terms are the same; the mean runs in
    row order) without assembling it."""
    logs = np.zeros(len(y), dtype=np.float64)
    for test, part in parts:
        logs[test] = _given_log_probs(_normalise(part[:, :, g]), y[test])
    return float(-logs.mean())


def combine_oof(plan: OofPlan, results: list[np.ndarray | None], *, keep_members: bool | None = None) -> Probabilities:
    """Assemble the jobs' results (in ``plan.jobs`` order) into calibrated ensemble :class:`Probabilities`.

    A member scored with several C values (``layers``) keeps the one with the lowest out-of-fold log-loss
    on the given labels; the choice is recorded in ``Probabilities.chosen``.

    ``results`` is emptied as it is read (each entry set to ``None``): a fold's result is let go once it is copied
    into its member's ``(n_rows, n_classes)`` array, and a member's array once it is added to the ensemble's sum, so
    at most one member's array is held beside the sum (at a million rows of 150 classes each is 1.2 GB). The
    numbers are those of assembling every member and averaging them (:func:`_mean`), bit for bit.

    Args:
        plan: the plan the jobs came from.
        results: one array per job of ``plan.jobs``: ``(n_test, n_classes)``, or ``(n_test, n_classes, n_C)``
            for a member scored with several C values.
        keep_members: keep each member's own array in ``Probabilities.members``; None (default) keeps them when
            ``n_rows * n_classes <= KEEP_MEMBERS_MAX_CELLS``. ``Probabilities.member_accuracy`` is always set.
    """
    if len(results) != len(plan.jobs):
        raise ValueError(f"{len(results)} results for {len(plan.jobs)} jobs")
    n = len(plan.y)
    keep = n * len(plan.classes) <= KEEP_MEMBERS_MAX_CELLS if keep_members is None else keep_members
    positions: dict[str, list[int]] = {}  # member -> its jobs' positions in plan.jobs, in fold order
    for i, job in enumerate(plan.jobs):
        positions.setdefault(job.member, []).append(i)
    kept: dict[str, np.ndarray] = {}
    accuracy: dict[str, float] = {}
    chosen: dict[str, float] = {}

    def assembled() -> Iterator[np.ndarray]:  # each member's normalised (n, k) array, in plan.members order
        for m in plan.members:
            parts = []  # (test rows, result) per fold
            for i in positions[m]:
                part, results[i] = results[i], None
                # as returned (float32 for the dense members): widened to float64, exactly, as it is copied below
                parts.append((plan.folds[plan.jobs[i].fold][1], np.asarray(part)))
                del part
            best = None
            if parts[0][1].ndim == 3:  # one result per C: keep the C with the lowest out-of-fold log-loss
                losses = [_oof_log_loss(parts, plan.y, g) for g in range(parts[0][1].shape[2])]
                best = int(np.argmin(losses))
                chosen[f"{m}_C"] = float(plan.layers_grid[best])
            p = np.zeros((n, len(plan.classes)), dtype=np.float64)
            while parts:
                test, part = parts.pop(0)
                p[test] = part if best is None else part[:, :, best]
                del part
            p = _normalise(p, inplace=True)
            accuracy[m] = float((p.argmax(axis=1) == plan.y).mean())
            if keep:
                kept[m] = p
            yield p
            del p  # before the next member's array is allocated

    total = _mean(assembled())
    probs, temperature = temperature_scale(_normalise(total, inplace=True), plan.y, inplace=True)
    del total
    chosen["temperature"] = round(temperature, 4)
    members = plan.members
    name = members[0] if len(members) == 1 else f"ensemble({'+'.join(members)})"
    return Probabilities(
        probs=probs,
        classes=plan.classes,
        labels=plan.y,
        method=f"{name}-{len(plan.folds)}fold",
        members=kept,
        member_accuracy=accuracy,
        chosen=chosen,
        n_folds=len(plan.folds),
        train_rows_cap=plan.train_rows_cap,
        char_features_cap=plan.char_features_cap,
        layers_fixed_C=plan.layers_grid[0] if "layers" in members and len(plan.layers_grid) == 1 else None,
    )


#: ``map_jobs(function, jobs) -> results`` in the jobs' order (the default runs them one after another)
JobMapper = Callable[[Callable[[OofJob], np.ndarray], Sequence[OofJob]], Sequence[np.ndarray]]


def _serial(function: Callable[[OofJob], np.ndarray], jobs: Sequence[OofJob]) -> list[np.ndarray]:
    return [function(job) for job in jobs]


def ensemble_oof_probs(
    features: np.ndarray | None,
    labels: pd.Series | Sequence[str],
    *,
    texts: Sequence[str] | None = None,
    layer_features: np.ndarray | None = None,
    members: Sequence[str] | None = None,
    n_folds: int | None = None,
    seed: int = 0,
    map_jobs: JobMapper | None = None,
) -> Probabilities:
    """K-fold out-of-sample probabilities of an ensemble of linear models (mean of the members).

    Args:
        features: float array, shape ``(n_rows, dim)``: normalised sentence embeddings (needed by the
            ``embedding`` member; ``None`` when it is not used).
        labels: the given label of each row (strings), length ``n_rows``.
        texts: the texts (needed by ``words`` and ``chars``).
        layer_features: float array ``(n_rows, hidden)`` of :func:`labelgate.embedding.encode_layers` (needed
            by ``layers``).
        members: names from :data:`MEMBERS`; ``None``: the :data:`DEFAULT_MEMBERS` whose inputs are given.
        n_folds: stratified folds, at least 2 and at most the size of the smallest class; ``None``:
            :func:`auto_folds` of the rows and the smallest class.
        seed: seed of the fold shuffle.
        map_jobs: how to run the (member, fold) jobs (e.g. on a Dask cluster); results must not depend on it.

    Returns:
        :class:`Probabilities` with the ensemble mean in ``probs`` and every member's in ``members``.

    Raises:
        ValidationError: fewer than 2 classes, a class smaller than ``n_folds``, or an unknown member.
        ValueError: a member's input is missing or of the wrong length.
    """
    plan = plan_oof(
        features, labels, texts=texts, layer_features=layer_features, members=members, n_folds=n_folds, seed=seed
    )
    results: list[np.ndarray | None] = list((map_jobs or _serial)(functools.partial(run_oof_job, plan), plan.jobs))
    return combine_oof(plan, results)  # (which lets go of each result once it is used)


def temperature_scale(probs: np.ndarray, labels: np.ndarray, *, inplace: bool = False) -> tuple[np.ndarray, float]:
    """Calibrate ``probs`` with one temperature (Guo et al. 2017) fitted to the given labels by log-loss.

    An average of models is under-confident where they agree; one scalar ``T`` rescales the logits
    ``log p / T`` so that the probabilities match how often the given labels occur. The ranking of
    classes within a row is unchanged. Returns ``(calibrated, T)`` with ``T`` in [0.05, 20].
    ``inplace``: compute the logits in ``probs`` itself (a float64 array the caller no longer needs; the same bits).
    """
    from scipy.optimize import minimize_scalar

    logp = np.clip(probs, 1e-12, 1.0, out=probs if inplace else None)
    np.log(logp, out=logp)

    def scaled(T: float) -> np.ndarray:  # one (n_rows, n_classes) array per call, however many rows
        z = logp / T
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    T = float(minimize_scalar(lambda T: _log_loss(scaled(T), labels), bounds=(0.05, 20.0), method="bounded").x)
    return _normalise(scaled(T), inplace=True), T


def out_of_fold_probs(
    features: np.ndarray,
    labels: pd.Series | Sequence[str],
    *,
    n_folds: int = 5,
    seed: int = 0,
    C: float = 1.0,
) -> Probabilities:
    """The published recipe's probabilities: K-fold multinomial logistic regression on ``features`` alone.

    Kept as the baseline of ``benchmarks/detection.py`` and for callers without texts.

    Raises:
        ValidationError: fewer than 2 classes, or a class smaller than ``n_folds``.
    """
    y, classes = encode_labels(labels)
    _check_folds(y, classes, n_folds)
    X = np.asarray(features, dtype=np.float32)
    probs = np.zeros((len(y), len(classes)), dtype=np.float64)
    for train, test in _folds(y, n_folds, seed):
        probs[test] = _fit_predict(_logreg(C), X[train], y[train], X[test], len(classes))
    return Probabilities(
        probs=_normalise(probs), classes=classes, labels=y, method=f"logreg-{n_folds}fold", n_folds=n_folds
    )
