"""Gate task: record decisions for flagged rows (the policy now; a person in the human gate)."""

from __future__ import annotations

from prefect import task

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.metrics import GateMetrics
from labelgate.core.policy import auto_decisions
from labelgate.tasks._common import TASK_OPTIONS


@task(name="auto-gate", **TASK_OPTIONS)
def auto_gate(db_path: str, run_id: str, params: CurateParams) -> GateMetrics:
    """Apply the policy to every flagged issue of the run; append its decisions (source ``policy``).

    Rows a person decided or that carry a remembered decision (source ``memory``, :mod:`labelgate.tasks.memory`)
    are left alone. Earlier policy decisions of the same run are replaced; human decisions are never touched.
    With ``params.carry_policy_decisions`` the policy's decisions are also remembered for later runs.
    Returns the keep/relabel/exclude counts of the policy's decisions (``GateMetrics.decisions``).
    """
    with store.connect(db_path) as con:
        issues, n_classes = store.flagged_issues(con, run_id)
        held = store.held_rows(con, run_id)
    issues = issues[~issues["row_id"].isin(held)]
    decisions = auto_decisions(issues, settings=params.gate_settings(), n_classes=n_classes).assign(
        run_id=run_id, source="policy"
    )
    with store.connect(db_path) as con, store.transaction(con):
        store.replace_run_rows(
            con,
            "decisions",
            run_id,
            decisions[["run_id", "row_id", "action", "label", "source", "reason"]],
            match={"source": "policy"},
        )
        if params.carry_policy_decisions:
            store.remember_policy_decisions(con, run_id)
        counts = {a: int((decisions["action"] == a).sum()) for a in ("keep", "relabel", "exclude")}
        store.merge_metrics(con, run_id, {"decisions": counts, "gate": "auto"})
    return GateMetrics(decisions=counts)
