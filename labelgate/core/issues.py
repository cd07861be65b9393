"""The one shape every detector writes: one row per (row, issue type), like cleanlab Datalab's issue columns.

Columns :data:`ISSUE_COLUMNS` (the ``issues`` table without ``run_id``):

- ``row_id``: the row the issue is about.
- ``issue_type``: one of :data:`ISSUE_TYPES`.
- ``score`` in [0, 1]: *lower = more severe* for every type (``label``: the adjusted probability of the
  given label; ``near_duplicate``: 1 - cosine similarity to the nearest other row; ``outlier``: 0.5 at
  the flagging threshold, lower beyond it; duplicates and leaks of identical text score 0; ``low_agreement``:
  the share of the item's labels that agree with its consensus).
- ``is_issue``: the detector's verdict.
- ``given_label``, ``suggested_label``, ``suggested_prob``: label issues (None elsewhere; a conflicting
  label carries the other row's label as its suggestion).
- ``reason``: one human-readable sentence for flagged rows.
- ``related_row_id``: the row this one duplicates or conflicts with, or the test row it leaks.
- ``model_prob``: label issues: the ensemble's plain probability of the suggestion (``suggested_prob`` is
  the noise-corrected probability that the suggestion is the true label).
- ``label_kind``: flagged label issues of the single-label detector: ``mislabelled`` (a confident disagreement)
  or ``ambiguous`` (the text supports the given label nearly as well as the suggestion); see
  :mod:`labelgate.core.ambiguity`. None for other types, unflagged rows and multi-annotator consensus issues.
- ``ambiguity`` in [0, 1]: label issues: how nearly the given label ties with the suggestion, or how unsure the
  suggestion itself is, whichever is larger (0 = a sure suggestion and no support for the given label, 1 = a tie;
  :func:`labelgate.core.ambiguity.ambiguity_scores`). None for other types.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

#: every issue type, in the order of severity used to sort a row's reasons
ISSUE_TYPES = (
    "leakage",
    "exact_duplicate",
    "near_duplicate",
    "empty",
    "outlier",
    "label",
    "conflicting_label",
    "too_long",
    "low_agreement",
)
#: the issue types the detect stage writes (``low_agreement`` is the annotators stage's, several annotators only:
#: :func:`labelgate.core.annotators.low_agreement_issues`)
DETECTED_TYPES = tuple(t for t in ISSUE_TYPES if t != "low_agreement")

ISSUE_COLUMNS = [
    "row_id",
    "issue_type",
    "score",
    "is_issue",
    "given_label",
    "suggested_label",
    "suggested_prob",
    "reason",
    "related_row_id",
    "model_prob",
    "label_kind",
    "ambiguity",
]

#: the float columns of :data:`ISSUE_COLUMNS` (NaN where a detector wrote nothing)
_FLOATS = {"score": "float64", "suggested_prob": "float64", "model_prob": "float64", "ambiguity": "float64"}


def issue_rows(records: Iterable[dict]) -> pd.DataFrame:
    """A frame of :data:`ISSUE_COLUMNS` from dicts (missing keys are None; ``is_issue`` defaults to True)."""
    rows = [{c: r.get(c, True if c == "is_issue" else None) for c in ISSUE_COLUMNS} for r in records]
    frame = pd.DataFrame(rows, columns=ISSUE_COLUMNS)
    return frame.astype({**_FLOATS, "is_issue": "bool"})


def issue_frame(n: int, **columns: Any) -> pd.DataFrame:
    """The frame :func:`issue_rows` builds from ``n`` dicts, built from whole columns instead (fast at any size).

    Args:
        n: number of rows.
        columns: :data:`ISSUE_COLUMNS` names -> a sequence of ``n`` values or one value for every row
            (missing columns are None; ``is_issue`` defaults to True).

    Same values and dtypes as :func:`issue_rows` given the same rows as dicts.
    """
    unknown = set(columns) - set(ISSUE_COLUMNS)
    if unknown:
        raise ValueError(f"unknown issue columns {sorted(unknown)}")
    if n == 0:
        return issue_rows([])
    data = {}
    for c in ISSUE_COLUMNS:
        value = columns.get(c, True if c == "is_issue" else None)
        if value is None or isinstance(value, str | bool | int | float):
            value = np.full(n, value, dtype=object if value is None or isinstance(value, str) else None)
        elif len(value) != n:
            raise ValueError(f"column {c!r} has {len(value)} values for {n} rows")
        data[c] = value
    frame = pd.DataFrame(data, columns=ISSUE_COLUMNS, index=pd.RangeIndex(n))
    return frame.astype({**_FLOATS, "is_issue": "bool"})


def label_issue_rows(found: pd.DataFrame) -> pd.DataFrame:
    """The long-format rows of :func:`labelgate.core.detect.find_label_issues` output (every row scored).

    ``label_kind`` and ``ambiguity`` are taken from ``found`` when it has them (None / NaN otherwise, e.g. for
    :func:`labelgate.core.annotators.consensus_label_issues`).
    """
    n = len(found)
    kinds = found["label_kind"] if "label_kind" in found.columns else pd.Series([None] * n, dtype=object)
    kinds = kinds.astype(object).where(kinds.notna(), None)
    ambiguity = found["ambiguity"] if "ambiguity" in found.columns else pd.Series(np.full(n, np.nan))
    return pd.DataFrame(
        {
            "row_id": found["row_id"].to_numpy(),
            "issue_type": "label",
            "score": found["label_score"].astype("float64").to_numpy(),
            "is_issue": found["is_label_issue"].astype(bool).to_numpy(),
            "given_label": found["given_label"].to_numpy(),
            "suggested_label": found["suggested_label"].to_numpy(),
            "suggested_prob": found["suggested_prob"].astype("float64").to_numpy(),
            "model_prob": found["model_prob"].astype("float64").to_numpy(),
            "reason": found["reason"].to_numpy(),
            "related_row_id": None,
            "label_kind": kinds.to_numpy(object),
            "ambiguity": pd.to_numeric(ambiguity, errors="coerce").astype("float64").to_numpy(),
        },
        columns=ISSUE_COLUMNS,
    )
