"""The run's summary artifact shows the before/after evaluation of every trainer (and old one-trainer runs)."""

from __future__ import annotations

import pytest

from labelgate.core.evaluate import Comparison, ProxyScore
from labelgate.core.metrics import RunMetrics
from labelgate.tasks.artifacts import summary_markdown

pytestmark = pytest.mark.flow


def _comparison(trainer: str, raw: float, cleaned: float, seconds: float | None) -> Comparison:
    def score(variant: str, acc: float) -> ProxyScore:
        return ProxyScore(variant, 100, acc, acc - 0.1, {"a": acc, "b": acc - 0.2}, seconds)

    return Comparison(score("raw", raw), score("cleaned", cleaned), 50, f"{trainer} model", trainer)


def test_every_trainer_has_a_row_in_the_summary() -> None:
    ev = {
        "test_path": "/data/test.csv",
        "n_test": 50,
        "trainers": {
            "proxy": _comparison("proxy", 0.9, 0.905, 1.5).as_dict(),
            "finetune": _comparison("finetune", 0.8, 0.86, 61.0).as_dict(),
        },
    }
    md = summary_markdown(RunMetrics.from_json({"run_id": "r1", "evaluation": ev})).splitlines()
    head = md.index("| trainer | accuracy raw → cleaned | macro-F1 raw → cleaned | seconds |")
    assert md[head - 2].startswith("**Before/after evaluation** on 50 rows of `/data/test.csv`")
    assert md[head + 2] == "| proxy | 0.900 → 0.905 (+0.005) | 0.800 → 0.805 (+0.005) | 3.0 |"
    assert md[head + 3] == "| finetune | 0.800 → 0.860 (+0.060) | 0.700 → 0.760 (+0.060) | 122.0 |"


def test_a_run_evaluated_before_trainers_existed_still_shows_its_proxy() -> None:
    old = _comparison("proxy", 0.5, 0.6, None).as_dict()
    old = {k: v for k, v in old.items() if k not in ("trainer", "details")}
    md = summary_markdown(RunMetrics.from_json({"run_id": "r0", "evaluation": {"test_path": "t.csv", **old}}))
    assert "| proxy | 0.500 → 0.600 (+0.100) | 0.400 → 0.500 (+0.100) | – |" in md
    assert "Before/after evaluation" not in summary_markdown(RunMetrics(run_id="r2"))


def test_a_blocked_run_says_why_and_shows_its_figures() -> None:
    stored = {"run_id": "r3", "rows_in": 10, "rows_valid": 4, "rows_quarantined": 6, "quarantine_reasons": {"x": 6}}
    md = summary_markdown(RunMetrics.from_json(stored), blocked="quality gate failed: too many")
    assert "**Blocked by the quality gate, nothing exported.** quality gate failed: too many" in md
    assert "| rows in | 10 |" in md and "| quarantined | 6 |" in md and "- x: 6" in md
    assert "Blocked" not in summary_markdown(RunMetrics.from_json(stored))
