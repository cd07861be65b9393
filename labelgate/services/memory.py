"""The curation memory as a library: a row's history across runs, and revoking or changing a remembered decision.

A decision a person makes on a row (keep, relabel, exclude; :func:`labelgate.services.review.record_decisions`) is
remembered for the run's dataset and the row's content (text sha256 and given label; see
:mod:`labelgate.core.memory`), in the same transaction as the decision. Every later run of the dataset applies
the current remembered decision before any policy. The log (table ``memory``) is append-only:

- changing a remembered decision is recording a new decision on the row in a run (:func:`change`, the review
  page, ``labelgate review``): it is remembered in its turn and wins from then on;
- revoking appends a ``revoke`` entry (:func:`revoke`): later runs carry nothing for that content (the policy or
  a person decides it again). Runs that already carried the decision keep it in their own record;
- :func:`history` lists every decision on the content in every run of the dataset (policy, human, carried) and
  every memory entry, with who, when and why.

The web app (:mod:`labelgate.web.memory`) and the CLI (``labelgate history``, ``labelgate memory``) call these.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
import pandas as pd

from labelgate import store
from labelgate.services import review


def _clean(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _clean(v) for k, v in rec.items()} for rec in frame.to_dict(orient="records")]


def row_content(con: duckdb.DuckDBPyConnection, run_id: str, row_id: str) -> dict[str, Any]:
    """The memory key of a valid row: run_id, row_id, dataset, text_sha256, given_label, occurrence, text.

    Raises:
        ReviewError: ``row_id`` is not a valid row of the run.
    """
    keys = store.content_keys(con, run_id, [str(row_id)])
    if keys.empty:
        raise review.ReviewError(f"row {row_id!r} is not a valid row of run {run_id}")
    rec = keys.iloc[0]
    return {
        "run_id": run_id,
        "row_id": str(row_id),
        "dataset": store.run_dataset(con, run_id),
        "text_sha256": str(rec["text_sha256"]),
        "given_label": str(rec["label"]),
        "occurrence": int(rec["occurrence"]),
        "text": rec["text"],
    }


def history(con: duckdb.DuckDBPyConnection, run_id: str, row_id: str) -> dict[str, Any]:
    """Everything decided on the content of ``row_id`` (its text and given label) in ``run_id``'s dataset.

    Returns:
        The row's key (:func:`row_content`) plus ``current`` (the remembered decision later runs carry for
        this occurrence, None when there is none), ``memory`` (every memory entry of the content, oldest first:
        memory_id, occurrence, action incl. ``revoke``, label, source, reviewer, reason, run_id, row_id,
        decision_id, created_at) and ``decisions`` (every decision on a row with this content in every run of
        the dataset, oldest first: decision_id, run_id, row_id, action, label, source, reviewer, reason,
        decided_at).
    """
    key = row_content(con, run_id, row_id)
    entries = store.memory_entries(con, key["dataset"], key["text_sha256"], key["given_label"])
    mine = entries[entries["occurrence"] == key["occurrence"]]
    current = None
    if not mine.empty and mine.iloc[-1]["action"] != "revoke":
        current = {k: _clean(v) for k, v in mine.iloc[-1].to_dict().items()}
    decisions = store.content_decisions(con, key["dataset"], key["text_sha256"], key["given_label"])
    return {**key, "current": current, "memory": _records(entries), "decisions": _records(decisions)}


def revoke(
    con: duckdb.DuckDBPyConnection, run_id: str, row_id: str, *, reviewer: str, reason: str | None = None
) -> dict[str, Any]:
    """Revoke the remembered decision of ``row_id``'s content: later runs carry nothing for it.

    Appends a ``revoke`` entry (the log keeps everything before it). Returns :func:`history` afterwards.

    Raises:
        ReviewError: not a valid row, no remembered decision to revoke, or a bad reviewer name.
    """
    name = review.clean_reviewer(reviewer)
    before = history(con, run_id, row_id)
    if before["current"] is None:
        raise review.ReviewError(
            f"row {row_id!r} of run {run_id} has no remembered decision to revoke (`labelgate history {row_id}`)"
        )
    note = " ".join(str(reason or "").split())[:500] or None
    entry = {
        **{k: before[k] for k in ("dataset", "text_sha256", "given_label", "occurrence")},
        "action": "revoke",
        "label": None,
        "source": "human",
        "reviewer": name,
        "reason": note,
        "run_id": run_id,
        "row_id": str(row_id),
        "decision_id": None,
    }
    with store.transaction(con):
        store.remember(con, [entry])
    return history(con, run_id, row_id)


def change(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    row_id: str,
    *,
    action: str,
    label: str | None = None,
    reviewer: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """Change the remembered decision of ``row_id``'s content by recording a new decision on the row in ``run_id``
    (:func:`labelgate.services.review.record_decision`; ``labelgate export`` of that run writes it, later runs
    carry it).

    Returns :func:`history` afterwards.

    Raises:
        ReviewError: an unknown row, action or label.
    """
    review.record_decision(con, run_id, row_id=row_id, action=action, label=label, reviewer=reviewer, note=reason)
    return history(con, run_id, row_id)


def remembered(con: duckdb.DuckDBPyConnection, dataset: str | None = None) -> list[dict[str, Any]]:
    """The current remembered decisions (not revoked), newest first, of ``dataset`` (None: every dataset).

    Each: memory_id, dataset, text_sha256, given_label, occurrence, action, label, source, reviewer, reason,
    run_id (where it was decided), row_id (the row's id there), created_at.
    """
    return _records(store.current_memory(con, dataset))
