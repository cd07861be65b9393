"""Label-issue detection: confident learning on out-of-sample probabilities, class by class.

The probabilities come from :mod:`labelgate.core.probs` (an out-of-fold ensemble; every row is scored
by models that never saw it). This module turns them into one verdict per row:

- The per-class *confident thresholds* of confident learning (Northcutt et al. 2021; cleanlab's
  ``get_confident_thresholds``): ``t_j`` = the mean predicted probability of class ``j`` over the rows
  labelled ``j``. A model is not equally sure of every class (a rare or vague class gets low
  probabilities even where it is right); dividing by ``t_j`` puts the classes on one scale.
- ``adjusted`` probabilities ``q_ij = (p_ij / t_j) / sum_k (p_ik / t_k)``.
- ``label_score = q_i,given`` in [0, 1]: higher = the given label is more likely right (the ranking).
- ``is_label_issue``: the given label is not the most likely class on the adjusted scale (another class
  clears its own confidence threshold by a wider margin: cleanlab's ``predicted_neq_given`` rule on
  threshold-adjusted probabilities) *and* the row is among the ``N`` lowest label scores, ``N`` being
  confident learning's estimate of the number of label errors (:func:`estimated_error_count`). The
  first condition alone over-flags clean, easy data; the second alone ignores which class wins.
- ``suggested_label`` = the adjusted argmax (the given label when the row is not flagged).
- ``suggested_prob`` = the probability that the suggestion is the row's *true* label given both the text
  and the label it was given (:func:`true_label_posterior`): Bayes' rule with the model's probabilities as
  the prior and confident learning's estimated noise rates ``P(given | true)`` as the likelihood. A given
  label from a class that is rarely mislabelled keeps weight; one from a noisy class yields more easily.
  It is what the auto gate's relabel threshold reads (relabel when the suggestion is more likely than not).
- ``label_kind`` / ``ambiguity``: a flagged row is ``mislabelled`` (a confident disagreement) or ``ambiguous``
  (the given label nearly ties with the suggestion on the adjusted scale); :mod:`labelgate.core.ambiguity`. The
  review queue lists the mislabelled rows first; the gate does not read the kind.

:func:`find_label_issues_cleanlab` keeps the published recipe's rule (cleanlab ``find_label_issues``
with its defaults, self-confidence ranking) for the benchmark.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from labelgate.core.probs import (
    MEMBERS,
    Probabilities,
    encode_labels,
    ensemble_oof_probs,
    out_of_fold_probs,
)
from labelgate.errors import SettingsError

__all__ = [
    "LABEL_ISSUE_COLUMNS",
    "MEMBERS",
    "Detection",
    "DetectorSettings",
    "Probabilities",
    "adjusted_probs",
    "confident_joint",
    "confident_thresholds",
    "detect_all",
    "encode_labels",
    "ensemble_oof_probs",
    "estimated_error_count",
    "find_label_issues",
    "find_label_issues_cleanlab",
    "noise_rates",
    "out_of_fold_probs",
    "true_label_posterior",
]

LABEL_ISSUE_COLUMNS = [
    "row_id",
    "given_label",
    "suggested_label",
    "suggested_prob",
    "model_prob",
    "given_prob",
    "label_score",
    "is_label_issue",
    "reason",
    "label_kind",
    "ambiguity",
]


def confident_thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-class mean predicted probability of the class over the rows labelled with it, shape ``(n_classes,)``.

    A class no row is labelled with gets threshold 1 (its probabilities are left as they are).
    """
    k = probs.shape[1]
    out = np.ones(k, dtype=np.float64)
    for j in range(k):
        mask = labels == j
        if mask.any():
            out[j] = max(float(probs[mask, j].mean()), 1e-6)
    return out


