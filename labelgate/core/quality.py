"""The quality gate of unattended runs: rates and label-distribution shift against limits, and a verdict.

Pure functions (no Prefect, no I/O). :func:`evaluate_quality` checks three things of one run:

- ``quarantine_rate``: quarantined rows / rows in (a broken upstream export quarantines many rows),
- ``label_issue_rate``: rows flagged as likely label errors / valid rows (a shuffled or mis-mapped label
  column makes most rows disagree with the model),
- ``label_shift``: how far the label distribution of the valid rows moved from the previous version of
  the same dataset: the KL divergence ``D(current || previous)`` in nats (additive smoothing, so a class
  that appears or vanishes gives a large but finite value) and, optionally, the p-value of a chi-square
  test of homogeneity of the two count vectors.

:func:`estimated_noise_matrix` is the read side's view of the detector: cleanlab's calibrated confident
joint, i.e. the estimated number of rows per (given label, true label) pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from labelgate.errors import SettingsError

#: names of the checks, in the order they are reported
CHECKS = ("quarantine_rate", "label_issue_rate", "label_shift_kl", "label_shift_pvalue")


@dataclass(frozen=True)
class QualityLimits:
    """Limits of the gate; ``None`` switches a check off.

    :meth:`labelgate.config.CurateParams.quality_limits` builds them from the flow parameters (fields of the same
    names); whether a failed check stops the run is the flow's ``quality_gate``, not a limit.

    Attributes:
        max_quarantine_rate: fail when quarantined / rows in is above this (0..1).
        max_label_issue_rate: fail when flagged rows / valid rows is above this (0..1).
        max_label_shift_kl: fail when KL(current || previous version) in nats is above this (>= 0).
        min_label_shift_pvalue: fail when the chi-square homogeneity p-value is below this (0..1).

    Raises:
        SettingsError: (also a ValueError) a limit outside its range; the message names the field.
    """

    max_quarantine_rate: float | None = 0.2
    max_label_issue_rate: float | None = 0.3
    max_label_shift_kl: float | None = 0.1
    min_label_shift_pvalue: float | None = None

    def __post_init__(self) -> None:
        for name, high in (
            ("max_quarantine_rate", 1.0),
            ("max_label_issue_rate", 1.0),
            ("max_label_shift_kl", float("inf")),
            ("min_label_shift_pvalue", 1.0),
        ):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= high:
                shown = "[0, 1]" if high == 1.0 else ">= 0"
                raise SettingsError(f"{name} must be {shown} or None, got {value!r}")


@dataclass(frozen=True)
class LabelShift:
    """How the label distribution moved from ``previous`` to ``current`` counts.

    Attributes:
        kl: KL divergence D(current || previous) in nats, with ``smoothing`` added to every class count.
        chi2: chi-square statistic of the 2 x k homogeneity test (classes seen in either count).
        pvalue: its p-value (1.0 when fewer than two classes are seen).
        dof: degrees of freedom of the test.
        new_classes: classes in ``current`` only; missing_classes: classes in ``previous`` only.
        current_share / previous_share: class -> share of rows (unsmoothed), over the union of classes.
    """

    kl: float
    chi2: float
    pvalue: float
    dof: int
    new_classes: list[str] = field(default_factory=list)
    missing_classes: list[str] = field(default_factory=list)
    current_share: dict[str, float] = field(default_factory=dict)
    previous_share: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class QualityCheck:
    """One check: ``value`` against ``limit`` (``passed`` None when the check was skipped)."""

    name: str
    value: float | None
    limit: float | None
    passed: bool | None
    detail: str


@dataclass(frozen=True)
class QualityVerdict:
    """The gate's answer for one run.

    Attributes:
        passed: False when any check failed.
        checks: every check, in :data:`CHECKS` order.
        reasons: one sentence per failed check (empty when passed).
        baseline_run_id / baseline_version: the previous version compared against (None: first version).
        shift: the label shift against the baseline, when there is one.
    """

    passed: bool
    checks: list[QualityCheck]
    reasons: list[str]
    baseline_run_id: str | None = None
    baseline_version: str | None = None
    shift: LabelShift | None = None

    @property
    def message(self) -> str:
        """One line: ``quality gate passed`` or ``quality gate failed: <reason>; <reason>``."""
        if self.passed:
            return "quality gate passed"
        return "quality gate failed: " + "; ".join(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in DuckDB and in the run's metrics)."""
        out = asdict(self)
        out["message"] = self.message
        return out


