"""Which flagged label issues are likely mislabelled and which are ambiguous, and the review queue's order.

A flagged label issue (:func:`labelgate.core.detect.find_label_issues`) is one of two kinds:

- ``mislabelled``: a confident disagreement. On the class-adjusted scale of confident learning the text gives the
  given label little weight next to the suggestion: the given label is probably wrong.
- ``ambiguous``: the text supports the given label nearly as well as the suggestion (the models are unsure
  between the two): a person may read it either way, and fixing it buys less.

The score is :func:`ambiguity_scores`, in [0, 1], the larger of two parts on the class-adjusted scale of confident
learning: the *tie*, the probability of the given label divided by that of the suggestion (0: no support for the
given label; 1: a tie), and the *unsureness* of the suggestion itself, ``min(1, UNSURE_BELOW / (2 q_suggested))``
(0.5 when the suggestion's probability is :data:`UNSURE_BELOW`, higher below it: no class convinces the models, as
where many intents are close paraphrases). A flagged row whose ambiguity is at least :data:`AMBIGUITY_THRESHOLD`
(0.5) is ``ambiguous``: the given label is at least half as likely as the suggestion, or the suggestion is below
0.4.

The review queue (:func:`queue_order`, :func:`queue_severity`) lists the likely mislabelled rows first, lowest label
score first (the clearest errors), then the ambiguous ones, lowest label score first. The kind changes only the
order in which a person sees the rows: the auto gate's decisions (:mod:`labelgate.core.policy`) do not read it.

How the rule was chosen (``benchmarks/detection.py`` on politeness-wikipedia over 10 fold seeds and on
banking77-noisy; figures in ``docs/detection.md``): with the queue ordered by label score inside each kind, the tie
part separates the kinds on both data sets and the unsureness part lifts banking77's precision@300 (0.943 to 0.960)
without moving politeness' (politeness: 62% of the likely mislabelled rows are real errors, 40% of the ambiguous
ones; banking77: 88% vs 37%). Ranking inside a kind by the margin between the two classes, by the tie itself, by
``q_given - b q_suggested`` (any b > 0), by the entropy or by the ensemble members' agreement each helped one data
set and hurt the other (margin: banking77 precision@100 0.96 to 0.99, politeness 0.81 to 0.72), so the label score
stays the ranking.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: the kinds of a flagged label issue, clearest first
LABEL_KINDS = ("mislabelled", "ambiguous")
MISLABELLED, AMBIGUOUS = LABEL_KINDS
#: how the review page, ``labelgate issues`` and ``labelgate review`` name each kind
KIND_NAMES = {MISLABELLED: "likely mislabelled", AMBIGUOUS: "ambiguous"}
#: a flagged label issue whose :func:`ambiguity_scores` value is at least this is ``ambiguous``
AMBIGUITY_THRESHOLD = 0.5
#: a suggestion whose class-adjusted probability is below this is unsure (its unsureness is above 0.5)
UNSURE_BELOW = 0.4


def ambiguity_scores(*, adjusted: np.ndarray, labels: np.ndarray, suggested: np.ndarray) -> np.ndarray:
    """How ambiguous each row's disagreement is: the larger of the tie between the given label and the suggestion
    and the suggestion's unsureness (see the module's docstring).

    Args:
        adjusted: class-adjusted probabilities (:func:`labelgate.core.detect.adjusted_probs`), shape
            ``(n_rows, n_classes)``; rows sum to 1.
        labels: the given label of each row as a column index, shape ``(n_rows,)``.
        suggested: the suggested label of each row as a column index, shape ``(n_rows,)`` (the adjusted argmax).

    Returns:
        Float array, shape ``(n_rows,)``, in [0, 1]: ``max(q_given / q_suggested, min(1, UNSURE_BELOW / (2
        q_suggested)))``; 1 where the suggestion is the given label (nothing to disagree about) or has probability 0.
    """
    q = np.asarray(adjusted, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    suggested = np.asarray(suggested, dtype=np.int64)
    if q.ndim != 2 or labels.shape != (len(q),) or suggested.shape != (len(q),):
        raise ValueError(
            f"adjusted must be (n_rows, n_classes) with labels and suggested (n_rows,); got {q.shape}, "
            f"{labels.shape}, {suggested.shape}"
        )
    idx = np.arange(len(q))
    return ambiguity_of(given=q[idx, labels], top=q[idx, suggested], labels=labels, suggested=suggested)


def ambiguity_of(*, given: np.ndarray, top: np.ndarray, labels: np.ndarray, suggested: np.ndarray) -> np.ndarray:
    """:func:`ambiguity_scores` from the two probabilities it reads of each row: ``given`` (the class-adjusted
    probability of the given label) and ``top`` (of the suggestion), each shape ``(n_rows,)``; the same numbers."""
    safe = np.where(top > 0, top, 1.0)
    tie = np.where(top > 0, given / safe, 1.0)
    unsure = np.where(top > 0, UNSURE_BELOW / (2.0 * safe), 1.0)
    ambiguity = np.clip(np.maximum(tie, unsure), 0.0, 1.0)
    return np.where(np.asarray(labels) == np.asarray(suggested), 1.0, ambiguity)


def label_kinds(*, ambiguity: np.ndarray, flags: np.ndarray, threshold: float = AMBIGUITY_THRESHOLD) -> np.ndarray:
    """The kind of each row's label issue.

    Args:
        ambiguity: :func:`ambiguity_scores`, shape ``(n_rows,)``.
        flags: whether the row is a flagged label issue, shape ``(n_rows,)``.
        threshold: ambiguity (0..1) from which a flagged row is ``ambiguous``.

    Returns:
        Object array, shape ``(n_rows,)``: ``"ambiguous"`` or ``"mislabelled"`` (:data:`LABEL_KINDS`) for flagged
        rows, None for the others.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    ambiguity = np.asarray(ambiguity, dtype=np.float64)
    flags = np.asarray(flags, dtype=bool)
    if ambiguity.shape != flags.shape:
        raise ValueError(f"ambiguity {ambiguity.shape} and flags {flags.shape} differ in shape")
    out = np.full(len(flags), None, dtype=object)
    out[flags] = np.where(ambiguity[flags] >= threshold, AMBIGUOUS, MISLABELLED)
    return out


