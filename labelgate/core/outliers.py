"""Outliers / out-of-scope rows: far from their nearest neighbours in embedding space.

The outlier distance of a row is the mean cosine distance ``1 - cos`` to its ``k`` nearest other rows
(cleanlab Datalab's outlier score uses the same kNN distance). A row is flagged when its distance is an
extreme value of the run's own distribution by the modified z-score of Iglewicz & Hoaglin:
``z = 0.6745 * (d - median(d)) / MAD(d)``, flagged when ``z > z_threshold`` (3.5 is their standard
cut-off). No absolute distance is assumed, so the rule adapts to any embedding model and dataset.

The score is ``2 ** (-max(z, 0) / z_threshold)``: 1 for typical rows, 0.5 at the threshold, lower beyond.
Outliers are better excluded than relabelled: no class fits them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from labelgate.core.duplicates import Neighbours
from labelgate.core.issues import issue_frame


def knn_distance(nb: Neighbours) -> np.ndarray:
    """Mean cosine distance to the ``k`` nearest other rows, shape ``(n,)`` (0 when there are none)."""
    if nb.knn_sim.shape[1] == 0:
        return np.zeros(len(nb.earlier_index))
    return np.clip(1.0 - nb.knn_sim.astype(np.float64), 0.0, 2.0).mean(axis=1)


def modified_z(values: np.ndarray) -> np.ndarray:
    """Iglewicz-Hoaglin modified z-scores (0 everywhere when the MAD is 0)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    med = np.median(values)
    mad = np.median(np.abs(values - med))
    if mad <= 0:
        return np.zeros_like(values)
    return 0.6745 * (values - med) / mad


def outlier_issues(
    row_ids: Sequence[str], labels: Sequence[str], nb: Neighbours, *, z_threshold: float = 3.5, min_rows: int = 20
) -> pd.DataFrame:
    """``outlier`` issue rows for every row (long format); flagged when the kNN distance's z > ``z_threshold``.

    Fewer than ``min_rows`` rows: nothing is flagged (a median of a handful of rows says little).
    """
    d = knn_distance(nb)
    z = modified_z(d)
    scores = np.power(2.0, -np.maximum(z, 0.0) / z_threshold)
    flags = (z > z_threshold) & (len(d) >= min_rows)
    med = float(np.median(d)) if len(d) else 0.0
    k = nb.knn_sim.shape[1]
    n = len(d)
    reason = np.full(n, None, dtype=object)
    flagged = np.flatnonzero(flags)
    reason[flagged] = [
        f"outlier: mean cosine distance {dist:.2f} to its {k} nearest rows vs median {med:.2f} "
        f"(robust z {zz:.1f} > {z_threshold:g})"
        for dist, zz in zip(d[flagged].tolist(), z[flagged].tolist())
    ]
    return issue_frame(
        n,
        row_id=np.array([str(r) for r in row_ids], dtype=object),
        issue_type="outlier",
        score=scores,
        is_issue=np.asarray(flags, dtype=bool),
        given_label=np.array([str(v) for v in labels], dtype=object),
        reason=reason,
    )
