"""The automatic review gate: a policy turns detected issues into decisions.

Decisions have one shape whoever makes them (this policy or a person):
``row_id, action (keep|relabel|exclude), label (the label to export; None for exclude), reason``.
"""

from __future__ import annotations

import pandas as pd

DECISION_COLUMNS = ["row_id", "action", "label", "reason"]
ACTIONS = ("keep", "relabel", "exclude")


def auto_decisions(
    label_issues: pd.DataFrame,
    *,
    relabel_threshold: float = 0.8,
    exclude_threshold: float | None = None,
) -> pd.DataFrame:
    """Decide every flagged row of ``label_issues`` by thresholds.

    Args:
        label_issues: the output of :func:`labelgate.core.detect.find_label_issues` (needs
            ``row_id, given_label, suggested_label, suggested_prob, label_score, is_label_issue``).
        relabel_threshold: a flagged row is relabelled to its suggestion when the model gives the
            suggestion at least this probability.
        exclude_threshold: a flagged row that is not relabelled is excluded when its label score
            is below this; ``None`` keeps it.

    Returns:
        One decision per flagged row (columns :data:`DECISION_COLUMNS`), in the input order.
        Rows that are not flagged get no decision: they are kept as given.
    """
    if not 0.0 <= relabel_threshold <= 1.0:
        raise ValueError(f"relabel_threshold must be in [0, 1], got {relabel_threshold!r}")
    if exclude_threshold is not None and not 0.0 <= exclude_threshold <= 1.0:
        raise ValueError(f"exclude_threshold must be in [0, 1] or None, got {exclude_threshold!r}")
    flagged = label_issues[label_issues["is_label_issue"].astype(bool)]
    out = []
    for rec in flagged.itertuples(index=False):
        prob = float(rec.suggested_prob)
        differs = rec.suggested_label != rec.given_label
        if differs and prob >= relabel_threshold:
            out.append(
                (
                    rec.row_id,
                    "relabel",
                    rec.suggested_label,
                    f"P({rec.suggested_label})={prob:.2f} >= {relabel_threshold:.2f}: relabel {rec.given_label} "
                    f"-> {rec.suggested_label}",
                )
            )
        elif exclude_threshold is not None and float(rec.label_score) < exclude_threshold:
            out.append(
                (
                    rec.row_id,
                    "exclude",
                    None,
                    f"label score {float(rec.label_score):.2f} < {exclude_threshold:.2f} and no confident suggestion",
                )
            )
        else:
            out.append(
                (
                    rec.row_id,
                    "keep",
                    rec.given_label,
                    f"P({rec.suggested_label})={prob:.2f} < {relabel_threshold:.2f}: not confident enough to relabel",
                )
            )
    return pd.DataFrame(out, columns=DECISION_COLUMNS)