def adjusted_probs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Probabilities divided by the per-class confident thresholds and renormalised, shape of ``probs``."""
    return _adjusted(probs, confident_thresholds(probs, labels))


def _adjusted(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    q = np.asarray(probs, dtype=np.float64) / thresholds[None, :]
    q /= q.sum(axis=1, keepdims=True)  # in place: the numbers of ``q / q.sum(...)``, one array fewer
    return q


def confident_joint(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """cleanlab's calibrated confident joint, shape ``(n_classes, n_classes)`` indexed ``[given, true]``: how many
    rows are estimated to carry each given label while belonging to each class."""
    from cleanlab.count import calibrate_confident_joint, compute_confident_joint

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joint = np.asarray(calibrate_confident_joint(compute_confident_joint(labels, probs), labels), dtype=float)
    k = probs.shape[1]
    if joint.shape != (k, k):  # a class nobody is labelled with: cleanlab sizes the joint by the labels seen
        full = np.zeros((k, k))
        m = min(k, joint.shape[0])
        full[:m, :m] = joint[:m, :m]
        joint = full
    return joint


def noise_rates(probs: np.ndarray, labels: np.ndarray, joint: np.ndarray | None = None) -> np.ndarray:
    """Confident learning's estimate of ``P(given = j | true = i)``, shape ``(n_classes, n_classes)`` indexed
    ``[j, i]`` (columns sum to 1), from the calibrated :func:`confident_joint` (computed when not given). A
    class no row confidently belongs to keeps an identity column (no evidence of noise)."""
    joint = confident_joint(probs, labels) if joint is None else joint
    k = joint.shape[0]
    totals = joint.sum(axis=0, keepdims=True)
    rates = np.where(totals > 0, joint / np.where(totals > 0, totals, 1.0), np.eye(k))
    return rates


def true_label_posterior(probs: np.ndarray, labels: np.ndarray, rates: np.ndarray | None = None) -> np.ndarray:
    """``P(true = i | text, given label)`` per row, shape of ``probs``: the model's probabilities times the
    noise rate ``P(given | true = i)`` (:func:`noise_rates`), renormalised."""
    rates = noise_rates(probs, labels) if rates is None else rates
    post = np.asarray(probs, dtype=np.float64) * rates[labels, :]
    totals = post.sum(axis=1, keepdims=True)
    return np.where(totals > 0, post / np.where(totals > 0, totals, 1.0), probs)


def _frame(
    row_ids: Sequence[str] | pd.Series,
    p: Probabilities,
    *,
    suggested: np.ndarray,
    scores: np.ndarray,
    flags: np.ndarray,
    given_q: np.ndarray,
    top_q: np.ndarray,
    adjusted: bool,
    posterior: np.ndarray | None = None,
) -> pd.DataFrame:
    """The label-issue frame from per-row figures (each shape ``(n_rows,)``): ``given_q`` / ``top_q`` the
    probabilities of the given label and of the suggestion the ambiguity is read from (class-adjusted when
    ``adjusted``), ``posterior`` the suggestion's :func:`true_label_posterior` (None: its model probability)."""
    from labelgate.core.ambiguity import ambiguity_of, label_kinds

    n = len(p.labels)
    idx = np.arange(n)
    ambiguity = ambiguity_of(given=given_q, top=top_q, labels=p.labels, suggested=suggested)
    classes = np.asarray(p.classes, dtype=object)
    given = classes[p.labels]
    suggested_names = classes[suggested]
    model_prob = p.probs[idx, suggested]
    suggested_prob = posterior if posterior is not None else model_prob
    given_prob = p.probs[idx, p.labels]
    reasons: list[str | None] = [None] * n
    for i in np.flatnonzero(flags):
        text = f"model disagrees: {suggested_names[i]} {model_prob[i]:.2f} vs given {given[i]} {given_prob[i]:.2f}"
        if adjusted:
            text += f" (class-adjusted {top_q[i]:.2f} vs {given_q[i]:.2f})"
        if posterior is not None:
            text += f"; P(true label is {suggested_names[i]}) {suggested_prob[i]:.2f} given the noise rates"
        reasons[i] = text
    return pd.DataFrame(
        {
            "row_id": list(row_ids),
            "given_label": given,
            "suggested_label": suggested_names,
            "suggested_prob": suggested_prob,
            "model_prob": model_prob,
            "given_prob": given_prob,
            "label_score": np.asarray(scores, dtype=float),
            "is_label_issue": np.asarray(flags, dtype=bool),
            "reason": reasons,
            "label_kind": label_kinds(ambiguity=ambiguity, flags=np.asarray(flags, dtype=bool)),
            "ambiguity": ambiguity,
        },
        columns=LABEL_ISSUE_COLUMNS,
    )


