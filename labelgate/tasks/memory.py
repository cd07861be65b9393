"""Curation-memory task: carry the dataset's remembered decisions into the run, before any policy."""

from __future__ import annotations

from prefect import task

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.memory import carried_decisions, carry_summary
from labelgate.core.metrics import MemoryMetrics
from labelgate.tasks._common import TASK_OPTIONS


@task(name="carry-memory", **TASK_OPTIONS)
def carry_memory(db_path: str, run_id: str, params: CurateParams) -> MemoryMetrics:
    """Record the current remembered decision of every valid row that has one (source ``memory``).

    Remembered decisions are those a person made on the same content (text and given label) in an earlier run
    of the dataset, not revoked since; with ``params.carry_policy_decisions`` the policy's remembered decisions
    too. The policy (auto gate, or a review finished with ``auto``) and the review queue leave these rows alone.
    Earlier memory decisions of the same run are replaced. Returns the summary
    (:func:`labelgate.core.memory.carry_summary`, stored as ``memory``).
    """
    with store.connect(db_path) as con:
        found = store.memory_for_run(con, run_id, include_policy=params.carry_policy_decisions)
        rows_valid = store.count_valid_rows(con, run_id)
        seen = len(store.seen_rows(con, run_id))
        summary = carry_summary(found, rows_valid=rows_valid, rows_seen=seen)
        with store.transaction(con):
            store.replace_memory_decisions(con, run_id, carried_decisions(found, run_id))
            store.merge_metrics(con, run_id, {"memory": summary})
    return MemoryMetrics.from_json(summary)
