"""The automatic review gate: a policy turns detected issues into decisions.

Decisions have one shape whoever makes them (this policy or a person):
``row_id, action (keep|relabel|exclude), label (the label to export; None for exclude), reason``.

The policy, per row, first matching rule wins (every decision quotes the detector's reason):

1. ``leakage`` -> exclude (a twin of a test row must not be trained on).
2. ``exact_duplicate`` / ``near_duplicate`` (later copies only; the first occurrence stays) -> exclude.
3. ``empty`` with no word at all (score 0) -> exclude.
4. ``outlier`` -> exclude (out of scope: no class fits it, so relabelling would guess).
5. ``label`` issue whose suggestion's ``suggested_prob`` >= ``relabel_threshold`` (for the label detector,
   the probability that the suggestion is the true label: the model's probabilities corrected by the
   estimated noise rates, :func:`labelgate.core.detect.true_label_posterior`), or whose ``model_prob`` (the
   model's own probability of the suggestion) >= ``model_threshold`` -> relabel. The first rule is the one
   that pays on noisy data; on nearly clean data the estimated noise rates are so low that it keeps errors
   the model is sure of, which the second catches.
6. ``label`` issue otherwise -> exclude when its label score is below ``exclude_threshold`` (or, when that
   is None and ``exclude_below_chance``, below chance ``1 / n_classes``: the model finds the given label
   less likely than a guess, and there is no confident replacement), else keep.
7. any other flagged issue (conflicting label, too short, too long) -> keep, with the reasons.

Rows no detector flagged get no decision: they are kept as given.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

DECISION_COLUMNS = ["row_id", "action", "label", "reason"]
ACTIONS = ("keep", "relabel", "exclude")

#: issue types whose flagged rows the policy excludes, in order of precedence
EXCLUDED_TYPES = ("leakage", "exact_duplicate", "near_duplicate", "empty", "outlier")


def _long(issues: pd.DataFrame) -> pd.DataFrame:
    """Accept the long issues table or a wide label-issue frame (``is_label_issue``, ``label_score``)."""
    if "issue_type" in issues.columns:
        out = issues.copy()
        if "score" not in out.columns and "label_score" in out.columns:
            out["score"] = out["label_score"]
        if "is_issue" not in out.columns and "is_label_issue" in out.columns:
            out["is_issue"] = out["is_label_issue"]
        return out
    out = issues.rename(columns={"label_score": "score", "is_label_issue": "is_issue"}).copy()
    out["issue_type"] = "label"
    for col in ("reason", "related_row_id", "given_label", "suggested_label", "suggested_prob"):
        if col not in out.columns:
            out[col] = None
    return out


def auto_decisions(
    issues: pd.DataFrame,
    *,
    relabel_threshold: float = 0.5,
    model_threshold: float | None = 0.8,
    exclude_threshold: float | None = None,
    exclude_below_chance: bool = False,
    n_classes: int | None = None,
) -> pd.DataFrame:
    """Decide every flagged row of ``issues`` (see the module docstring for the rules).

    Args:
        issues: the long issues table (columns ``row_id, issue_type, score, is_issue, given_label,
            suggested_label, suggested_prob, reason``; see :mod:`labelgate.core.issues`), or a wide
            label-issue frame (``row_id, given_label, suggested_label, suggested_prob, label_score,
            is_label_issue``) as :func:`labelgate.core.detect.find_label_issues` returns.
        relabel_threshold: a label issue is relabelled to its suggestion when ``suggested_prob`` (the
            probability that the suggestion is the true label) is at least this; 0.5 = more likely than not.
        model_threshold: a label issue is also relabelled when ``model_prob`` (the model's plain probability of
            the suggestion) is at least this; ``None`` turns this rule off.
        exclude_threshold: a label issue that is not relabelled is excluded when its label score is
            below this; ``None`` defers to ``exclude_below_chance``.
        exclude_below_chance: with ``exclude_threshold`` None, exclude a label issue that is not
            relabelled when its label score is below ``1 / n_classes``.
        n_classes: the number of classes (needed by ``exclude_below_chance``).

    Returns:
        One decision per flagged row (columns :data:`DECISION_COLUMNS`), ordered by row id.
    """
    if not 0.0 <= relabel_threshold <= 1.0:
        raise ValueError(f"relabel_threshold must be in [0, 1], got {relabel_threshold!r}")
    if model_threshold is not None and not 0.0 <= model_threshold <= 1.0:
        raise ValueError(f"model_threshold must be in [0, 1] or None, got {model_threshold!r}")
    if exclude_threshold is not None and not 0.0 <= exclude_threshold <= 1.0:
        raise ValueError(f"exclude_threshold must be in [0, 1] or None, got {exclude_threshold!r}")
    chance = False
    if exclude_threshold is None and exclude_below_chance and n_classes and n_classes >= 2:
        exclude_threshold, chance = 1.0 / n_classes, True
    long = _long(issues)
    flagged = long[long["is_issue"].fillna(False).astype(bool)]
    if flagged.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    out = []
    for row_id, group in flagged.groupby("row_id", sort=True):
        by_type = {rec.issue_type: rec for rec in group.itertuples(index=False)}
        others = [str(by_type[t].reason) for t in by_type if t != "label" and by_type[t].reason]
        decision = None
        for t in EXCLUDED_TYPES:
            rec = by_type.get(t)
            if rec is None or (t == "empty" and float(rec.score or 0.0) > 0.0):
                continue
            decision = (row_id, "exclude", None, f"{t}: {rec.reason}" if rec.reason else t)
            break
        if decision is None and "label" in by_type:
            decision = _label_decision(by_type["label"], relabel_threshold, exclude_threshold, chance, model_threshold)
        if decision is None:
            given = next((r.given_label for r in by_type.values() if r.given_label is not None), None)
            decision = (row_id, "keep", given, "kept for review: " + "; ".join(others))
        elif others and decision[1] != "exclude":
            decision = (*decision[:3], decision[3] + "; also " + "; ".join(others))
        out.append(decision)
    return pd.DataFrame(out, columns=DECISION_COLUMNS)


def accept_action(
    flagged: Mapping[str, float | None], *, given: str | None, suggested: str | None
) -> tuple[str, str | None, str] | None:
    """What accepting the suggestion (the review's W key) does to a row: the policy's own proposal for it.

    Args:
        flagged: issue type -> score of every issue a detector flagged on the row.
        given: the row's given label.
        suggested: the label detector's suggestion (None: none).

    Returns:
        ``(action, label, why)``: ``exclude`` when a rule of :data:`EXCLUDED_TYPES` applies (an excluded duplicate
        stays excluded), else ``relabel`` to a suggestion that differs from the given label, else ``keep`` of the
        given label; None when there is nothing to accept (no exclusion rule and no suggestion).
    """
    for t in EXCLUDED_TYPES:
        if t not in flagged:
            continue
        score = flagged[t]
        if t == "empty" and score is not None and not pd.isna(score) and float(score) > 0.0:
            continue
        return "exclude", None, t.replace("_", " ")
    if suggested is None or (isinstance(suggested, float) and pd.isna(suggested)):
        return None
    if suggested != given:
        return "relabel", suggested, "label"
    return "keep", given, "label"


def _prob(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _label_decision(
    rec,
    relabel_threshold: float,
    exclude_threshold: float | None,
    chance: bool = False,
    model_threshold: float | None = None,
) -> tuple:
    prob = _prob(rec.suggested_prob) or 0.0
    model = _prob(getattr(rec, "model_prob", None))
    score = float(rec.score) if rec.score is not None else 1.0
    differs = rec.suggested_label is not None and rec.suggested_label != rec.given_label
    why = f" ({rec.reason})" if getattr(rec, "reason", None) else ""
    if differs and prob >= relabel_threshold:
        return (
            rec.row_id,
            "relabel",
            rec.suggested_label,
            f"P({rec.suggested_label})={prob:.2f} >= {relabel_threshold:.2f}: relabel {rec.given_label} "
            f"-> {rec.suggested_label}{why}",
        )
    if differs and model_threshold is not None and model is not None and model >= model_threshold:
        return (
            rec.row_id,
            "relabel",
            rec.suggested_label,
            f"model P({rec.suggested_label})={model:.2f} >= {model_threshold:.2f}: relabel {rec.given_label} "
            f"-> {rec.suggested_label}{why}",
        )
    if exclude_threshold is not None and score < exclude_threshold:
        return (
            rec.row_id,
            "exclude",
            None,
            f"label score {score:.2f} < {'chance ' if chance else ''}{exclude_threshold:.2f} and no confident "
            f"suggestion (P({rec.suggested_label})={prob:.2f} < {relabel_threshold:.2f}){why}",
        )
    return (
        rec.row_id,
        "keep",
        rec.given_label,
        f"P({rec.suggested_label})={prob:.2f} < {relabel_threshold:.2f}: not confident enough to relabel{why}",
    )