#: rows at a time in the row-wise steps of :func:`find_label_issues` (its numbers do not depend on it)
ROW_BLOCK = 50_000


def find_label_issues(
    row_ids: Sequence[str] | pd.Series, p: Probabilities, *, block_rows: int = ROW_BLOCK
) -> pd.DataFrame:
    """Flag likely label errors by class-adjusted confident learning; one row per input row.

    The class-adjusted probabilities (:func:`adjusted_probs`) and the posterior (:func:`true_label_posterior`) are
    worked out ``block_rows`` rows at a time and only the entries the frame needs are kept: besides ``p.probs``, the
    memory of one block's matrices (a million rows of 150 classes held 6 GB of whole matrices). The numbers are
    those of the whole matrices, bit for bit: every step is row by row.

    Returns:
        A DataFrame with columns :data:`LABEL_ISSUE_COLUMNS`, in the input order: ``label_score`` in
        [0, 1] (higher = the given label is more likely right; the adjusted probability of the given
        label), ``suggested_label`` the adjusted argmax, ``suggested_prob`` the probability that it is the
        true label (:func:`true_label_posterior`), ``given_prob`` the plain model probability of the given
        label, ``is_label_issue`` the adjusted argmax differs from the given label and the row is within
        confident learning's error count, ``reason`` a sentence for flagged rows, ``label_kind`` ``mislabelled`` or
        ``ambiguous`` for flagged rows (None for the others) and ``ambiguity`` in [0, 1] for every row
        (:mod:`labelgate.core.ambiguity`).

    Raises:
        ValueError: ``row_ids`` and ``p`` differ in length, or ``block_rows`` < 1.
    """
    if len(row_ids) != len(p.labels):
        raise ValueError(f"{len(row_ids)} row ids for {len(p.labels)} rows of probabilities")
    if block_rows < 1:
        raise ValueError(f"block_rows must be at least 1, got {block_rows!r}")
    n = len(p.labels)
    thresholds = confident_thresholds(p.probs, p.labels)
    joint = confident_joint(p.probs, p.labels)
    rates = noise_rates(p.probs, p.labels, joint)
    suggested = np.empty(n, dtype=np.int64)
    scores, top_q, posterior = np.empty(n), np.empty(n), np.empty(n)
    for start in range(0, n, block_rows):
        rows = slice(start, start + block_rows)
        probs, labels = p.probs[rows], p.labels[rows]
        idx = np.arange(len(labels))
        q = _adjusted(probs, thresholds)
        best = q.argmax(axis=1)
        suggested[rows], scores[rows], top_q[rows] = best, q[idx, labels], q[idx, best]
        del q
        posterior[rows] = true_label_posterior(probs, labels, rates)[idx, best]
    flags = suggested != p.labels
    budget = _off_diagonal(joint)
    if flags.sum() > budget:
        order = np.argsort(scores, kind="stable")
        within = np.zeros(len(scores), dtype=bool)
        within[order[:budget]] = True
        flags &= within
    return _frame(
        row_ids,
        p,
        suggested=suggested,
        scores=scores,
        flags=flags,
        given_q=scores,
        top_q=top_q,
        adjusted=True,
        posterior=posterior,
    )


def estimated_error_count(probs: np.ndarray, labels: np.ndarray) -> int:
    """Confident learning's estimate of the number of label errors: the off-diagonal mass of cleanlab's
    calibrated confident joint (rows counted as confidently belonging to a class other than their label)."""
    return _off_diagonal(confident_joint(probs, labels))


