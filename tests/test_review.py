"""The review library on the tiny run (tests/unit_support.py): decisions, history, undo, progress, policy fill,
finish."""

from __future__ import annotations

import re

import pytest
from unit_support import CLASSES, MARKUP_ID, MARKUP_TEXT, MISLABELLED, PLAIN_ID

from labelgate import store
from labelgate.services import review

pytestmark = pytest.mark.unit


@pytest.fixture
def db(tiny_db: str) -> str:
    """The tiny run after the auto policy (every flagged row has a policy decision)."""
    return tiny_db


def _run(db: str) -> str:
    with store.connect(db) as con:
        return store.resolve_run(con, "latest")


def test_the_tiny_run_plants_what_these_tests_use(tiny_run) -> None:
    """Guards the fixture: two label errors flagged with their words' class, the markup row and a plain row."""
    with store.connect(tiny_run.db_path, read_only=True) as con:
        items = review.review_items(con, tiny_run.run_id).set_index("id")
    label_rows = items[items["issue_types"].map(lambda t: "label" in t)]
    assert {
        r: (g, s) for r, g, s in zip(label_rows.index, label_rows["given_label"], label_rows["suggested_label"])
    } == (MISLABELLED)
    assert PLAIN_ID not in items.index
    assert tiny_run.metrics["rows_flagged"] == len(items) >= 4


def test_items_are_flagged_rows_worst_first_with_types_reasons_and_state(db: str, tiny_run) -> None:
    run_id = _run(db)
    with store.connect(db) as con:
        items = review.review_items(con, run_id)
        everything = review.review_items(con, run_id, filters=review.ReviewFilters(scope="all"))
        classes = review.run_classes(con, run_id)
    assert list(items.columns) == review.ITEM_COLUMNS
    assert len(items) == tiny_run.metrics["rows_flagged"] > 0
    assert items["severity"].is_monotonic_decreasing
    assert items["flagged"].all()
    known = {
        "label",
        "exact_duplicate",
        "near_duplicate",
        "conflicting_label",
        "outlier",
        "empty",
        "too_long",
        "leakage",
    }
    assert all(t and set(t) <= known for t in items["issue_types"])
    assert sum("label" in t for t in items["issue_types"]) == tiny_run.metrics["label_issues"]
    assert all(r and r[0] for r in items["reasons"])
    assert len(everything) == tiny_run.metrics["rows_valid"]
    assert classes == CLASSES
    # the tiny run went through the auto policy: every flagged row carries a policy decision
    assert items["decided"].all() and (items["decision_source"] == "policy").all()


def test_filters_by_class_status_and_text(undecided_db: str) -> None:
    db = undecided_db
    run_id = _run(db)
    with store.connect(db) as con:
        items = review.review_items(con, run_id)
        first = items.iloc[0]
        review.record_decision(con, run_id, row_id=first["id"], action="keep", reviewer="ann")
        given = review.review_items(con, run_id, filters=review.ReviewFilters(given=first["given_label"]))
        suggested = review.review_items(con, run_id, filters=review.ReviewFilters(suggested=first["suggested_label"]))
        decided = review.review_items(con, run_id, filters=review.ReviewFilters(status="decided"))
        undecided = review.review_items(con, run_id, filters=review.ReviewFilters(status="undecided"))
        found = review.review_items(con, run_id, filters=review.ReviewFilters(scope="all", query="<SCRIPT>alert(1)"))
        by_type = review.review_items(con, run_id, filters=review.ReviewFilters(issue_type="label"))
        none_of_type = review.review_items(
            con, run_id, filters=review.ReviewFilters(issue_type="leakage")
        )  # no --test file: no leaks
    assert len(given) and (given["given_label"] == first["given_label"]).all()
    assert len(suggested) and (suggested["suggested_label"] == first["suggested_label"]).all()
    assert list(decided["id"]) == [first["id"]]
    assert len(undecided) == len(items) - 1
    assert list(found["id"]) == [MARKUP_ID]
    assert found.iloc[0]["text"] == MARKUP_TEXT
    assert all("label" in t for t in by_type["issue_types"]) and none_of_type.empty
    assert len(by_type) == sum("label" in t for t in items["issue_types"])
    with store.connect(db) as con, pytest.raises(review.ReviewError, match="scope"):
        review.review_items(con, run_id, filters=review.ReviewFilters(scope="some"))


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (review.ReviewFilters(scope="some"), "scope must be 'flagged' or 'all', got 'some'"),
        (review.ReviewFilters(novelty="old"), "novelty must be 'new', 'seen' or 'all', got 'old'"),
        (review.ReviewFilters(status="done"), "status must be 'undecided', 'decided' or 'all', got 'done'"),
        (review.ReviewFilters(scope="", status="done"), "scope must be"),  # scope is checked first
    ],
)
def test_review_filters_reject_values_not_allowed_when_used(filters: review.ReviewFilters, message: str) -> None:
    with pytest.raises(review.ReviewError, match="^" + re.escape(message)):
        filters.check()


