"""The review queue lists likely mislabelled label issues before ambiguous ones (labelgate.core.ambiguity through
labelgate.services.review / reports / review_page), on a copy of the tiny run."""

from __future__ import annotations

import pytest
from unit_support import MISLABELLED

from labelgate import store
from labelgate.core.ambiguity import AMBIGUOUS, LABEL_KINDS
from labelgate.core.ambiguity import MISLABELLED as KIND_MISLABELLED
from labelgate.core.issues import issue_rows
from labelgate.errors import ReviewError
from labelgate.services import reports, review, review_page
from labelgate.services.review import ReviewFilters

pytestmark = pytest.mark.unit

#: the tiny run's two label errors: the first becomes ambiguous with the LOWER label score
AMBIGUOUS_ID, MISLABELLED_ID = sorted(MISLABELLED)


def _plant_kinds(db: str) -> str:
    """Rewrite the two label issues: AMBIGUOUS_ID ambiguous at score 0.05, MISLABELLED_ID mislabelled at 0.30."""
    records = []
    for rid, kind, score, amb in ((AMBIGUOUS_ID, AMBIGUOUS, 0.05, 0.9), (MISLABELLED_ID, KIND_MISLABELLED, 0.30, 0.1)):
        given, suggested = MISLABELLED[rid]
        records.append(
            {
                "row_id": rid,
                "issue_type": "label",
                "score": score,
                "given_label": given,
                "suggested_label": suggested,
                "suggested_prob": 0.6,
                "model_prob": 0.6,
                "reason": f"model disagrees: {suggested}",
                "label_kind": kind,
                "ambiguity": amb,
            }
        )
    with store.connect(db) as con:
        run_id = store.resolve_run(con, "latest")
        store.replace_label_issues(con, run_id, issue_rows(records))
    return run_id


def test_the_tiny_runs_label_issues_have_a_kind_and_a_score(tiny_run) -> None:
    with store.connect(tiny_run.db_path, read_only=True) as con:
        items = review.review_items(con, tiny_run.run_id, filters=ReviewFilters(issue_type="label"))
        counts = store.count_label_issues_by_kind(con, tiny_run.run_id)
    assert set(items["id"]) == set(MISLABELLED)
    assert set(items["label_kind"]) <= set(LABEL_KINDS)
    assert items["ambiguity"].between(0, 1).all()
    assert sum(counts.values()) == len(items)


def test_mislabelled_rows_come_before_ambiguous_ones_whatever_their_label_score(tiny_db: str) -> None:
    run_id = _plant_kinds(tiny_db)
    with store.connect(tiny_db, read_only=True) as con:
        labels = review.review_items(con, run_id, filters=ReviewFilters(issue_type="label"))
        flagged = review.review_items(con, run_id)
        everything = review.review_items(con, run_id, filters=ReviewFilters(scope="all"))
        report = reports.issues_frame(con, run_id)
        only_ambiguous = review.review_items(con, run_id, filters=ReviewFilters(label_kind=AMBIGUOUS))
        page = review_page.review_page_data(con, run_id)
        top = store.top_label_issues(con, run_id=run_id, limit=5)
        counts = store.count_label_issues_by_kind(con, run_id)
    assert labels["id"].tolist() == [MISLABELLED_ID, AMBIGUOUS_ID]  # though the ambiguous row scores lower
    assert labels["label_kind"].tolist() == [KIND_MISLABELLED, AMBIGUOUS]
    sev = labels.set_index("id")["severity"]
    assert sev[MISLABELLED_ID] == pytest.approx(0.70) and sev[AMBIGUOUS_ID] == pytest.approx(0.95 / 2)
    for frame in (flagged, everything, report):
        ids = frame["id"].tolist()
        assert ids.index(MISLABELLED_ID) < ids.index(AMBIGUOUS_ID)
    # every flagged row (whatever its severity) comes before every unflagged one
    assert everything["flagged"].tolist() == sorted(everything["flagged"].tolist(), reverse=True)
    assert report.set_index("id").loc[AMBIGUOUS_ID, "label_kind"] == AMBIGUOUS
    assert only_ambiguous["id"].tolist() == [AMBIGUOUS_ID]
    assert page["label_kinds"] == {KIND_MISLABELLED: 1, AMBIGUOUS: 1} == counts
    assert page["filters"]["label_kind"] == ""
    assert top["row_id"].tolist() == [MISLABELLED_ID, AMBIGUOUS_ID]


def test_an_unknown_kind_filter_is_refused(tiny_run) -> None:
    with (
        store.connect(tiny_run.db_path, read_only=True) as con,
        pytest.raises(ReviewError, match="label_kind must be"),
    ):
        review.review_items(con, tiny_run.run_id, filters=ReviewFilters(label_kind="wrong"))