def _off_diagonal(joint: np.ndarray) -> int:
    return round(float(joint.sum() - np.trace(joint)))


def find_label_issues_cleanlab(
    row_ids: Sequence[str] | pd.Series, p: Probabilities, *, filter_by: str = "prune_by_noise_rate"
) -> pd.DataFrame:
    """The published recipe's rule: cleanlab ``find_label_issues`` (defaults) and self-confidence scores.

    Same columns as :func:`find_label_issues`; ``suggested_label`` is the plain argmax (and ``ambiguity`` is read
    from the plain probabilities).
    """
    from cleanlab.filter import find_label_issues as cl_find_label_issues
    from cleanlab.rank import get_label_quality_scores

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # n_jobs=1: cleanlab forks a process pool otherwise, which can hang in a process with other threads
        # (Prefect's) and prints "Process ForkPoolWorker" lines on stderr
        flags = cl_find_label_issues(labels=p.labels, pred_probs=p.probs, filter_by=filter_by, n_jobs=1)
        scores = get_label_quality_scores(labels=p.labels, pred_probs=p.probs, method="self_confidence")
    suggested = p.probs.argmax(axis=1)
    idx = np.arange(len(p.labels))
    return _frame(
        row_ids,
        p,
        suggested=suggested,
        scores=scores,
        flags=np.asarray(flags, bool),
        given_q=p.probs[idx, p.labels],
        top_q=p.probs[idx, suggested],
        adjusted=False,
    )