def issue_type_names(issue_types: list[str], label_kind: str | None) -> list[str]:
    """A row's flagged issue types as a person reads them: ``label`` with its kind, e.g. ``["label (ambiguous)",
    "near_duplicate"]`` (``label`` alone when the kind is None or unknown)."""
    name = KIND_NAMES.get(label_kind) if isinstance(label_kind, str) else None
    return [f"{t} ({name})" if t == "label" and name else t for t in issue_types]


def kind_counts(*, kinds: Iterable[object]) -> dict[str, int]:
    """How many of ``kinds`` (label kinds, None or NaN for rows without one) are of each kind, in
    :data:`LABEL_KINDS` order; kinds with none are left out."""
    values = [k for k in kinds if isinstance(k, str)]
    return {k: values.count(k) for k in LABEL_KINDS if k in values}


def queue_severity(*, label_scores: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """The review queue's severity of each row's label issue, in [0, 1] (higher = reviewed earlier).

    ``1 - label_score`` (as for every issue type: ``1 - score``), halved for an ``ambiguous`` row. A flagged row's
    label score is below 0.5 (another class wins on the adjusted scale), so every likely mislabelled row scores
    above 0.5 and every ambiguous one at most 0.5: sorted by severity, the mislabelled rows come first, each kind
    ordered by label score.

    Args:
        label_scores: the label issues' scores (lower = the given label is more likely wrong), shape ``(n_rows,)``.
        kinds: :func:`label_kinds` (None, NaN, or a kind), shape ``(n_rows,)``; a row without a kind keeps
            ``1 - label_score``.

    Returns:
        Float array, shape ``(n_rows,)``.
    """
    scores = np.asarray(label_scores, dtype=np.float64)
    is_ambiguous = np.asarray([k == AMBIGUOUS for k in kinds], dtype=bool)
    if is_ambiguous.shape != scores.shape:
        raise ValueError(f"label_scores {scores.shape} and kinds {is_ambiguous.shape} differ in shape")
    severity = np.clip(1.0 - scores, 0.0, 1.0)
    return np.where(is_ambiguous, severity / 2.0, severity)


def queue_order(*, label_scores: np.ndarray, kinds: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """The flagged rows in review-queue order: likely mislabelled (and kindless) rows by label score, then the
    ambiguous ones by label score; ties keep the input order.

    Args:
        label_scores: shape ``(n_rows,)`` (lower = more likely wrong).
        kinds: :func:`label_kinds`, shape ``(n_rows,)``.
        flags: flagged label issues, shape ``(n_rows,)``.

    Returns:
        Int array of row indices (only flagged rows), shape ``(n_flagged,)``.
    """
    scores = np.asarray(label_scores, dtype=np.float64)
    flags = np.asarray(flags, dtype=bool)
    is_ambiguous = np.asarray([k == AMBIGUOUS for k in kinds], dtype=bool)
    if not scores.shape == flags.shape == is_ambiguous.shape:
        raise ValueError(f"label_scores {scores.shape}, kinds {is_ambiguous.shape}, flags {flags.shape} differ")
    rows = np.flatnonzero(flags)
    order = np.lexsort((rows, scores[rows], is_ambiguous[rows]))
    return rows[order]