def label_shift(current: Mapping[str, int], previous: Mapping[str, int], *, smoothing: float = 0.5) -> LabelShift:
    """Compare two label count vectors (class -> rows); see :class:`LabelShift`.

    Raises:
        ValueError: a count is negative, ``smoothing`` is not positive, or a side has no row.
    """
    if smoothing <= 0:
        raise ValueError(f"smoothing must be positive, got {smoothing}")
    classes = sorted(set(current) | set(previous))
    cur = np.array([float(current.get(c, 0)) for c in classes])
    prev = np.array([float(previous.get(c, 0)) for c in classes])
    if (cur < 0).any() or (prev < 0).any():
        raise ValueError("label counts must not be negative")
    if cur.sum() <= 0 or prev.sum() <= 0:
        raise ValueError(f"both label distributions need rows (current {cur.sum():.0f}, previous {prev.sum():.0f})")
    p = (cur + smoothing) / (cur + smoothing).sum()
    q = (prev + smoothing) / (prev + smoothing).sum()
    kl = float(np.sum(p * np.log(p / q)))
    chi2, pvalue, dof = _homogeneity(cur, prev)
    return LabelShift(
        kl=kl,
        chi2=chi2,
        pvalue=pvalue,
        dof=dof,
        new_classes=[c for c in classes if current.get(c, 0) > 0 and previous.get(c, 0) == 0],
        missing_classes=[c for c in classes if previous.get(c, 0) > 0 and current.get(c, 0) == 0],
        current_share={c: float(v / cur.sum()) for c, v in zip(classes, cur)},
        previous_share={c: float(v / prev.sum()) for c, v in zip(classes, prev)},
    )


def _homogeneity(cur: np.ndarray, prev: np.ndarray) -> tuple[float, float, int]:
    """Chi-square test of homogeneity of two count vectors over the classes seen in either."""
    from scipy.stats import chi2_contingency

    seen = (cur + prev) > 0
    table = np.vstack([cur[seen], prev[seen]])
    if table.shape[1] < 2:
        return 0.0, 1.0, 0
    result = chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue), int(result.dof)


def _rate(part: int, whole: int) -> float:
    return float(part) / whole if whole > 0 else 0.0


