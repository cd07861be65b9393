"""The auto gate's policy over every issue type."""

from __future__ import annotations

import pandas as pd
import pytest
from unit_support import label_issue

from labelgate.core.issues import issue_rows
from labelgate.core.policy import DECISION_COLUMNS, auto_decisions

pytestmark = pytest.mark.unit


def test_every_rule_in_order():
    issues = issue_rows(
        [
            label_issue("a", "x", "y", 0.95, 0.02),
            label_issue("b", "x", "y", 0.25, 0.1),  # below exclude_doubtful (0.3): kept as given
            label_issue("c", "x", "x", 0.9, 0.9, flagged=False),
            label_issue("d", "x", "y", 0.99, 0.01),
            {"row_id": "d", "issue_type": "leakage", "score": 0.0, "reason": "leaks the test set: row t1"},
            {"row_id": "e", "issue_type": "exact_duplicate", "score": 0.0, "reason": "exact duplicate of row a"},
            {"row_id": "f", "issue_type": "near_duplicate", "score": 0.03, "reason": "near-duplicate of row a"},
            {"row_id": "g", "issue_type": "outlier", "score": 0.3, "reason": "outlier: far"},
            {"row_id": "h", "issue_type": "empty", "score": 0.0, "reason": "empty: no words"},
            {"row_id": "i", "issue_type": "empty", "score": 0.5, "given_label": "x", "reason": "too short: 1 word"},
            {"row_id": "j", "issue_type": "too_long", "score": 0.5, "given_label": "x", "reason": "too long"},
            label_issue("k", "x", "y", 0.9, 0.05),
            {"row_id": "k", "issue_type": "conflicting_label", "score": 0.0, "reason": "conflicting labels: x/y"},
        ]
    )
    d = auto_decisions(issues, relabel_threshold=0.8).set_index("row_id")
    assert list(d.reset_index().columns) == DECISION_COLUMNS
    assert "c" not in d.index  # unflagged rows get no decision
    assert d.loc["a", "action"] == "relabel" and d.loc["a", "label"] == "y"
    assert d.loc["a", "reason"].startswith("P(y)=0.95 >= 0.80: relabel x -> y (model disagrees")
    assert d.loc["b", "action"] == "keep" and d.loc["b", "label"] == "x"
    assert d.loc["d", "action"] == "exclude" and d.loc["d", "reason"].startswith("leakage: leaks the test set")
    for row, kind in (("e", "exact_duplicate"), ("g", "outlier"), ("h", "empty")):
        assert d.loc[row, "action"] == "exclude" and pd.isna(d.loc[row, "label"])
        assert d.loc[row, "reason"].startswith(kind)
    assert d.loc["f", "action"] == "keep" and d.loc["f", "reason"].startswith("kept: a paraphrase (near-duplicate")
    old = auto_decisions(issues, relabel_threshold=0.8, near_duplicates="exclude").set_index("row_id")
    assert old.loc["f", "action"] == "exclude" and old.loc["f", "reason"].startswith("near_duplicate")
    assert d.loc["i", "action"] == "keep" and d.loc["i", "reason"] == "kept for review: too short: 1 word"
    assert d.loc["j", "action"] == "keep" and d.loc["j", "label"] == "x"
    assert d.loc["k", "action"] == "relabel" and "also conflicting labels" in d.loc["k", "reason"]


def test_exclude_threshold_and_wide_label_frames():
    wide = pd.DataFrame(
        {
            "row_id": ["a", "b", "c"],
            "given_label": ["x", "x", "x"],
            "suggested_label": ["y", "y", "y"],
            "suggested_prob": [0.5, 0.5, 0.9],
            "label_score": [0.1, 0.4, 0.05],
            "is_label_issue": [True, True, True],
        }
    )
    d = auto_decisions(wide, relabel_threshold=0.8, exclude_threshold=0.2, exclude_doubtful=None).set_index("row_id")
    assert list(d["action"]) == ["exclude", "keep", "relabel"]
    assert d.loc["a", "reason"].startswith("label score 0.10 < 0.20")


