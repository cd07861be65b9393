"""Low annotator agreement (several annotators per item): which items are flagged, and what the policy does."""

from __future__ import annotations

import pandas as pd
import pytest
from unit_support import label_issue

from labelgate.core.annotators import low_agreement_issues, low_agreement_mask
from labelgate.core.issues import ISSUE_COLUMNS, issue_rows
from labelgate.core.policy import GateSettings, accept_action, auto_decisions
from labelgate.errors import SettingsError

pytestmark = pytest.mark.unit

#: item -> (consensus, agreement, labels)
ITEMS = {
    "one-of-three": ("polite", 1 / 3, 3),
    "two-of-three": ("polite", 2 / 3, 3),
    "one-of-two": ("impolite", 1 / 2, 2),
    "two-of-two": ("polite", 1.0, 2),
    "two-of-four": ("impolite", 2 / 4, 4),
    "two-of-five": ("polite", 2 / 5, 5),
    "seven-of-ten": ("polite", 7 / 10, 10),
    "single": ("impolite", 1.0, 1),
}


def _items() -> pd.DataFrame:
    return pd.DataFrame(
        [(item, label, agreement, n) for item, (label, agreement, n) in ITEMS.items()],
        columns=["item_id", "consensus_label", "agreement", "n_labels"],
    )


def _low(min_agreement: float) -> set[str]:
    items = _items()
    return set(items.loc[low_agreement_mask(items, min_agreement=min_agreement), "item_id"])


def test_an_item_is_low_agreement_strictly_below_the_minimum_never_at_it() -> None:
    assert _low(0.5) == {"one-of-three", "two-of-five"}  # at 0.5: 1 of 2 and 2 of 4 pass
    assert _low(0.51) == {"one-of-three", "two-of-five", "one-of-two", "two-of-four"}  # a strict majority
    assert _low(0.66) == _low(0.51)  # 2 of 3 (0.667) passes
    assert _low(0.67) == _low(0.51) | {"two-of-three"}
    assert _low(2 / 3) == _low(0.66)  # exactly at the minimum: not below it
    assert "seven-of-ten" not in _low(0.7) and "seven-of-ten" in _low(0.71)
    seven_of_25 = pd.DataFrame({"agreement": [7 / 25], "n_labels": [25]})
    assert not low_agreement_mask(seven_of_25, min_agreement=0.28)[0]  # 0.28 * 25 is 7.000000000000001 in floats
    assert low_agreement_mask(seven_of_25, min_agreement=0.29)[0]
    assert _low(0.0) == set()


def test_an_item_with_one_label_is_never_low_agreement() -> None:
    assert "single" not in _low(1.0)
    assert _low(1.0) == set(ITEMS) - {"single", "two-of-two"}
    singles = pd.DataFrame(
        {"item_id": ["a", "b"], "consensus_label": ["x", "y"], "agreement": [1.0, 1.0], "n_labels": [1, 1]}
    )
    assert low_agreement_issues(singles, min_agreement=1.0).empty  # a single-annotator run: nothing fires


def test_low_agreement_issues_carry_the_agreement_and_a_plain_reason() -> None:
    found = low_agreement_issues(_items(), min_agreement=0.67).set_index("row_id")
    assert list(found.reset_index().columns) == ISSUE_COLUMNS
    assert set(found.index) == _low(0.67)
    assert (found["issue_type"] == "low_agreement").all() and found["is_issue"].all()
    rec = found.loc["one-of-three"]
    assert rec["reason"] == "low annotator agreement: 1 of 3 labels agree with consensus 'polite' (min 0.67)"
    assert rec["score"] == pytest.approx(1 / 3) and rec["given_label"] == "polite"
    assert found.loc["two-of-five", "reason"].startswith("low annotator agreement: 2 of 5 labels agree")
    assert pd.isna(rec["suggested_label"])


def _label(row_id: str, given: str, suggested: str, prob: float, score: float, flagged: bool = True) -> dict:
    return label_issue(
        row_id, given, suggested, prob, score, flagged, reason=f"unreliable consensus: {given} vs {suggested}"
    )


