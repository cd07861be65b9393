"""The human gate's tasks on the undecided tiny run: open_review returns the typed progress, close_review the
gate's figures (:class:`GateMetrics`), and what they merge into the run's metrics is what they return."""

from __future__ import annotations

import pytest
from unit_support import tiny_params

from labelgate import store
from labelgate.core.metrics import GateMetrics, ReviewMetrics, RunMetrics
from labelgate.services import review
from labelgate.tasks.review import close_review, open_review

pytestmark = pytest.mark.flow


def _metrics(db: str, run_id: str) -> dict:
    with store.connect(db, read_only=True) as con:
        return store.run_record(con, run_id)["metrics_json"]


def test_open_then_close_with_the_auto_policy(undecided_db: str, tiny_run_undecided) -> None:
    run_id = tiny_run_undecided.run_id
    opened = open_review.fn(undecided_db, run_id, "http://127.0.0.1:1/runs/x")
    assert isinstance(opened, review.ReviewProgress)
    assert opened.status == review.AWAITING_REVIEW and opened.reviewed == 0
    assert opened.remaining == opened.flagged == tiny_run_undecided.metrics["rows_flagged"] > 0

    gated = close_review.fn(undecided_db, run_id, tiny_params(), reviewer="ann", action="auto", timed_out=False)
    assert isinstance(gated, GateMetrics) and isinstance(gated.review, ReviewMetrics)
    assert gated.review.reviewer == "ann" and gated.review.action == "auto" and gated.review.timed_out is False
    assert gated.review.flagged == opened.flagged and gated.review.reviewed == 0
    assert gated.review.policy_decided == opened.flagged  # the policy decided every flagged row nobody decided
    assert sum(gated.decisions.values()) == opened.flagged

    stored = _metrics(undecided_db, run_id)
    assert stored["review"] == gated.review.to_json()
    assert set(stored["review"]) == {
        "reviewer",
        "action",
        "timed_out",
        "flagged",
        "reviewed",
        "carried",
        "by_action",
        "policy_decided",
    }
    assert stored["decisions"] == gated.decisions and stored["gate"] == "human"
    assert RunMetrics.from_json(stored).decisions == gated.replace(review_url="http://127.0.0.1:1/runs/x")
    with store.connect(undecided_db, read_only=True) as con:
        assert store.run_status(con, run_id=run_id) == "running"


def test_close_without_a_reviewer_records_none(undecided_db: str, tiny_run_undecided) -> None:
    gated = close_review.fn(
        undecided_db, tiny_run_undecided.run_id, tiny_params(), reviewer="", action="finish", timed_out=True
    )
    assert gated.review is not None and gated.review.reviewer is None and gated.review.timed_out is True
    assert gated.review.policy_decided == 0 and gated.decisions == {"keep": 0, "relabel": 0, "exclude": 0}