def test_nothing_flagged_and_bad_thresholds():
    assert auto_decisions(issue_rows([label_issue("a", "x", "x", 0.9, 0.9, flagged=False)])).empty
    with pytest.raises(ValueError, match="relabel_threshold"):
        auto_decisions(issue_rows([]), relabel_threshold=1.5)
    with pytest.raises(ValueError, match="exclude_threshold"):
        auto_decisions(issue_rows([]), exclude_threshold=-1)


def test_below_chance_label_issues_are_excluded_when_asked():
    issues = issue_rows([label_issue("a", "x", "y", 0.45, 0.2), label_issue("b", "x", "y", 0.45, 0.4)])
    kept = auto_decisions(issues, n_classes=3, exclude_doubtful=None).set_index("row_id")
    assert list(kept["action"]) == ["keep", "keep"]
    d = auto_decisions(issues, exclude_below_chance=True, n_classes=3, exclude_doubtful=None).set_index("row_id")
    assert list(d["action"]) == ["exclude", "keep"]
    assert d.loc["a", "reason"].startswith("label score 0.20 < chance 0.33 and no confident suggestion (P(y)=0.45")
    explicit = auto_decisions(
        issues, exclude_threshold=0.5, exclude_below_chance=True, n_classes=3, exclude_doubtful=None
    )
    assert list(explicit["action"]) == ["exclude", "exclude"]


def test_a_confident_model_relabels_even_when_the_noise_corrected_probability_is_cautious():
    rows = [
        {**label_issue("a", "x", "y", 0.2, 0.01), "model_prob": 0.95},  # nearly clean data: cautious posterior
        {**label_issue("b", "x", "y", 0.2, 0.01), "model_prob": 0.55},
        {**label_issue("c", "x", "y", 0.7, 0.01), "model_prob": 0.55},
    ]
    d = auto_decisions(issue_rows(rows)).set_index("row_id")
    assert list(d["action"]) == ["relabel", "keep", "relabel"]
    assert d.loc["a", "reason"].startswith("model P(y)=0.95 >= 0.60: relabel x -> y")
    assert d.loc["c", "reason"].startswith("P(y)=0.70 >= 0.50: relabel x -> y")
    off = auto_decisions(issue_rows(rows), model_threshold=None).set_index("row_id")
    assert list(off["action"]) == ["keep", "keep", "relabel"]
    with pytest.raises(ValueError, match="model_threshold must be in"):
        auto_decisions(issue_rows(rows), model_threshold=2.0)


def _dup(row_id, kind, other, given, reason=None):
    return {
        "row_id": row_id,
        "issue_type": kind,
        "score": 0.02,
        "given_label": given,
        "reason": reason or f"{kind} of row {other}",
        "related_row_id": other,
    }


def _conflict(row_id, other, given, other_label):
    return {
        "row_id": row_id,
        "issue_type": "conflicting_label",
        "score": 0.0,
        "given_label": given,
        "suggested_label": other_label,
        "reason": f"conflicting labels: {given} here, {other_label} on row {other} (cosine 0.97)",
        "related_row_id": other,
    }


def test_paraphrases_with_the_same_label_stay():
    issues = issue_rows([_dup("b", "near_duplicate", "a", "x"), label_issue("b", "x", "x", 0.9, 0.9, flagged=False)])
    d = auto_decisions(issues).set_index("row_id")
    assert list(d.index) == ["b"] and d.loc["b", "action"] == "keep" and d.loc["b", "label"] == "x"


def test_exact_duplicates_collapse_to_one_row():
    issues = issue_rows(
        [
            _dup("b", "exact_duplicate", "a", "x", "exact duplicate of row a (labelled x)"),
            _dup("c", "exact_duplicate", "a", "x", "exact duplicate of row a (labelled x)"),
        ]
    )
    d = auto_decisions(issues).set_index("row_id")
    assert sorted(d.index) == ["b", "c"] and set(d["action"]) == {"exclude"}  # a, the first copy, stays


