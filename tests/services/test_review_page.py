"""The review page's data and the issue list as plain data (labelgate.services.review_page) on the tiny run."""

from __future__ import annotations

import json

import pytest
from unit_support import CLASSES, DATASET, DUPLICATES, MISLABELLED

from labelgate import store
from labelgate.errors import ReviewError, RunNotFoundError
from labelgate.services import review, review_page
from labelgate.services.review import ReviewFilters

pytestmark = pytest.mark.unit

#: the page's filters of a default :class:`ReviewFilters` (novelty not resolved yet)
NO_FILTERS = {
    "scope": "flagged",
    "issue_type": "",
    "given": "",
    "suggested": "",
    "status": "all",
    "q": "",
    "novelty": "",
    "annotator": "",
    "label_kind": "",
}


def _page(db_path: str, run: str = "latest", **filters) -> dict:
    with store.connect(db_path, read_only=True) as con:
        return review_page.review_page_data(con, run, filters=ReviewFilters(**filters))


def test_the_tiny_runs_page_lists_its_flagged_rows_with_their_basis_and_related_rows(tiny_run) -> None:
    page = _page(tiny_run.db_path)
    assert page["run_id"] == tiny_run.run_id
    assert page["run"] == {"run_id": tiny_run.run_id, "dataset": DATASET, "status": "completed", "message": None}
    assert page["awaiting"] is False and page["detected"] is True
    assert page["classes"] == CLASSES and page["annotators"] == []
    assert page["filters"] == {**NO_FILTERS, "novelty": "all"}  # no earlier run of the dataset saw any row
    assert page["issue_types"] == ["exact_duplicate", "label", "outlier"]
    assert page["matching"] == len(page["items"]) == page["progress"].flagged == 5
    assert page["limit"] == review_page.PAGE_LIMIT
    by_id = {it["id"]: it for it in page["items"]}
    assert set(MISLABELLED) | {DUPLICATES[1]} <= set(by_id)
    dup = by_id[DUPLICATES[1]]
    assert dup["related_row_id"] == DUPLICATES[0] and dup["related"]["id"] == DUPLICATES[0]
    assert all(it["related"] is None for it in page["items"] if not it["related_row_id"])
    for rid, (given, words_class) in MISLABELLED.items():
        it = by_id[rid]
        assert it["given_label"] == given and it["suggested_label"] == words_class
        assert it["basis"]["relabels"] is True and it["decided"] is True  # the tiny run's policy decided it
    assert by_id[DUPLICATES[1]]["basis"]["relabels"] is False
    assert isinstance(page["progress"], review.ReviewProgress)  # typed; the route sends its to_dict()
    json.dumps({**page, "progress": page["progress"].to_dict()})  # the rest is plain data


def test_filters_narrow_the_items_and_the_limit_is_clamped(tiny_run) -> None:
    everything = _page(tiny_run.db_path, scope="all")
    assert everything["matching"] == 24 and everything["issue_types"] == ["exact_duplicate", "label", "outlier"]
    labels = _page(tiny_run.db_path, issue_type="label")
    assert {it["id"] for it in labels["items"]} == set(MISLABELLED) and labels["matching"] == 2
    assert labels["filters"]["issue_type"] == "label"
    assert labels["issue_types"] == everything["issue_types"]  # the filter's choices do not shrink with it
    refund = _page(tiny_run.db_path, scope="all", query="refund")
    assert refund["matching"] and all("refund" in it["text"] for it in refund["items"])
    assert refund["filters"]["q"] == "refund"
    assert _page(tiny_run.db_path, status="undecided")["matching"] == 0
    one = _page(tiny_run.db_path, limit=0)
    assert one["limit"] == 1 and len(one["items"]) == 1 and one["matching"] == 5
    assert _page(tiny_run.db_path, limit=10**9)["limit"] == review_page.MAX_PAGE_LIMIT
    assert _page(tiny_run.db_path, tiny_run.run_id[:10])["run_id"] == tiny_run.run_id


def test_the_undecided_run_has_its_rows_undecided(tiny_run_undecided) -> None:
    page = _page(tiny_run_undecided.db_path)
    assert page["matching"] == 5 and not any(it["decided"] for it in page["items"])
    assert _page(tiny_run_undecided.db_path, status="decided")["matching"] == 0


