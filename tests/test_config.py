"""CurateParams: defaults, bounds, and messages that quote the bad value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from labelgate.config import CurateParams


def test_defaults_are_usable() -> None:
    p = CurateParams()
    assert (p.gate, p.n_folds, p.export_formats) == ("auto", 5, ["openai-chat"])


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("relabel_threshold", 1.5, "less than or equal to 1"),
        ("n_folds", 1, "greater than or equal to 2"),
        ("gate", "maybe", "auto"),
        ("delimiter", ";;", "one character, got ';;'"),
        ("no_such_option", 1, "Extra inputs"),
    ],
)
def test_bad_values_are_refused(field: str, value: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        CurateParams(**{field: value})


def test_min_above_max_text_chars_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"min_text_chars \(50\) is greater than max_text_chars \(10\)"):
        CurateParams(min_text_chars=50, max_text_chars=10)
