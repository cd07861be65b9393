"""The human review gate's tasks: open the review (status ``awaiting_review``) and close it (decisions counted).

The gate itself, which pauses the flow run between the two, is :func:`labelgate.flows.review_gate.human_gate`.
"""

from __future__ import annotations

from prefect import task

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.metrics import GateMetrics, ReviewMetrics
from labelgate.services import review
from labelgate.tasks._common import TASK_OPTIONS


@task(name="open-review", **TASK_OPTIONS)
def open_review(db_path: str, run_id: str, review_url: str | None) -> review.ReviewProgress:
    """Mark the run ``awaiting_review`` (with its review URL) and return the review progress."""
    with store.connect(db_path) as con:
        with store.transaction(con):
            store.update_run(con, run_id, status=review.AWAITING_REVIEW)
            store.merge_metrics(con, run_id, {"gate": "human", "review_url": review_url})
        return review.review_progress(con, run_id)


@task(name="close-review", **TASK_OPTIONS)
def close_review(
    db_path: str, run_id: str, params: CurateParams, *, reviewer: str, action: str, timed_out: bool
) -> GateMetrics:
    """Apply the auto policy to undecided rows when ``action`` is ``auto``; record the review; status running.

    Args:
        reviewer: who finished the review ('' when nobody said).
        action: ``finish`` (undecided rows keep their label) or ``auto`` (the auto policy decides them).
        timed_out: the review's wait ran out.

    Returns:
        The gate's figures: ``decisions`` (keep/relabel/exclude counts of the latest decisions) and ``review``
        (:class:`labelgate.core.metrics.ReviewMetrics`); both are merged into the run's metrics.
    """
    with store.connect(db_path) as con:
        policy = review.fill_with_policy(con, run_id, settings=params.gate_settings()) if action == "auto" else {}
        if policy and params.carry_policy_decisions:
            with store.transaction(con):
                store.remember_policy_decisions(con, run_id)
        prog = review.review_progress(con, run_id)
        counts = review.decision_counts(con, run_id)
        summary = ReviewMetrics(
            reviewer=reviewer or None,
            action=action,
            timed_out=timed_out,
            flagged=prog.flagged,
            reviewed=prog.reviewed,
            carried=prog.carried,
            by_action=prog.by_action,
            policy_decided=sum(policy.values()),
        )
        with store.transaction(con):
            store.update_run(con, run_id, status="running")
            store.merge_metrics(con, run_id, {"decisions": counts, "gate": "human", "review": summary.to_json()})
    return GateMetrics(decisions=counts, review=summary)