def test_review_filters_are_frozen_and_default_to_every_flagged_row(tiny_run) -> None:
    filters = review.ReviewFilters()
    filters.check()  # empty and None values are no filter
    review.ReviewFilters(status="", novelty="", issue_type="").check()
    with pytest.raises(AttributeError):
        filters.scope = "all"  # type: ignore[misc]
    with store.connect(tiny_run.db_path, read_only=True) as con:
        default = review.review_items(con, tiny_run.run_id)
        explicit = review.review_items(con, tiny_run.run_id, filters=filters)
        blank = review.review_items(
            con, tiny_run.run_id, filters=review.ReviewFilters(status="all", novelty="", given="", query="", limit=1)
        )
    assert default.equals(explicit) and default.equals(blank)  # the limit is the listing's to apply
    assert len(default) == tiny_run.metrics["rows_flagged"] and default["flagged"].all()


def test_decisions_append_latest_wins_and_history_is_kept(undecided_db: str) -> None:
    db = undecided_db
    run_id = _run(db)
    with store.connect(db) as con:
        items = review.review_items(con, run_id)
        row = items[items["suggested_label"] != items["given_label"]].iloc[0]  # a row with a suggestion to accept
        rid, given, suggested = row["id"], row["given_label"], row["suggested_label"]
        assert suggested != given
        accepted = review.record_decision(con, run_id, row_id=rid, action="accept", reviewer="ann")
        assert accepted == {"id": rid, "action": "relabel", "label": suggested, "reviewer": "ann"}
        same = review.record_decision(con, run_id, row_id=rid, action="relabel", label=given, reviewer="ann")
        assert same["action"] == "keep" and same["label"] == given  # relabel to the given label is a keep
        review.record_decision(con, run_id, row_id=rid, action="exclude", reviewer="  bob \n smith ")
        latest = store.latest_decisions(con, run_id).set_index("row_id").loc[rid]
        history = review.decision_history(con, run_id)
    assert latest["action"] == "exclude" and latest["label"] is None
    assert latest["source"] == "human" and latest["reviewer"] == "bob smith"
    assert list(history["action"]) == ["relabel", "keep", "exclude"]
    assert list(history["source"]) == ["human"] * 3


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        ({"id": "no-such-row", "action": "keep"}, "not a valid row"),
        ({"id": PLAIN_ID, "action": "delete"}, "action must be one of"),
        ({"id": PLAIN_ID, "action": "relabel"}, "needs a 'label'"),
        ({"id": PLAIN_ID, "action": "relabel", "label": "<b>refunds</b>"}, "not a class of run"),
        ({"action": "keep"}, "needs the row 'id'"),
    ],
)
def test_bad_decisions_are_refused_and_a_batch_is_all_or_nothing(db: str, decision: dict, message: str) -> None:
    run_id = _run(db)
    with store.connect(db) as con:
        before = len(review.decision_history(con, run_id))
        good = {"id": review.review_items(con, run_id).iloc[0]["id"], "action": "keep"}
        with pytest.raises(review.ReviewError, match=message):
            review.record_decisions(con, run_id, [good, decision], reviewer="ann")
        assert len(review.decision_history(con, run_id)) == before


def test_a_reviewer_name_is_required(db: str) -> None:
    run_id = _run(db)
    with store.connect(db) as con, pytest.raises(review.ReviewError, match="reviewer name is required"):
        review.record_decision(con, run_id, row_id=PLAIN_ID, action="keep", reviewer="  ")