def evaluate_quality(
    *,
    rows_in: int,
    rows_quarantined: int,
    rows_valid: int,
    label_issues: int,
    class_counts: Mapping[str, int],
    limits: QualityLimits,
    baseline_counts: Mapping[str, int] | None = None,
    baseline_run_id: str | None = None,
    baseline_version: str | None = None,
    dataset: str | None = None,
) -> QualityVerdict:
    """Check one run's figures against ``limits``; return the verdict with a sentence per failed check.

    Args:
        rows_in: records read from the input; rows_quarantined: of which quarantined; rows_valid: the rest.
        label_issues: valid rows flagged as likely label errors.
        class_counts: given label -> valid rows of the run.
        baseline_counts: given label -> valid rows of the previous version of the dataset (None: there is none,
            the shift checks are skipped).
        baseline_run_id / baseline_version / dataset: named in the sentences.
    """
    checks: list[QualityCheck] = []
    q_rate = _rate(rows_quarantined, rows_in)
    checks.append(
        _max_check(
            "quarantine_rate",
            q_rate,
            limits.max_quarantine_rate,
            f"{rows_quarantined} of {rows_in} rows quarantined ({q_rate:.1%})",
            "limit {limit:.1%}",
        )
    )
    i_rate = _rate(label_issues, rows_valid)
    checks.append(
        _max_check(
            "label_issue_rate",
            i_rate,
            limits.max_label_issue_rate,
            f"{label_issues} of {rows_valid} valid rows flagged as label issues ({i_rate:.1%})",
            "limit {limit:.1%}",
        )
    )
    shift: LabelShift | None = None
    name = f"dataset {dataset!r}" if dataset else "the dataset"
    if baseline_counts and sum(baseline_counts.values()) > 0 and sum(class_counts.values()) > 0:
        shift = label_shift(class_counts, baseline_counts)
        against = f"previous version {baseline_version or '?'} (run {baseline_run_id or '?'})"
        moved = _biggest_moves(shift)
        extra = ""
        if shift.new_classes:
            extra += f"; new classes {shift.new_classes}"
        if shift.missing_classes:
            extra += f"; missing classes {shift.missing_classes}"
        checks.append(
            _max_check(
                "label_shift_kl",
                shift.kl,
                limits.max_label_shift_kl,
                f"label distribution moved from the {against}: KL {shift.kl:.3f} nats ({moved}{extra})",
                "limit {limit:.3f}",
            )
        )
        checks.append(_min_check(shift, limits.min_label_shift_pvalue, against))
    else:
        skipped = f"no previous completed version of {name} to compare with"
        checks.append(QualityCheck("label_shift_kl", None, limits.max_label_shift_kl, None, skipped))
        checks.append(QualityCheck("label_shift_pvalue", None, limits.min_label_shift_pvalue, None, skipped))
    reasons = [c.detail for c in checks if c.passed is False]
    return QualityVerdict(
        passed=not reasons,
        checks=checks,
        reasons=reasons,
        baseline_run_id=baseline_run_id if shift else None,
        baseline_version=baseline_version if shift else None,
        shift=shift,
    )


def _max_check(name: str, value: float, limit: float | None, what: str, limit_text: str) -> QualityCheck:
    if limit is None:
        return QualityCheck(name, value, None, None, f"{what}; check off")
    passed = not value > limit
    return QualityCheck(
        name, value, limit, passed, f"{what} {'within' if passed else 'exceeds'} " + limit_text.format(limit=limit)
    )


def _min_check(shift: LabelShift, limit: float | None, against: str) -> QualityCheck:
    what = f"chi-square test against the {against}: chi2 {shift.chi2:.1f}, dof {shift.dof}, p = {shift.pvalue:.3g}"
    if limit is None:
        return QualityCheck("label_shift_pvalue", shift.pvalue, None, None, f"{what}; check off")
    passed = not shift.pvalue < limit
    verdict = "not below" if passed else "below"
    return QualityCheck("label_shift_pvalue", shift.pvalue, limit, passed, f"{what} {verdict} limit {limit:g}")


def _biggest_moves(shift: LabelShift, n: int = 2) -> str:
    """``'billing 25% → 61%, account 25% → 13%'``: the classes whose share moved most."""
    classes = sorted(
        shift.current_share, key=lambda c: -abs(shift.current_share[c] - shift.previous_share.get(c, 0.0))
    )[:n]
    return ", ".join(f"{c} {shift.previous_share.get(c, 0.0):.0%} → {shift.current_share[c]:.0%}" for c in classes)


def estimated_noise_matrix(labels: Sequence[int] | np.ndarray, probs: np.ndarray) -> np.ndarray:
    """cleanlab's calibrated confident joint as estimated row counts, shape ``(k, k)``.

    Entry ``[i, j]`` estimates how many rows carry given label ``i`` while their true label is ``j``
    (classes in the column order of ``probs``); the off-diagonal mass is the estimated label noise.
    The matrix sums to the number of rows.

    Args:
        labels: given label of each row as a column index of ``probs``, shape ``(n,)``.
        probs: out-of-sample predicted probabilities, shape ``(n, k)``.
    """
    import warnings

    from cleanlab.count import estimate_joint

    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(y) != len(p):
        raise ValueError(f"probs must have shape (n, k) with n = {len(y)} labels, got {p.shape}")
    if len(y) == 0:
        return np.zeros((p.shape[1], p.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        joint = estimate_joint(labels=y, pred_probs=p)
    return np.asarray(joint, dtype=np.float64) * len(y)