@dataclass(frozen=True)
class DetectorSettings:
    """Settings of :func:`detect_all`.

    :meth:`labelgate.config.CurateParams.detector_settings` builds them from the flow parameters (``members`` is
    the parameter ``detector_members``). ``dataclasses.asdict`` of them is part of the detection key
    (:func:`detection_key`), so a field added here changes every key.

    Attributes:
        members: models averaged for the out-of-fold probabilities, names from :data:`MEMBERS` (unknown names
            are refused by the scoring, :class:`~labelgate.errors.ValidationError`); ``None``: the default
            members whose inputs :func:`detect_all` is given.
        n_folds: folds of the out-of-fold probabilities (2..50); ``None``: :func:`labelgate.core.probs.auto_folds`.
        seed: seed of the folds and the models.
        near_duplicate_threshold: cosine similarity (0..1) at or above which a later row is a near duplicate.
        leakage_threshold: cosine similarity (0..1) at or above which a row is a near twin of a test row.
        outlier_k: neighbours (>= 1) whose mean distance is a row's outlier distance.
        outlier_z: robust z-score (> 0) of the outlier distance above which a row is an outlier.
        min_text_words: texts with fewer words (>= 1) are flagged ``empty``.
        max_text_tokens: token budget (>= 1) of one text, longer ones are flagged ``too_long``; ``None``: no check.

    Raises:
        SettingsError: (also a ValueError) a value outside its range; the message names the field.
    """

    members: tuple[str, ...] | None = None
    n_folds: int | None = None
    seed: int = 0
    near_duplicate_threshold: float = 0.95
    leakage_threshold: float = 0.95
    outlier_k: int = 10
    outlier_z: float = 3.5
    min_text_words: int = 2
    max_text_tokens: int | None = 512

    def __post_init__(self) -> None:
        if self.members is not None:
            if isinstance(self.members, str):
                raise SettingsError(f"members must be a sequence of member names, got the string {self.members!r}")
            object.__setattr__(self, "members", tuple(self.members))
        if self.n_folds is not None and not 2 <= self.n_folds <= 50:
            raise SettingsError(f"n_folds must be in 2..50 or None, got {self.n_folds!r}")
        for name in ("near_duplicate_threshold", "leakage_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SettingsError(f"{name} must be in [0, 1], got {value!r}")
        if self.outlier_k < 1:
            raise SettingsError(f"outlier_k must be at least 1, got {self.outlier_k!r}")
        if not self.outlier_z > 0:
            raise SettingsError(f"outlier_z must be above 0, got {self.outlier_z!r}")
        if self.min_text_words < 1:
            raise SettingsError(f"min_text_words must be at least 1, got {self.min_text_words!r}")
        if self.max_text_tokens is not None and self.max_text_tokens < 1:
            raise SettingsError(f"max_text_tokens must be at least 1 or None, got {self.max_text_tokens!r}")


def detection_key(rows: Iterable[tuple[str, str, str]], settings: Mapping[str, Any]) -> str:
    """The key of a detection's inputs: a later run with the same key can reuse its results.

    Args:
        rows: ``(row_id, text_sha256, label)`` of every valid row (any order).
        settings: everything else the detectors' results depend on (detector settings, embedding model and
            backend, the test file's sha256, the labelgate version), JSON-serialisable.

    Returns:
        Hex sha256 of the sorted rows and the settings.
    """
    h = hashlib.sha256()
    for rid, sha, label in sorted((str(r), str(s), str(lab)) for r, s, lab in rows):
        h.update(f"{rid}\x1f{sha}\x1f{label}\x1e".encode())
    h.update(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Detection:
    """What :func:`detect_all` found.

    Attributes:
        probs: the out-of-fold probabilities.
        label_issues: :func:`find_label_issues` output (one row per input row).
        issues: every detector's rows in the long shape of :mod:`labelgate.core.issues`.
        seconds: wall time per part: ``label`` (out-of-fold fits and the label rule), ``fit.<member>`` (that member's
            fits, when they ran here with progress reporting), ``neighbours``, ``leakage``.
    """

    probs: Probabilities
    label_issues: pd.DataFrame
    issues: pd.DataFrame
    seconds: dict[str, float]


#: ``run_jobs(function, jobs, on_done) -> results`` in the jobs' order, calling ``on_done(job, seconds, done, total)``
#: as each job finishes: how the out-of-fold jobs run (:func:`serial_jobs`; ``labelgate.parallel.pool_runner`` runs
#: them in worker processes). Every job is deterministic, so the runner cannot change a result.
JobRunner = Callable[
    [Callable[[Any], np.ndarray], Sequence[Any], Callable[[Any, float, int, int], None]], Sequence[np.ndarray]
]


def serial_jobs(
    function: Callable[[Any], np.ndarray], jobs: Sequence[Any], on_done: Callable[[Any, float, int, int], None]
) -> list[np.ndarray]:
    """The default :data:`JobRunner`: every job in this process, one after another."""
    jobs = list(jobs)
    out = []
    for i, job in enumerate(jobs, 1):
        began = time.perf_counter()
        out.append(function(job))
        on_done(job, time.perf_counter() - began, i, len(jobs))
    return out


def _reporting_jobs(
    report: Callable[[str, int, int], None],
    fit_seconds: dict[str, float] | None = None,
    run_jobs: JobRunner | None = None,
) -> Callable:
    """A :data:`labelgate.core.probs.JobMapper` running the jobs with ``run_jobs`` (default :func:`serial_jobs`),
    reporting ``out-of-fold fits`` after each (and adding each job's wall seconds to ``fit_seconds[job.member]``)."""

    def run(function: Callable, jobs: Sequence) -> list[np.ndarray]:
        jobs = list(jobs)
        report("out-of-fold fits", 0, len(jobs))

        def on_done(job: Any, seconds: float, done: int, total: int) -> None:
            if fit_seconds is not None:
                member = str(getattr(job, "member", "?"))
                fit_seconds[member] = fit_seconds.get(member, 0.0) + seconds
            report("out-of-fold fits", done, total)

        return list((run_jobs or serial_jobs)(function, jobs, on_done))

    return run


def detect_all(
    row_ids: Sequence[str],
    texts: Sequence[str],
    labels: Sequence[str],
    vectors: np.ndarray,
    *,
    settings: DetectorSettings | None = None,
    token_counts: Sequence[int] | None = None,
    token_counter_name: str = "tokens",
    test_ids: Sequence[str] | None = None,
    test_texts: Sequence[str] | None = None,
    test_vectors: np.ndarray | None = None,
    probs: Probabilities | None = None,
    layer_vectors: np.ndarray | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    run_jobs: JobRunner | None = None,
) -> Detection:
    """Run every detector over one dataset (pure: the detect task and the benchmark both call this).

    Args:
        row_ids / texts / labels: the valid rows in input order.
        vectors: their embeddings, shape ``(n, dim)``.
        settings: thresholds and model choices (defaults: :class:`DetectorSettings`).
        token_counts: tokens per text (needed when ``settings.max_text_tokens`` is set).
        test_ids / test_texts / test_vectors: the held-out test rows for the leakage check (optional).
        probs: the out-of-fold probabilities when already computed (e.g. job by job on a Dask cluster:
            :func:`labelgate.core.probs.combine_oof`); None computes them with :func:`ensemble_oof_probs`.
        layer_vectors: middle-layer features ``(n, hidden)`` of :func:`labelgate.embedding.encode_layers`
            (needed when ``settings.members`` has ``layers``).
        progress: called as ``progress(stage, done, total)`` while the long steps run: ``out-of-fold fits``
            (done/total (member, fold) fits), ``neighbours`` and ``leakage`` (0/1 when the step starts, 1/1 when
            it ends). None: no reports.
        run_jobs: how the out-of-fold (member, fold) jobs run (:data:`JobRunner`; default :func:`serial_jobs`, one
            after another here). The results do not depend on it; ``fit.<member>`` seconds then sum the member's
            jobs' own wall times (more than the stage's wall time when jobs ran side by side).
    """
    from labelgate.core.duplicates import duplicate_issues, leakage_issues, neighbours
    from labelgate.core.issues import ISSUE_COLUMNS, label_issue_rows
    from labelgate.core.lengths import length_issues
    from labelgate.core.outliers import outlier_issues

    s = settings or DetectorSettings()
    row_ids = [str(r) for r in row_ids]
    texts = [t if isinstance(t, str) else "" for t in texts]
    labels = [str(v) for v in labels]
    seconds: dict[str, float] = {}
    fit_seconds: dict[str, float] = {}
    started = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    if probs is None:
        probs = ensemble_oof_probs(
            vectors,
            labels,
            texts=texts,
            layer_features=layer_vectors,
            members=None if s.members is None else list(s.members),
            n_folds=s.n_folds,
            seed=s.seed,
            map_jobs=None if progress is None and run_jobs is None else _reporting_jobs(report, fit_seconds, run_jobs),
        )
    found = find_label_issues(row_ids, probs)
    seconds["label"] = time.perf_counter() - started
    seconds.update({f"fit.{member}": value for member, value in fit_seconds.items()})
    started = time.perf_counter()
    report("neighbours", 0, 1)
    nb = neighbours(vectors, k=s.outlier_k, seed=s.seed)  # approximate above neighbours.EXACT_MAX_ROWS rows
    parts = [
        label_issue_rows(found),
        duplicate_issues(row_ids, texts, labels, nb, near_threshold=s.near_duplicate_threshold),
        outlier_issues(row_ids, labels, nb, z_threshold=s.outlier_z),
        length_issues(
            row_ids,
            texts,
            min_words=s.min_text_words,
            max_tokens=s.max_text_tokens,
            token_counts=token_counts,
            counter_name=token_counter_name,
        ),
    ]
    seconds["neighbours"] = time.perf_counter() - started
    report("neighbours", 1, 1)
    if test_ids is not None and test_texts is not None:
        started = time.perf_counter()
        report("leakage", 0, 1)
        parts.append(
            leakage_issues(
                row_ids, texts, vectors, list(test_ids), list(test_texts), test_vectors, threshold=s.leakage_threshold
            )
        )
        seconds["leakage"] = time.perf_counter() - started
        report("leakage", 1, 1)
    issues = pd.concat([p for p in parts if not p.empty], ignore_index=True)[ISSUE_COLUMNS]
    return Detection(probs=probs, label_issues=found, issues=issues, seconds=seconds)
