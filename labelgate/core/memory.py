"""Curation memory: remembered decisions carried into a later run of the same dataset (pure functions).

A decision a person made (keep, relabel, exclude) is remembered per dataset and row content (text sha256,
given label, occurrence of that content in the run); every later run of the dataset applies the current
remembered decision of each of its rows before any policy, as a decision of source ``memory`` whose reason
names the run it came from. The store (:mod:`labelgate.store`) keeps the append-only log and finds the
current entries; these functions turn them into the run's decisions and its summary figures.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from labelgate.core.metrics import MemoryMetrics

#: columns of :func:`carried_decisions` (what the ``decisions`` table takes)
CARRIED_COLUMNS = ["run_id", "row_id", "action", "label", "source", "reviewer", "reason"]
ACTIONS = ("keep", "relabel", "exclude")


def _text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def carry_reason(*, from_run: str | None, source: str, reviewer: str | None, reason: str | None) -> str:
    """The reason stored with a carried decision: ``remembered from run R (human ann): <their reason>``."""
    who = f"{source} {reviewer}" if reviewer else source
    head = f"remembered from run {from_run or '?'} ({who})"
    why = _text(reason)
    return f"{head}: {why}" if why else head


def carried_decisions(found: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """The decisions (source ``memory``) that carry the remembered decisions ``found`` into ``run_id``.

    Args:
        found: :func:`labelgate.store.memory_for_run` (row_id, action, label, source, reviewer, reason, from_run).

    Returns:
        Columns :data:`CARRIED_COLUMNS`, one row per row of ``found`` (the reviewer is the original one).
    """
    if found.empty:
        return pd.DataFrame(columns=CARRIED_COLUMNS)
    reasons = [
        carry_reason(from_run=_text(r.from_run), source=str(r.source), reviewer=_text(r.reviewer), reason=r.reason)
        for r in found.itertuples(index=False)
    ]
    labels = [None if a == "exclude" else _text(lab) for a, lab in zip(found["action"], found["label"])]
    return pd.DataFrame(
        {
            "run_id": run_id,
            "row_id": found["row_id"].astype(str).to_numpy(),
            "action": found["action"].astype(str).to_numpy(),
            "label": pd.array(labels, dtype=object),
            "source": "memory",
            "reviewer": [_text(r) for r in found["reviewer"]],
            "reason": reasons,
        }
    )[CARRIED_COLUMNS]


def carry_summary(found: pd.DataFrame, *, rows_valid: int, rows_seen: int) -> dict[str, Any]:
    """What the run's summary, ``labelgate runs``, the manifest and the dashboard say about the memory.

    Returns:
        ``carried`` (rows given a remembered decision), ``by_action`` (keep/relabel/exclude counts),
        ``by_source`` (human/policy: whose decision was remembered), ``from_runs`` (run id -> rows, the runs
        the decisions were made in), ``rows_new`` (valid rows whose text and given label no earlier completed
        run of the dataset had) and ``rows_seen`` (the others).
    """
    by_action = {a: int((found["action"] == a).sum()) if not found.empty else 0 for a in ACTIONS}
    by_source: dict[str, int] = {}
    from_runs: dict[str, int] = {}
    if not found.empty:
        by_source = {str(k): int(v) for k, v in found["source"].value_counts().sort_index().items()}
        runs = found["from_run"].astype(object).where(found["from_run"].notna(), "?")
        from_runs = {str(k): int(v) for k, v in runs.value_counts().sort_index().items()}
    return {
        "carried": len(found),
        "by_action": by_action,
        "by_source": by_source,
        "from_runs": from_runs,
        "rows_new": int(rows_valid - rows_seen),
        "rows_seen": int(rows_seen),
    }


def describe_carried(summary: MemoryMetrics | None) -> str:
    """One line for people: ``25 decisions carried (relabel 20, exclude 5) from run R (25)``; '' when none."""
    if summary is None or not summary.carried:
        return ""
    from_runs = summary.from_runs or {}
    acts = ", ".join(f"{a} {n}" for a, n in (summary.by_action or {}).items() if n)
    runs = ", ".join(f"{r} ({n})" for r, n in from_runs.items())
    n = summary.carried
    several = len(from_runs) != 1
    return f"{n} decision{'s' if n != 1 else ''} carried ({acts}) from run{'s' if several else ''} {runs}"