def _issues(min_agreement: float = 0.5) -> pd.DataFrame:
    """The low-agreement issues of :data:`ITEMS` plus a confident relabel on one of them, a leak on another, and a
    relabel on an item that agrees."""
    low = low_agreement_issues(_items(), min_agreement=min_agreement)
    others = issue_rows(
        [
            _label("one-of-three", "polite", "impolite", 0.9, 0.1),
            {"row_id": "two-of-five", "issue_type": "leakage", "score": 0.0, "reason": "leaks the test set: row t1"},
            _label("two-of-two", "polite", "impolite", 0.9, 0.1),
            _label("seven-of-ten", "polite", "polite", 0.9, 0.9, flagged=False),
        ]
    )
    return pd.concat([others, low], ignore_index=True)


def test_exclude_drops_the_low_agreement_items_and_says_why() -> None:
    d = auto_decisions(_issues(0.67), settings=GateSettings(low_agreement="exclude", min_agreement=0.67))
    d = d.set_index("row_id")
    excluded = set(d.index[d["action"] == "exclude"])
    assert excluded == _low(0.67)
    # the annotators could not agree: exclusion wins over a relabel the model supports
    assert d.loc["one-of-three", "reason"] == (
        "low annotator agreement: 1 of 3 labels agree with consensus 'polite' (min 0.67)"
    )
    assert d.loc["two-of-five", "reason"].startswith("leakage: ")  # an earlier rule's reason comes first
    # items at or above the minimum are decided by the other rules only
    assert d.loc["two-of-two", "action"] == "relabel" and "agreement" not in d.loc["two-of-two", "reason"]
    assert "seven-of-ten" not in d.index and "single" not in d.index
    assert pd.isna(d.loc["one-of-three", "label"])


def test_review_keeps_the_low_agreement_items_with_the_reason_and_keep_is_todays_policy() -> None:
    issues = _issues(0.5)
    d = auto_decisions(issues, settings=GateSettings(low_agreement="review")).set_index("row_id")
    assert d.loc["one-of-three", "action"] == "relabel"  # the relabel stands; the reason names the disagreement
    assert "also low annotator agreement: 1 of 3 labels agree" in d.loc["one-of-three", "reason"]
    assert d.loc["two-of-five", "action"] == "exclude"  # the leak
    assert not (d["action"] == "exclude").drop("two-of-five").any()
    # keep is the default: a run whose gate keeps low-agreement items never flags them (the annotators stage
    # writes no such issue), so the policy decides as it did before the rule
    without = issues[issues["issue_type"] != "low_agreement"]
    assert auto_decisions(without).equals(auto_decisions(without, settings=GateSettings(low_agreement="exclude")))
    kept = auto_decisions(issues).set_index("row_id")
    assert not (kept["action"] == "exclude").drop("two-of-five").any()


def test_a_low_agreement_item_alone_is_kept_for_review_under_review() -> None:
    issues = low_agreement_issues(_items(), min_agreement=0.5)
    d = auto_decisions(issues, settings=GateSettings(low_agreement="review")).set_index("row_id")
    assert set(d.index) == _low(0.5) and (d["action"] == "keep").all()
    assert d.loc["two-of-five", "label"] == "polite"  # the consensus, as given
    assert d.loc["two-of-five", "reason"] == (
        "kept for review: low annotator agreement: 2 of 5 labels agree with consensus 'polite' (min 0.5)"
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"low_agreement": "drop"}, "low_agreement must be one of keep, review, exclude, got 'drop'"),
        ({"low_agreement": None}, "low_agreement must be one of keep, review, exclude, got None"),
        ({"min_agreement": 1.5}, r"min_agreement must be in \[0, 1\], got 1.5"),
        ({"min_agreement": -0.1}, r"min_agreement must be in \[0, 1\], got -0.1"),
        ({"min_agreement": "0.5"}, r"min_agreement must be in \[0, 1\], got '0.5'"),
    ],
)
def test_settings_refuse_bad_values_and_quote_them(kwargs: dict, match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        GateSettings(**kwargs)
    with pytest.raises(ValueError, match=match):
        auto_decisions(_issues(), **kwargs)


def test_accepting_a_low_agreement_item_does_not_exclude_it() -> None:
    """The review's W key proposes the suggestion, not the exclusion a setting may turn on."""
    assert accept_action({"low_agreement": 0.33}, given="polite", suggested=None) is None
    assert accept_action({"low_agreement": 0.33, "label": 0.1}, given="polite", suggested="impolite") == (
        "relabel",
        "impolite",
        "label",
    )