def test_a_conflicting_copy_is_relabelled_to_the_stronger_copys_label_when_the_model_suggests_it():
    rows = [
        _dup("b", "near_duplicate", "a", "y"),
        _conflict("a", "b", "x", "y"),
        _conflict("b", "a", "y", "x"),
        label_issue("a", "x", "x", 0.9, 0.8, flagged=False),
        label_issue("b", "y", "x", 0.4, 0.3, flagged=False),  # b's label is the weaker one; the model suggests x
    ]
    d = auto_decisions(issue_rows(rows)).set_index("row_id")
    assert d.loc["a", "action"] == "keep" and d.loc["a", "label"] == "x"
    assert d.loc["b", "action"] == "relabel" and d.loc["b", "label"] == "x"
    assert d.loc["b", "reason"].startswith("conflict resolved: relabel y -> x, the label of its duplicate a")
    # the model suggests neither label for the weaker copy: it is excluded, the stronger one stays
    rows[-1] = label_issue("b", "y", "z", 0.4, 0.3, flagged=False)
    d = auto_decisions(issue_rows(rows)).set_index("row_id")
    assert d.loc["a", "action"] == "keep" and d.loc["b", "action"] == "exclude"
    assert d.loc["b", "reason"].startswith("conflict resolved: exclude; its duplicate a keeps x")
    # resolving is a setting: keep both, or exclude both
    keep = auto_decisions(issue_rows(rows), conflicts="keep").set_index("row_id")
    assert list(keep["action"]) == ["keep", "keep"]
    both = auto_decisions(issue_rows(rows), conflicts="exclude").set_index("row_id")
    assert list(both["action"]) == ["exclude", "exclude"]
    with pytest.raises(ValueError, match="conflicts must be one of resolve, keep, exclude, got 'drop'"):
        auto_decisions(issue_rows(rows), conflicts="drop")
    with pytest.raises(ValueError, match="near_duplicates must be one of keep, exclude, got 'x'"):
        auto_decisions(issue_rows(rows), near_duplicates="x")


def test_a_conflict_that_relabelling_already_resolved_is_left_alone():
    rows = [
        _conflict("a", "b", "x", "y"),
        _conflict("b", "a", "y", "x"),
        label_issue("a", "x", "x", 0.9, 0.8, flagged=False),
        label_issue("b", "y", "x", 0.9, 0.05),  # b is a label issue relabelled to x: the pair agrees now
    ]
    d = auto_decisions(issue_rows(rows)).set_index("row_id")
    assert d.loc["a", "action"] == "keep"
    assert d.loc["b", "action"] == "relabel" and d.loc["b", "label"] == "x"
    assert d.loc["b", "reason"].startswith("P(x)=0.90 >= 0.50: relabel y -> x")


def test_an_outlier_that_is_a_confident_label_issue_is_relabelled_not_dropped():
    rows = [
        {"row_id": "a", "issue_type": "outlier", "score": 0.3, "reason": "outlier: far from its class"},
        label_issue("a", "x", "y", 0.9, 0.05),
        {"row_id": "b", "issue_type": "outlier", "score": 0.3, "reason": "outlier: far from its class"},
        label_issue("b", "x", "y", 0.2, 0.05),
    ]
    d = auto_decisions(issue_rows(rows)).set_index("row_id")
    assert d.loc["a", "action"] == "relabel" and "also outlier" in d.loc["a", "reason"]
    assert d.loc["b", "action"] == "exclude" and d.loc["b", "reason"].startswith("outlier")


def test_accept_action_is_the_policys_proposal() -> None:
    from labelgate.core.policy import accept_action

    assert accept_action({"exact_duplicate": 0.0, "label": 0.1}, given="a", suggested="b") == (
        "exclude",
        None,
        "exact duplicate",
    )
    assert accept_action({"outlier": 0.2}, given="a", suggested="a")[0] == "exclude"
    assert accept_action({"empty": 0.5, "label": 0.1}, given="a", suggested="b") == ("relabel", "b", "label")
    assert accept_action({"empty": 0.0}, given="a", suggested=None)[0] == "exclude"
    assert accept_action({"label": 0.1}, given="a", suggested="a") == ("keep", "a", "label")
    assert accept_action({"too_long": 0.3}, given="a", suggested=None) is None