def test_undo_steps_back_through_single_and_bulk_decisions(db: str) -> None:
    run_id = _run(db)
    with store.connect(db) as con:
        policy = store.latest_decisions(con, run_id).set_index("row_id")
        items = review.review_items(con, run_id)
        suggests = items["suggested_label"] != items["given_label"]
        ids = [items.loc[suggests, "id"].iloc[0], *items.loc[~suggests | (items.index > 0), "id"][:3]]
        ids = [ids[0], *[i for i in ids[1:] if i != ids[0]][:2]]  # accept needs a suggestion different from given
        review.record_decision(con, run_id, row_id=ids[0], action="exclude", reviewer="ann")
        review.record_decisions(con, run_id, [{"id": i, "action": "keep"} for i in ids[1:]], reviewer="ann")
        review.record_decision(con, run_id, row_id=ids[0], action="keep", reviewer="ann")

        step1 = review.undo_last(con, run_id, reviewer="ann")  # the second decision on ids[0]
        assert [(s["id"], s["action"]) for s in step1] == [(ids[0], "exclude")]
        step2 = review.undo_last(con, run_id, reviewer="ann")  # the bulk keep of ids[1:]
        assert sorted(s["id"] for s in step2) == sorted(ids[1:])
        latest = store.latest_decisions(con, run_id).set_index("row_id")
        for rid in ids[1:]:  # back to the policy's decision, which existed before
            assert (latest.loc[rid, "action"], latest.loc[rid, "source"]) == (
                policy.loc[rid, "action"],
                "policy",
            )
        step3 = review.undo_last(con, run_id, reviewer="ann")
        assert [s["id"] for s in step3] == [ids[0]]
        assert review.undo_last(con, run_id, reviewer="ann") == []
        assert review.review_progress(con, run_id).reviewed == 0
        history = review.decision_history(con, run_id)
    assert history["reason"].fillna("").str.startswith("undo of #").sum() == 4  # nothing deleted, undo appended


def test_undo_of_a_first_decision_means_no_decision_again(undecided_db: str) -> None:
    db = undecided_db
    run_id = _run(db)
    with store.connect(db) as con:
        rid = review.review_items(con, run_id).iloc[0]["id"]
        review.record_decision(con, run_id, row_id=rid, action="exclude", reviewer="ann")
        assert review.review_progress(con, run_id).reviewed == 1
        [restored] = review.undo_last(con, run_id, reviewer="ann")
        item = review.review_items(con, run_id).set_index("id").loc[rid]
        latest = store.latest_decisions(con, run_id).set_index("row_id").loc[rid]
        prog = review.review_progress(con, run_id)
        counts = review.decision_counts(con, run_id)
    assert {k: restored[k] for k in ("id", "action", "label", "decided")} == {
        "id": rid,
        "action": None,
        "label": None,
        "decided": False,
    }
    assert not item["decided"] and item["decision_action"] is None
    # the export sees "keep as given", exactly what a row without a decision gets
    assert latest["action"] == "keep" and latest["label"] == item["given_label"]
    assert prog.reviewed == 0 and prog.remaining == prog.flagged
    assert counts == {"keep": 0, "relabel": 0, "exclude": 0}


def test_progress_counts_human_decisions_of_flagged_rows(undecided_db: str) -> None:
    db = undecided_db
    run_id = _run(db)
    with store.connect(db) as con:
        items = review.review_items(con, run_id)
        suggests = items["suggested_label"] != items["given_label"]
        ids = [items.loc[suggests, "id"].iloc[0], *items.loc[~suggests | (items.index > 0), "id"][:3]]
        ids = [ids[0], *[i for i in ids[1:] if i != ids[0]][:2]]  # accept needs a suggestion different from given
        review.record_decisions(
            con,
            run_id,
            [
                {"id": ids[0], "action": "accept"},
                {"id": ids[1], "action": "exclude"},
                {"id": ids[2], "action": "keep"},
                {"id": PLAIN_ID, "action": "exclude"},  # not flagged
            ],
            reviewer="ann",
        )
        prog = review.review_progress(con, run_id)
    assert prog.reviewed == 3 and prog.remaining == prog.flagged - 3
    assert prog.by_action == {"keep": 1, "relabel": 1, "exclude": 1}
    assert prog.other_reviewed == 1 and prog.policy == 0


def test_policy_fills_only_rows_nobody_decided(undecided_db: str) -> None:
    db = undecided_db
    run_id = _run(db)
    with store.connect(db) as con:
        items = review.review_items(con, run_id)
        rid = items.iloc[0]["id"]
        review.record_decision(con, run_id, row_id=rid, action="exclude", reviewer="ann")
        filled = review.fill_with_policy(con, run_id, relabel_threshold=0.8, exclude_threshold=None)
        latest = store.latest_decisions(con, run_id).set_index("row_id")
    assert sum(filled.values()) == len(items) - 1
    assert latest.loc[rid, "action"] == "exclude" and latest.loc[rid, "source"] == "human"
    assert set(latest.drop(index=rid)["source"]) == {"policy"}


def test_finishing_a_run_that_is_not_paused_points_to_export(db: str) -> None:
    result = review.finish_review(db, "latest", reviewer="ann")
    assert result["resumed"] is False and result["status"] == "completed"
    assert "labelgate export" in result["message"]
    with pytest.raises(review.ReviewError, match="finish action"):
        review.finish_review(db, "latest", reviewer="ann", action="publish")
