"""Low-agreement items in a run (tiny run, tests/unit_support.py): queued for a person, and a person's decision wins
over ``--low-agreement exclude`` when the policy decides the rest."""

from __future__ import annotations

import pandas as pd
import pytest
from unit_support import PLAIN_ID

from labelgate import store
from labelgate.core.annotators import LOW_AGREEMENT, low_agreement_issues
from labelgate.core.policy import GateSettings
from labelgate.services import review

pytestmark = pytest.mark.unit

#: a second unflagged row of the tiny run (billing, like PLAIN_ID)
OTHER_ID = "t04"


def _flag_low_agreement(db: str) -> str:
    """Store low-agreement issues for PLAIN_ID and OTHER_ID (1 of 3 labels agree) as the annotators stage would."""
    with store.connect(db) as con:
        run_id = store.resolve_run(con, "latest")
        valid = store.valid_rows(con, run_id).set_index("row_id")
        ids = [PLAIN_ID, OTHER_ID]
        items = pd.DataFrame(
            {"item_id": ids, "consensus_label": valid.loc[ids, "label"].tolist(), "agreement": 1 / 3, "n_labels": 3}
        )
        with store.transaction(con):
            store.replace_issues_of_type(con, run_id, LOW_AGREEMENT, low_agreement_issues(items, min_agreement=0.5))
    return run_id


def test_low_agreement_items_are_queued_for_the_review_with_their_reason(undecided_db: str) -> None:
    run_id = _flag_low_agreement(undecided_db)
    with store.connect(undecided_db, read_only=True) as con:
        items = review.review_items(con, run_id).set_index("id")
        progress = review.review_progress(con, run_id)
    assert {PLAIN_ID, OTHER_ID} <= set(items.index)
    assert items.loc[PLAIN_ID, "issue_types"] == ["low_agreement"]
    assert items.loc[PLAIN_ID, "reasons"][0].startswith("low annotator agreement: 1 of 3 labels agree with consensus")
    assert not items.loc[PLAIN_ID, "decided"] and items.loc[PLAIN_ID, "accept_action"] != "exclude"
    assert progress.flagged == len(items)


@pytest.mark.parametrize(("setting", "policy_action"), [("exclude", "exclude"), ("review", "keep")])
def test_a_persons_decision_wins_over_the_low_agreement_rule(
    undecided_db: str, setting: str, policy_action: str
) -> None:
    run_id = _flag_low_agreement(undecided_db)
    with store.connect(undecided_db) as con:
        review.record_decision(con, run_id, row_id=PLAIN_ID, action="keep", reviewer="ann")
        review.fill_with_policy(con, run_id, settings=GateSettings(low_agreement=setting))
        latest = store.latest_decisions(con, run_id).set_index("row_id")
    assert latest.loc[PLAIN_ID, "action"] == "keep" and latest.loc[PLAIN_ID, "source"] == "human"
    assert latest.loc[OTHER_ID, "action"] == policy_action and latest.loc[OTHER_ID, "source"] == "policy"
    assert "low annotator agreement: 1 of 3 labels agree" in latest.loc[OTHER_ID, "reason"]


def test_a_reused_detection_leaves_the_low_agreement_issues_behind(undecided_db: str) -> None:
    """They are the annotators stage's, which writes a run's own after a reused detection."""
    run_id = _flag_low_agreement(undecided_db)
    with store.connect(undecided_db) as con, store.transaction(con):
        store.copy_detection(con, run_id, "later-run")
        types = store.query_df(con, "SELECT DISTINCT issue_type FROM issues WHERE run_id = ?", ["later-run"])
        source = store.query_df(con, "SELECT DISTINCT issue_type FROM issues WHERE run_id = ?", [run_id])
    assert set(source["issue_type"]) - set(types["issue_type"]) == {"low_agreement"}
