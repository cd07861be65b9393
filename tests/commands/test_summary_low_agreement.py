"""The run summary's low-agreement line (several annotators): the count, and what the gate did with the items."""

from __future__ import annotations

import pytest

from labelgate.commands.summary import _low_agreement_line
from labelgate.config import CurateParams
from labelgate.core.metrics import AnnotatorMetrics, RunMetrics

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("gate", "setting", "fate"),
    [
        ("auto", "keep", "kept (--low-agreement keep)"),
        ("auto", "review", "flagged, kept by the auto gate"),
        ("auto", "exclude", "flagged, excluded by the auto gate"),
        ("human", "review", "flagged for the review"),
        ("human", "exclude", "(a review finished with auto excludes those nobody decided)"),
        ("none", "exclude", "kept (--low-agreement exclude, --gate none)"),
    ],
)
def test_the_line_counts_the_items_and_says_what_the_gate_did(gate: str, setting: str, fate: str) -> None:
    m = RunMetrics(gate=gate, consensus=AnnotatorMetrics(low_agreement_items=8))
    line = _low_agreement_line(m, CurateParams(low_agreement=setting, min_agreement=0.6, annotator_col="who"))
    assert line is not None and line.split()[:3] == ["low", "agreement", "8"]
    assert "under 0.6 of their labels" in line and line.endswith(fate)


def test_no_line_without_annotators_or_without_low_agreement_items_to_keep() -> None:
    assert _low_agreement_line(RunMetrics(gate="auto"), CurateParams()) is None  # one label per row
    none = RunMetrics(gate="auto", consensus=AnnotatorMetrics(low_agreement_items=0))
    assert _low_agreement_line(none, CurateParams(annotator_col="who")) is None
    assert _low_agreement_line(none, CurateParams(annotator_col="who", low_agreement="exclude")) is not None
