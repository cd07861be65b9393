"""Several annotators per item: consensus labels and annotator quality (pure logic, no I/O).

Input is the *long* format of labelling tools: one row per (item, annotator, label). The unit of curation
is the item; this module turns its labels into one consensus label per item and one quality estimate per
annotator.

Method (:func:`consensus`): Dawid & Skene (1979) with the out-of-fold model as each item's prior.

- Each annotator ``a`` has a confusion matrix ``pi_a[k, l] = P(a says l | true class k)``.
- Each item's posterior over the true class is
  ``P(k | labels_i) ∝ prior_i(k)^w * prod_{a labelled i} pi_a[k, l_ia]`` where ``prior_i`` is a model's
  out-of-fold probability for the item's text (a model that never saw the item) and ``w`` its weight
  (``model_weight``); without a model the prior is each class's share of all the labels (held fixed).
- EM alternates the posterior (E step) with the confusion matrices (M step). Most annotators label few
  items, so each matrix is smoothed: a Dirichlet prior of strength ``smoothing`` centred on the *pooled*
  confusion matrix of all annotators (itself smoothed toward a diagonal). An annotator with 3 labels is
  then close to the crowd's average; one with 300 labels speaks for itself.

Annotator quality is the annotator's expected accuracy under their confusion matrix,
``sum_k rho_a(k) pi_a[k, k]`` with ``rho_a`` the posterior share of true class ``k`` among their items (an
annotator with few labels is pulled toward the crowd by the smoothing); its uncertainty is the standard
deviation of that sum under the Dirichlet posterior of the matrix's rows (shrinks like ``1/sqrt(n_labels)``).
On politeness-wikipedia its Spearman correlation with the annotators' accuracy against the 5-annotator
consensus was 0.29 over the 73 annotators with >= 20 labels (a leave-one-out agreement: 0.20-0.29; the same
agreement computed against the *true* consensus: 0.68, the ceiling of any estimate from these labels).

The per-item outputs are the consensus label (the posterior's argmax),
its quality (the posterior probability of the consensus), the agreement (share of the item's annotators who
gave the consensus) and each annotator's label.

:func:`majority_vote` is the plain baseline (ties broken by the class that is most frequent overall).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from labelgate.errors import ValidationError

#: the columns :func:`consensus` and :func:`majority_vote` read from the annotations frame
ANNOTATION_COLUMNS = ("item_id", "annotator", "label")
#: Dirichlet strength of an annotator's confusion-matrix prior (pseudo-labels per true class, spread like the pool's)
DEFAULT_SMOOTHING = 4.0
#: exponent of the model prior in the item posterior (1: the model counts as calibrated evidence; the model is
#: trained on the majority-vote labels, so it repeats part of the annotators' evidence and their biases: on
#: politeness-wikipedia 0.3-0.5 gave 0.741-0.751 consensus accuracy, 1.0 gave 0.714, majority vote 0.717)
DEFAULT_MODEL_WEIGHT = 0.5
#: EM stops when no posterior moves by more than this, or after ``MAX_ITER`` rounds
TOLERANCE = 1e-6
MAX_ITER = 200

ITEM_COLUMNS = [
    "item_id",
    "consensus_label",
    "consensus_quality",
    "agreement",
    "n_labels",
    "majority_label",
    "model_label",
    "model_prob",
    "labels",
]
ANNOTATOR_COLUMNS = ["annotator", "quality", "quality_sd", "n_labels", "agreement"]


@dataclass(frozen=True)
class Encoded:
    """Annotations as integer arrays.

    Attributes:
        item: int array ``(n_labels,)``: index into ``items``.
        annotator: int array ``(n_labels,)``: index into ``annotators``.
        label: int array ``(n_labels,)``: index into ``classes``.
        items: item ids in first-seen order.
        annotators: annotator ids, sorted.
        classes: class names, sorted (the column order of every probability array).
    """

    item: np.ndarray
    annotator: np.ndarray
    label: np.ndarray
    items: list[str]
    annotators: list[str]
    classes: list[str]

    @property
    def counts(self) -> np.ndarray:
        """Votes per item and class, shape ``(n_items, n_classes)``."""
        out = np.zeros((len(self.items), len(self.classes)))
        np.add.at(out, (self.item, self.label), 1.0)
        return out


@dataclass(frozen=True)
class Consensus:
    """The result of :func:`consensus`.

    Attributes:
        items: one row per item, columns :data:`ITEM_COLUMNS`: ``consensus_label``, ``consensus_quality`` (the
            posterior probability of the consensus, in [0, 1]), ``agreement`` (share of the item's labels equal to
            the consensus), ``n_labels``, ``majority_label`` (:func:`majority_vote`), ``model_label`` and
            ``model_prob`` (the model prior's argmax and its probability; ``None`` without a model) and
            ``labels`` (``{annotator: label}``).
        annotators: one row per annotator, columns :data:`ANNOTATOR_COLUMNS`: ``quality`` (estimated accuracy in
            [0, 1]), ``quality_sd`` (its uncertainty), ``n_labels``, ``agreement`` (share of their labels equal to
            the consensus).
        posterior: float array ``(n_items, n_classes)``: the posterior over each item's true class.
        confusion: float array ``(n_annotators, n_classes, n_classes)``: ``P(label | true class)`` per annotator.
        classes: the class names, in column order.
        method: a short description.
        iterations: EM rounds run.
    """

    items: pd.DataFrame
    annotators: pd.DataFrame
    posterior: np.ndarray
    confusion: np.ndarray
    classes: list[str]
    method: str
    iterations: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def encode(annotations: pd.DataFrame, *, classes: Sequence[str] | None = None) -> Encoded:
    """Index the ``item_id, annotator, label`` columns of ``annotations`` (one row per label).

    Args:
        annotations: a frame with at least :data:`ANNOTATION_COLUMNS` (strings). An (item, annotator) pair that
            occurs twice keeps its last label.
        classes: the class names to use (default: the sorted labels seen). Every label must be one of them.

    Raises:
        ValidationError: a required column is missing, the frame is empty, or a label is not in ``classes``.
    """
    missing = [c for c in ANNOTATION_COLUMNS if c not in annotations.columns]
    if missing:
        raise ValidationError(f"annotations lack the column(s) {missing}; found {list(annotations.columns)}")
    frame = annotations.loc[:, list(ANNOTATION_COLUMNS)].astype(str)
    frame = frame.drop_duplicates(subset=["item_id", "annotator"], keep="last")
    if frame.empty:
        raise ValidationError("no annotations to combine")
    seen = sorted(set(frame["label"]))
    class_list = sorted(set(classes)) if classes is not None else seen
    unknown = sorted(set(seen) - set(class_list))
    if unknown:
        raise ValidationError(f"labels {unknown} are not among the classes {class_list}")
    items = list(dict.fromkeys(frame["item_id"]))
    annotators = sorted(set(frame["annotator"]))
    item_index = {v: i for i, v in enumerate(items)}
    annotator_index = {v: i for i, v in enumerate(annotators)}
    class_index = {v: i for i, v in enumerate(class_list)}
    return Encoded(
        item=frame["item_id"].map(item_index).to_numpy(np.int64),
        annotator=frame["annotator"].map(annotator_index).to_numpy(np.int64),
        label=frame["label"].map(class_index).to_numpy(np.int64),
        items=items,
        annotators=annotators,
        classes=class_list,
    )


def _vote_winner(counts: np.ndarray, tie_order: np.ndarray) -> np.ndarray:
    """Argmax of ``counts`` per row; ties go to the class that comes first in ``tie_order`` (a ranking)."""
    rank = np.empty(len(tie_order), dtype=np.float64)
    rank[tie_order] = np.arange(len(tie_order))
    return np.argmax(counts - 1e-3 * rank / max(len(tie_order), 1), axis=1)


def majority_vote(annotations: pd.DataFrame, *, classes: Sequence[str] | None = None) -> pd.Series:
    """The plain majority label per item (index: item id, first-seen order).

    Ties go to the class with the most labels overall (then the alphabetically first): deterministic and
    independent of any model.

    >>> frame = pd.DataFrame({"item_id": ["a", "a", "b", "b", "c"], "annotator": ["x", "y", "x", "y", "x"],
    ...                       "label": ["pos", "pos", "pos", "neg", "neg"]})
    >>> majority_vote(frame).to_dict()
    {'a': 'pos', 'b': 'pos', 'c': 'neg'}
    """
    enc = encode(annotations, classes=classes)
    return _majority(enc)


def _majority(enc: Encoded) -> pd.Series:
    counts = enc.counts
    overall = counts.sum(axis=0)
    tie_order = np.lexsort((np.arange(len(enc.classes)), -overall))
    winner = _vote_winner(counts, tie_order)
    return pd.Series(np.asarray(enc.classes, dtype=object)[winner], index=pd.Index(enc.items, name="item_id"))


def _normalise_rows(a: np.ndarray) -> np.ndarray:
    return a / a.sum(axis=-1, keepdims=True)


def _log_posterior(enc: Encoded, log_prior: np.ndarray, log_pi: np.ndarray) -> np.ndarray:
    """Unnormalised log posterior ``(n_items, k)``: prior plus every label's log-likelihood."""
    out = log_prior.copy()
    np.add.at(out, enc.item, log_pi[enc.annotator, :, enc.label])
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _confusions(enc: Encoded, posterior: np.ndarray, smoothing: float) -> np.ndarray:
    """M step: each annotator's smoothed confusion matrix ``(n_annotators, k, k)``."""
    k = len(enc.classes)
    counts = np.zeros((len(enc.annotators), k, k))
    # counts[a, true, said] += posterior[item, true]
    np.add.at(counts, (enc.annotator, slice(None), enc.label), posterior[enc.item])
    pooled = _normalise_rows(counts.sum(axis=0) + np.eye(k) + 1.0 / k)  # the crowd's, smoothed toward a diagonal
    return _normalise_rows(counts + smoothing * pooled[None, :, :])


def _pseudo_counts(enc: Encoded, posterior: np.ndarray, smoothing: float) -> np.ndarray:
    """Each annotator's Dirichlet posterior concentration per true class, shape ``(n_annotators, k)``."""
    k = len(enc.classes)
    per_class = np.zeros((len(enc.annotators), k))
    np.add.at(per_class, enc.annotator, posterior[enc.item])
    return per_class + smoothing


def consensus(
    annotations: pd.DataFrame,
    *,
    model_probs: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    smoothing: float = DEFAULT_SMOOTHING,
    model_weight: float = DEFAULT_MODEL_WEIGHT,
    max_iter: int = MAX_ITER,
    tol: float = TOLERANCE,
) -> Consensus:
    """Consensus label per item and quality per annotator (Dawid-Skene EM with a model prior; see the module).

    Args:
        annotations: one row per label with columns ``item_id, annotator, label`` (strings).
        model_probs: float array ``(n_items, n_classes)`` of out-of-fold model probabilities, rows in the items'
            first-seen order in ``annotations`` and columns in ``classes`` order; ``None``: no model (the
            prior is each class's share of the labels).
        classes: the class names (sorted here); default: the labels seen. Required with ``model_probs`` when
            some class has no label.
        smoothing: Dirichlet strength of each annotator's confusion prior (> 0).
        model_weight: exponent of the model prior (>= 0; 0 ignores the model).
        max_iter, tol: EM stopping rule.

    Returns:
        :class:`Consensus`.

    Raises:
        ValidationError: bad annotations (see :func:`encode`), or ``model_probs`` of the wrong shape.
    """
    enc = encode(annotations, classes=classes)
    n, k = len(enc.items), len(enc.classes)
    if smoothing <= 0:
        raise ValidationError(f"smoothing must be > 0, got {smoothing}")
    if model_probs is not None:
        model_probs = np.asarray(model_probs, dtype=np.float64)
        if model_probs.shape != (n, k):
            raise ValidationError(f"model_probs has shape {model_probs.shape}; expected ({n}, {k}) (items, classes)")
        model_probs = _normalise_rows(np.clip(model_probs, 1e-6, None))
    counts = enc.counts
    # initial posterior: vote shares (plus the model when there is one)
    posterior = _normalise_rows(counts + 0.1)
    if model_probs is not None and model_weight > 0:
        posterior = _normalise_rows(posterior * model_probs**model_weight)
    if model_probs is not None and model_weight > 0:
        log_prior = model_weight * np.log(model_probs)
    else:
        # no model: the share of each class among all labels, held fixed (re-estimating it lets EM drift into a
        # solution where a class is never the consensus: 0.58 vs 0.73 accuracy on politeness-wikipedia)
        shares = (counts.sum(axis=0) + 1.0) / (counts.sum() + k)
        log_prior = np.broadcast_to(np.log(shares), (n, k)).copy()
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007
        pi = _confusions(enc, posterior, smoothing)
        new = _softmax(_log_posterior(enc, log_prior, np.log(pi)))
        delta = float(np.abs(new - posterior).max())
        posterior = new
        if delta < tol:
            break
    pi = _confusions(enc, posterior, smoothing)
    log_pi = np.log(pi)
    logits = _log_posterior(enc, log_prior, log_pi)
    posterior = _softmax(logits)

    winner = np.argmax(posterior, axis=1)
    classes_arr = np.asarray(enc.classes, dtype=object)
    majority = _majority(enc)
    items = pd.DataFrame({"item_id": enc.items})
    items["consensus_label"] = classes_arr[winner]
    items["consensus_quality"] = posterior[np.arange(n), winner]
    n_labels = counts.sum(axis=1)
    items["agreement"] = counts[np.arange(n), winner] / n_labels
    items["n_labels"] = n_labels.astype(np.int64)
    items["majority_label"] = majority.to_numpy(object)
    if model_probs is not None:
        items["model_label"] = classes_arr[np.argmax(model_probs, axis=1)]
        items["model_prob"] = model_probs.max(axis=1)
    else:
        items["model_label"] = None
        items["model_prob"] = np.nan
    per_item: list[dict[str, str]] = [{} for _ in range(n)]
    for i, a, lab in zip(enc.item, enc.annotator, enc.label, strict=True):
        per_item[i][enc.annotators[a]] = enc.classes[lab]
    items["labels"] = per_item

    # quality: expected accuracy over the true classes of the annotator's items, sum_k rho_a(k) pi_a[k, k]
    m = len(enc.annotators)
    n_by = np.bincount(enc.annotator, minlength=m).astype(np.float64)
    rho = np.zeros((m, k))
    np.add.at(rho, enc.annotator, posterior[enc.item])
    rho = _normalise_rows(rho)
    diagonal = np.diagonal(pi, axis1=1, axis2=2)
    concentration = _pseudo_counts(enc, posterior, smoothing)  # Dirichlet row totals of each confusion row
    variance = (rho**2 * diagonal * (1.0 - diagonal) / (concentration + 1.0)).sum(axis=1)
    agrees = np.bincount(enc.annotator, weights=(enc.label == winner[enc.item]).astype(float), minlength=m)
    annotators = pd.DataFrame(
        {
            "annotator": enc.annotators,
            "quality": (rho * diagonal).sum(axis=1),
            "quality_sd": np.sqrt(variance),
            "n_labels": n_by.astype(np.int64),
            "agreement": agrees / n_by,
        }
    )
    method = "dawid-skene" + (f"+model-prior(w={model_weight:g})" if model_probs is not None and model_weight else "")
    return Consensus(
        items=items[ITEM_COLUMNS],
        annotators=annotators[ANNOTATOR_COLUMNS],
        posterior=posterior,
        confusion=pi,
        classes=list(enc.classes),
        method=f"{method}, smoothing={smoothing:g}",
        iterations=iterations,
    )


def disagreement_matrix(annotations: pd.DataFrame, consensus_labels: pd.Series) -> pd.DataFrame:
    """Counts of (consensus label, annotator label) over every label: rows = consensus, columns = given.

    Args:
        annotations: ``item_id, annotator, label`` rows.
        consensus_labels: consensus per item (index: item id).
    """
    frame = annotations.loc[:, list(ANNOTATION_COLUMNS)].astype(str)
    frame = frame.assign(consensus=frame["item_id"].map(consensus_labels))
    return pd.crosstab(frame["consensus"], frame["label"])


#: columns of the ``annotations`` frame :func:`collapse_long` returns (``reason`` is set where a label is unusable,
#: ``reason_kind`` is one of the ``KIND_*`` names below: the reason without its details)
LONG_ANNOTATION_COLUMNS = ["seq", "item_id", "annotator", "label", "source_line", "reason", "reason_kind"]
KIND_NO_ANNOTATOR = "no annotator"
KIND_EMPTY_LABEL = "empty label"
KIND_TEXT_DIFFERS = "text differs"
KIND_SECOND_LABEL = "a second label"


@dataclass(frozen=True)
class LongInput:
    """What :func:`collapse_long` returns.

    Attributes:
        items: one row per item id (the ingest row columns), in order of first appearance; ``seq``,
            ``source_line`` and ``text`` are those of the item's first usable record, ``label`` its majority vote
            over the usable labels (``None`` when it has none: validation then quarantines the item).
        annotations: one row per input record with an item id, columns :data:`LONG_ANNOTATION_COLUMNS`;
            ``reason`` is ``None`` for a usable label, else why it is left out (no annotator, empty label, a
            text that differs from the item's first text, a second label by the same annotator).
    """

    items: pd.DataFrame
    annotations: pd.DataFrame

    @property
    def usable(self) -> pd.DataFrame:
        """The annotations whose ``reason`` is ``None`` (``item_id, annotator, label``)."""
        return self.annotations[self.annotations["reason"].isna()].reset_index(drop=True)


def collapse_long(rows: pd.DataFrame, annotators: pd.Series, *, broken_seqs: Sequence[int] = ()) -> LongInput:
    """Turn long-format records (one per label) into one row per item plus the annotations.

    Args:
        rows: ingest rows (``seq, row_id, text, label, label_raw, text_sha256, source_line``), one per record;
            ``row_id`` is the item id.
        annotators: the annotator of each record, aligned with ``rows`` (``None`` when blank).
        broken_seqs: records ingest could not parse (left out entirely: they are in the quarantine already).
    """
    broken = set(int(s) for s in broken_seqs)
    frame = rows.reset_index(drop=True).assign(annotator=annotators.reset_index(drop=True))
    frame = frame[~frame["seq"].isin(broken)]
    first_text: dict[str, str | None] = {}
    seen_pairs: set[tuple[str, str]] = set()
    reasons: list[str | None] = []
    kinds: list[str | None] = []
    for rid, text, label, who in zip(frame["row_id"], frame["text"], frame["label"], frame["annotator"], strict=True):
        reason = kind = None
        if who is None:
            reason = kind = KIND_NO_ANNOTATOR
        elif label is None or not str(label).strip():
            reason, kind = f"empty label from annotator {who!r}", KIND_EMPTY_LABEL
        elif rid in first_text and text != first_text[rid]:
            reason, kind = f"text differs from the first text of item {rid!r}", KIND_TEXT_DIFFERS
        elif (rid, who) in seen_pairs:
            reason = f"a second label from annotator {who!r} for item {rid!r} (the first is kept)"
            kind = KIND_SECOND_LABEL
        if reason is None:
            first_text.setdefault(rid, text)
            seen_pairs.add((rid, who))
        reasons.append(reason)
        kinds.append(kind)
    annotations = pd.DataFrame(
        {
            "seq": frame["seq"].to_numpy(),
            "item_id": frame["row_id"].to_numpy(object),
            "annotator": frame["annotator"].to_numpy(object),
            "label": frame["label"].to_numpy(object),
            "source_line": frame["source_line"].to_numpy(),
            "reason": pd.array(reasons, dtype="object"),
            "reason_kind": pd.array(kinds, dtype="object"),
        }
    )[LONG_ANNOTATION_COLUMNS]
    usable = annotations[annotations["reason"].isna()]
    votes = (
        majority_vote(usable.astype({"item_id": str, "annotator": str, "label": str}))
        if len(usable)
        else pd.Series(dtype=object)
    )
    # the item row: its first usable record (else its first record)
    frame = frame.assign(_usable=annotations["reason"].isna().to_numpy())
    ordered = frame.sort_values(["_usable", "seq"], ascending=[False, True], kind="stable")
    items = ordered.drop_duplicates("row_id").sort_values("seq", kind="stable").reset_index(drop=True)
    label = items["row_id"].map(votes).astype(object)
    items = items.assign(label=label.where(label.notna(), None), label_raw=label.where(label.notna(), None))
    return LongInput(
        items=items[["seq", "row_id", "text", "label", "label_raw", "text_sha256", "source_line"]],
        annotations=annotations,
    )


#: an item whose consensus has a lower posterior probability than this is a label issue. On politeness-wikipedia
#: (768 wrong consensus labels among 3038 items) 0.7 flagged 1076 items at precision 0.42, recall 0.59 (F1 0.49);
#: confident learning on the consensus flagged 1019 at 0.37 / 0.49 (F1 0.43); 0.5 flagged 186 at 0.52 / 0.13.
ISSUE_QUALITY = 0.7


def consensus_label_issues(result: Consensus, model_probs: np.ndarray) -> pd.DataFrame:
    """Label issues of multi-annotator items: items whose consensus is unreliable.

    The consensus's posterior probability already weighs the annotators (by their estimated quality) against the
    out-of-fold model, so it is the score: an item where the annotators disagree, or where few or weak annotators
    are contradicted by a confident model, has a low one. Ranking by it put more real errors at the top than
    confident learning on the consensus (precision@100 0.53 vs 0.45 on politeness-wikipedia).

    Args:
        result: :func:`consensus`'s output.
        model_probs: the out-of-fold model probabilities it was given, ``(n_items, n_classes)`` (the reason names
            the model's view).

    Returns:
        One row per item with the columns of :func:`labelgate.core.detect.find_label_issues`
        (``LABEL_ISSUE_COLUMNS``): ``given_label`` = the consensus, ``label_score`` = its posterior probability
        (lower = worse), ``suggested_label`` / ``suggested_prob`` = the posterior's runner-up and its probability,
        ``model_prob`` = the model's probability of the runner-up, ``given_prob`` = the model's probability of the
        consensus, ``is_label_issue`` = ``label_score < ISSUE_QUALITY``.
    """
    from labelgate.core.detect import LABEL_ISSUE_COLUMNS

    model_probs = np.asarray(model_probs, dtype=np.float64)
    n = len(result.items)
    idx = np.arange(n)
    classes = np.asarray(result.classes, dtype=object)
    index = {c: i for i, c in enumerate(result.classes)}
    given = result.items["consensus_label"].map(index).to_numpy(np.int64)
    quality = result.items["consensus_quality"].to_numpy(float)
    runner_up = np.argsort(result.posterior, axis=1, kind="stable")[:, -2]
    flags = quality < ISSUE_QUALITY
    n_labels = result.items["n_labels"].to_numpy(int)
    agreement = result.items["agreement"].to_numpy(float)
    reasons: list[str | None] = [None] * n
    for i in np.flatnonzero(flags):
        agreeing = round(agreement[i] * n_labels[i])
        reasons[i] = (
            f"unreliable consensus: {classes[given[i]]} {quality[i]:.2f} vs {classes[runner_up[i]]} "
            f"{result.posterior[i, runner_up[i]]:.2f} ({agreeing} of {n_labels[i]} annotators agree; "
            f"model {classes[model_probs[i].argmax()]} {model_probs[i].max():.2f})"
        )
    return pd.DataFrame(
        {
            "row_id": result.items["item_id"].to_numpy(object),
            "given_label": classes[given],
            "suggested_label": classes[runner_up],
            "suggested_prob": result.posterior[idx, runner_up],
            "model_prob": model_probs[idx, runner_up],
            "given_prob": model_probs[idx, given],
            "label_score": quality,
            "is_label_issue": flags,
            "reason": reasons,
        },
        columns=LABEL_ISSUE_COLUMNS,
    )


def relabel_queue(result: Consensus, *, limit: int | None = None) -> pd.DataFrame:
    """Items where one more label would help most, most useful first.

    The value of one more label is the chance it changes the consensus: the posterior mass outside the consensus
    (``1 - consensus_quality``), largest first; ties go to items with fewer labels.

    Returns:
        Columns ``item_id, consensus_label, consensus_quality, n_labels, agreement`` (at most ``limit`` rows).
    """
    items = result.items.assign(_gain=1.0 - result.items["consensus_quality"])
    items = items.sort_values(["_gain", "n_labels"], ascending=[False, True], kind="stable")
    out = items[["item_id", "consensus_label", "consensus_quality", "n_labels", "agreement"]].reset_index(drop=True)
    return out if limit is None else out.head(limit)


#: the issue type of :func:`low_agreement_issues` (see :data:`labelgate.core.issues.ISSUE_TYPES`)
LOW_AGREEMENT = "low_agreement"


def low_agreement_mask(items: pd.DataFrame, *, min_agreement: float) -> np.ndarray:
    """Which items are *low agreement*: at least 2 labels and ``agreement < min_agreement`` (strictly).

    Args:
        items: columns ``agreement`` (share of the item's labels equal to its consensus, in [0, 1]) and
            ``n_labels`` (:data:`ITEM_COLUMNS`, the ``consensus`` table).
        min_agreement: in [0, 1] (:attr:`labelgate.core.policy.GateSettings.min_agreement` says why the
            comparison is strict: 0.5 passes a 1-of-2 split, 0.51 catches it).

    Returns:
        bool array ``(n_items,)``. The agreement is compared as stored (``k / n``, a correctly rounded division), so
        an agreement equal to the minimum is never below it (7 of 25 at 0.28; ``k < min_agreement * n`` would
        say 7 < 7.000000000000001). An item with one label never is low agreement.
    """
    n = items["n_labels"].to_numpy(np.int64)
    return (n >= 2) & (items["agreement"].to_numpy(np.float64) < min_agreement)


def low_agreement_issues(items: pd.DataFrame, *, min_agreement: float) -> pd.DataFrame:
    """The ``low_agreement`` issue rows of the items :func:`low_agreement_mask` selects (flagged rows only).

    Args:
        items: columns ``item_id``, ``consensus_label``, ``agreement``, ``n_labels`` (:attr:`Consensus.items`).
        min_agreement: in [0, 1] (see :func:`low_agreement_mask`).

    Returns:
        The long issues shape (:data:`labelgate.core.issues.ISSUE_COLUMNS`), one flagged row per low-agreement
        item: ``score`` = its agreement (lower = worse, as for every type), ``given_label`` = the consensus, reason
        ``low annotator agreement: 1 of 3 labels agree with consensus 'polite' (min 0.5)``.
    """
    from labelgate.core.issues import issue_frame

    low = items[low_agreement_mask(items, min_agreement=min_agreement)]
    n = low["n_labels"].to_numpy(np.int64)
    agreeing = np.rint(low["agreement"].to_numpy(np.float64) * n).astype(np.int64)
    reasons = [
        f"low annotator agreement: {k} of {m} labels agree with consensus {label!r} (min {min_agreement:g})"
        for k, m, label in zip(agreeing, n, low["consensus_label"], strict=True)
    ]
    return issue_frame(
        len(low),
        row_id=low["item_id"].astype(str).to_numpy(object),
        issue_type=LOW_AGREEMENT,
        score=low["agreement"].to_numpy(np.float64),
        is_issue=True,
        given_label=low["consensus_label"].astype(str).to_numpy(object),
        reason=np.asarray(reasons, dtype=object),
    )