def test_gate_settings_decide_as_the_keyword_thresholds_do():
    from labelgate.core.policy import GateSettings

    rows = [
        {**label_issue("a", "x", "y", 0.3, 0.01), "model_prob": 0.95},
        {**label_issue("b", "x", "y", 0.3, 0.01), "model_prob": 0.55},
        {**label_issue("c", "x", "y", 0.7, 0.01), "model_prob": 0.55},
    ]
    off = {"model_threshold": None, "relabel_threshold": 0.8, "exclude_doubtful": None}
    by_keywords = auto_decisions(issue_rows(rows), **off)
    by_settings = auto_decisions(issue_rows(rows), settings=GateSettings(**off))
    assert by_settings.equals(by_keywords) and list(by_settings["action"]) == ["keep", "keep", "keep"]
    doubtful = auto_decisions(issue_rows(rows), settings=GateSettings(model_threshold=None, relabel_threshold=0.8))
    assert list(doubtful["action"]) == ["exclude", "exclude", "exclude"]  # 0.3 and 0.7 >= exclude_doubtful 0.3
    with pytest.raises(TypeError, match="not both"):
        auto_decisions(issue_rows(rows), settings=GateSettings(), conflicts="keep")
    with pytest.raises(TypeError, match="unknown keyword arguments"):
        auto_decisions(issue_rows(rows), relabel=0.5)


def test_a_rows_issues_are_read_together_wherever_they_sit_in_the_table():
    """The issues of one row need not be adjacent (the store lists them by issue type): the decision combines them,
    the rows come out sorted by id, and a shuffled table decides exactly as the ordered one."""
    records = [
        {"row_id": "r2", "issue_type": "near_duplicate", "score": 0.03, "reason": "near-duplicate of row r9"},
        label_issue("r1", "x", "y", 0.95, 0.02),
        {"row_id": "r3", "issue_type": "outlier", "score": 0.3, "reason": "outlier: far"},
        label_issue("r2", "x", "y", 0.9, 0.05),
        {"row_id": "r1", "issue_type": "too_long", "score": 0.5, "given_label": "x", "reason": "too long"},
        label_issue("r3", "x", "y", 0.2, 0.3),
        {"row_id": "r1", "issue_type": "leakage", "score": 0.0, "reason": "leaks the test set: row t1"},
    ]
    issues = issue_rows(records)
    d = auto_decisions(issues)
    assert list(d["row_id"]) == ["r1", "r2", "r3"]
    by_row = d.set_index("row_id")
    assert by_row.loc["r1", "action"] == "exclude" and by_row.loc["r1", "reason"].startswith("leakage")
    assert by_row.loc["r2", "action"] == "relabel" and "also near-duplicate of row r9" in by_row.loc["r2", "reason"]
    assert by_row.loc["r3", "action"] == "exclude" and by_row.loc["r3", "reason"].startswith("outlier")
    shuffled = issue_rows(records[::-1])
    pd.testing.assert_frame_equal(auto_decisions(shuffled), d)


def test_a_doubtful_label_issue_is_excluded_by_default_and_kept_when_the_rule_is_off():
    """``exclude_doubtful`` (default 0.3): a flagged row whose suggestion is a real contender (posterior 0.35) but not
    sure enough to relabel is excluded; with the rule off (None) it is kept; a weaker contender stays either way and a
    sure one is still relabelled."""
    issues = issue_rows(
        [
            label_issue("a", "x", "y", 0.35, 0.2),  # contender, not relabelled
            label_issue("b", "x", "y", 0.10, 0.3),  # weak suggestion: kept
            label_issue("c", "x", "y", 0.80, 0.1),  # sure: relabelled whatever the setting
        ]
    )
    default = auto_decisions(issues).set_index("row_id")
    assert default["action"].to_dict() == {"a": "exclude", "b": "keep", "c": "relabel"}
    assert pd.isna(default.loc["a", "label"])
    assert default.loc["a", "reason"].startswith("P(y)=0.35 >= 0.30: the given label x is in doubt")
    off = auto_decisions(issues, exclude_doubtful=None).set_index("row_id")
    assert off["action"].to_dict() == {"a": "keep", "b": "keep", "c": "relabel"}
    stricter = auto_decisions(issues, exclude_doubtful=0.4).set_index("row_id")
    assert stricter.loc["a", "action"] == "keep"


def test_exclude_doubtful_outside_zero_one_is_refused_with_its_value():
    with pytest.raises(ValueError, match=r"exclude_doubtful.*1\.5"):
        auto_decisions(issue_rows([label_issue("a", "x", "y", 0.35, 0.2)]), exclude_doubtful=1.5)