def test_the_page_opens_on_new_rows_when_an_earlier_run_saw_some(tiny_run, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {DUPLICATES[1]}
    monkeypatch.setattr(store, "seen_rows", lambda con, run_id: seen)
    page = _page(tiny_run.db_path)
    assert page["filters"]["novelty"] == "new"
    assert DUPLICATES[1] not in {it["id"] for it in page["items"]} and page["matching"] == 4
    assert _page(tiny_run.db_path, novelty="all")["filters"]["novelty"] == "all"


def test_bad_filters_and_unknown_runs_raise(tiny_run) -> None:
    with pytest.raises(RunNotFoundError):
        _page(tiny_run.db_path, "nope")
    with pytest.raises(ReviewError):
        _page(tiny_run.db_path, scope="bogus")
    with store.connect(tiny_run.db_path, read_only=True) as con:
        with pytest.raises(RunNotFoundError):
            review_page.issues_data(con, "nope", filters=ReviewFilters())
        with pytest.raises(ReviewError):
            review_page.issues_data(con, "latest", filters=ReviewFilters(status="bogus"))


def test_the_issue_list_counts_every_match_and_returns_the_first_limit(tiny_run) -> None:
    with store.connect(tiny_run.db_path, read_only=True) as con:
        three = review_page.issues_data(con, "latest", filters=ReviewFilters(scope="all", limit=3))
        every = review_page.issues_data(con, "latest", filters=ReviewFilters(scope="all"))
        labels = review_page.issues_data(con, "latest", filters=ReviewFilters(issue_type="label"))
    assert three["run_id"] == tiny_run.run_id and three["classes"] == CLASSES
    assert three["count"] == every["count"] == len(every["items"]) == 24 and len(three["items"]) == 3
    assert [it["id"] for it in three["items"]] == [it["id"] for it in every["items"][:3]]
    assert three["progress"]["flagged"] == 5
    assert {it["id"] for it in labels["items"]} == set(MISLABELLED) and labels["count"] == 2
    json.dumps(every)


def test_page_filters_name_the_forms_fields_and_show_no_filter_as_empty() -> None:
    assert review_page.page_filters(ReviewFilters()) == NO_FILTERS
    full = ReviewFilters(
        scope="all",
        issue_type="label",
        given="a",
        suggested="b",
        status="",
        query="x",
        novelty="new",
        annotator="c",
        label_kind="ambiguous",
    )
    assert review_page.page_filters(full) == {
        "scope": "all",
        "issue_type": "label",
        "given": "a",
        "suggested": "b",
        "status": "",
        "q": "x",
        "novelty": "new",
        "annotator": "c",
        "label_kind": "ambiguous",
    }


def test_policy_thresholds_take_the_runs_values_else_the_defaults() -> None:
    defaults = review_page.policy_thresholds({})
    assert isinstance(defaults["relabel_threshold"], float)
    assert review_page.policy_thresholds({"relabel_threshold": 0.9, "relabel_model_threshold": None}) == {
        "relabel_threshold": 0.9,
        "model_threshold": None,
        "exclude_doubtful": None,  # a run stored before the rule existed had it off
    }
    assert review_page.policy_thresholds({"exclude_doubtful": 0.3})["exclude_doubtful"] == 0.3
    assert review_page.policy_thresholds({"relabel_model_threshold": "0.7"})["model_threshold"] == 0.7
    kept = review_page.policy_thresholds({"relabel_model_threshold": 0.7})
    assert kept["relabel_threshold"] == defaults["relabel_threshold"]


def test_label_kind_counts_of_no_items_is_empty() -> None:
    """A run without issues (a failed run) lists no items: its kind counts are empty, not a KeyError (an empty
    object mask used to select no *columns*)."""
    import pandas as pd

    from labelgate.services.review_page import label_kind_counts

    empty = pd.DataFrame({"issue_types": pd.Series([], dtype=object), "label_kind": pd.Series([], dtype=object)})
    assert label_kind_counts(empty) == {}
    items = pd.DataFrame(
        {"issue_types": [["label"], ["near_duplicate"], ["label"]], "label_kind": ["ambiguous", None, "ambiguous"]}
    )
    assert label_kind_counts(items) == {"ambiguous": 2}
