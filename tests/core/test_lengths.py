"""Empty, too-short and too-long texts."""

from __future__ import annotations

import pytest

from labelgate.core.lengths import length_issues, word_count

pytestmark = pytest.mark.unit


def test_empty_short_and_long():
    out = length_issues(
        ["a", "b", "c", "d"],
        ["?!", "thanks", "a normal text", "x " * 30],
        min_words=2,
        max_tokens=10,
        token_counts=[2, 1, 3, 30],
        counter_name="regex",
    ).set_index(["row_id", "issue_type"])
    assert out.loc[("a", "empty"), "score"] == 0.0 and out.loc[("a", "empty"), "reason"].startswith("empty")
    assert out.loc[("b", "empty"), "score"] == 0.5 and "too short: 1 word" in out.loc[("b", "empty"), "reason"]
    assert out.loc[("d", "too_long"), "reason"] == "too long: 30 tokens > budget 10 (regex)"
    assert ("c", "empty") not in out.index and len(out) == 3
    assert word_count("héllo wörld 42") == 3


def test_token_counts_required_with_a_budget():
    with pytest.raises(ValueError, match="one token count per text"):
        length_issues(["a"], ["x"], max_tokens=5)
    assert length_issues(["a"], ["two words"], max_tokens=None).empty
