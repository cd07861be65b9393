"""Gate task: record decisions for flagged rows (the policy now; a person in the human gate)."""

from __future__ import annotations

from typing import Any

from prefect import task

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.policy import auto_decisions
from labelgate.tasks._common import TASK_OPTIONS


@task(name="auto-gate", **TASK_OPTIONS)
def auto_gate(db_path: str, run_id: str, params: CurateParams) -> dict[str, Any]:
    """Apply the policy to every flagged issue of the run; append its decisions (source ``policy``).

    Earlier policy decisions of the same run are replaced; human decisions are never touched.
    Returns the keep/relabel/exclude counts.
    """
    with store.connect(db_path) as con:
        issues, n_classes = store.flagged_issues(con, run_id)
    decisions = auto_decisions(
        issues,
        **params.policy_settings(),
        n_classes=n_classes,
    ).assign(run_id=run_id, source="policy")
    with store.connect(db_path) as con, store.transaction(con):
        con.execute("DELETE FROM decisions WHERE run_id = ? AND source = 'policy'", [run_id])
        store.insert_frame(con, "decisions", decisions[["run_id", "row_id", "action", "label", "source", "reason"]])
        counts = {a: int((decisions["action"] == a).sum()) for a in ("keep", "relabel", "exclude")}
        store.merge_metrics(con, run_id, {"decisions": counts, "gate": "auto"})
    return counts
