"""The dashboard's SVG charts (labelgate.web.charts): pure functions, data in, SVG text out."""

from __future__ import annotations

import re
from typing import Any

import pytest
from markupsafe import Markup

from labelgate.web import charts

pytestmark = pytest.mark.unit


def _run(i: int, *, dataset: str = "a", rate: float | None = 0.1, quarantine: float | None = 0.01, **kw: Any) -> dict:
    return {
        "run_id": f"r{i}",
        "dataset": dataset,
        "started_at": f"2026-01-0{i + 1}T00:00:00",
        "outcome": "exported",
        "label_issue_rate": rate,
        "quarantine_rate": quarantine,
        "quality": None,
        **kw,
    }


def test_empty_data_draws_a_message_and_every_text_is_escaped() -> None:
    assert "no run reached detection yet" in charts.rate_chart([])
    assert "no run reached detection yet" in charts.rate_chart([_run(0, rate=None, quarantine=None)])
    assert "no detection for this run" in charts.heatmap([], [])
    assert "nothing quarantined" in charts.reason_chart({})
    assert "no valid rows" in charts.class_chart({})
    hostile = "<script>alert(1)</script>"
    for svg in (
        charts.reason_chart({hostile: 3}),
        charts.class_chart({hostile: {"previous": 0, "before": 3, "after": 2}}),
        charts.heatmap([hostile, "b"], [[3, 1], [0, 4]]),
        charts.rate_chart([_run(0, dataset=hostile), _run(1, dataset="b")]),
    ):
        assert isinstance(svg, Markup) and svg.startswith("<svg ") and svg.endswith("</svg>")
        assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_the_trend_draws_one_line_per_dataset() -> None:
    runs = [_run(i, dataset=ds, rate=rate) for i, (ds, rate) in enumerate([("a", 0.1), ("b", 0.4), ("a", 0.12)])]
    runs += [_run(3, dataset="b", rate=0.38), _run(4, dataset="a", rate=0.11)]
    svg = str(charts.rate_chart(runs))
    issue_paths = re.findall(r'<path class="trend" data-dataset="(\w)" data-series="label_issue_rate" d="([^"]+)"', svg)
    assert sorted(ds for ds, _ in issue_paths) == ["a", "b"]
    points = {ds: d.count("L") + 1 for ds, d in issue_paths}
    assert points == {"a": 3, "b": 2}  # never one line zig-zagging between the datasets


def test_the_rate_chart_draws_the_latest_enforced_limits_and_one_decimal_tooltips() -> None:
    quality = {"enforced": True, "checks": [{"name": "label_issue_rate", "limit": 0.2}, {"name": "x", "limit": None}]}
    runs = [_run(0, rate=0.0525), _run(1, rate=0.15, quality=quality)]
    svg = str(charts.rate_chart(runs))
    assert "issue limit 20%" in svg and "quarantine limit" not in svg
    assert "r0 (exported): label issues 5.2%" in svg  # formatting.pct1, as the dashboard's tables
    assert svg.count('class="pt pt-exported"') == 2
    assert "label issues" in str(charts.rate_chart([_run(0, rate=0.1, quality={**quality, "enforced": False})]))
    assert "issue limit" not in str(charts.rate_chart([_run(0, rate=0.1, quality={**quality, "enforced": False})]))


def test_the_class_chart_shows_the_previous_version_only_when_it_has_rows() -> None:
    dist = {"billing": {"previous": 0, "before": 8, "after": 7}, "shipping": {"previous": 0, "before": 3, "after": 4}}
    svg = str(charts.class_chart(dist))
    assert "previous version" not in svg and "given labels" in svg and "after decisions" in svg
    assert svg.index("billing") < svg.index("shipping")  # most frequent first
    assert "after decisions" not in str(charts.class_chart(dist, has_decisions=False))
    dist["billing"]["previous"] = 5
    assert "previous version" in str(charts.class_chart(dist))


def test_the_heatmap_colours_agreement_blue_and_disagreement_red_and_totals_the_noise() -> None:
    svg = str(charts.heatmap(["a", "b"], [[6, 2], [0, 4]]))
    cells = re.findall(r'<rect class="cell"[^>]* fill="(#[0-9a-f]{6})"><title>([^<]*)</title>', svg)
    assert len(cells) == 4
    by_title = {t.split(":")[0]: fill for fill, t in cells}
    assert by_title["given label a, true label (estimated) a"] == "#7b74ec"  # 75% of the row: three quarters blue
    assert by_title["given label a, true label (estimated) b"] == "#dc2626"  # a 25% share is full red
    assert by_title["given label b, true label (estimated) a"] == "#ffffff"
    assert "estimated label noise: ≈2 of 12 rows (16.7%)" in svg


def test_the_heatmap_keeps_the_most_frequent_classes() -> None:
    k = charts.MAX_CLASSES + 2
    names = [f"c{i}" for i in range(k)]
    matrix = [[float(i == j) * (i + 1) for j in range(k)] for i in range(k)]
    svg = str(charts.heatmap(names, matrix))
    assert svg.count('class="cell"') == charts.MAX_CLASSES**2
    assert "<title>c0</title>" not in svg and "<title>c17</title>" in svg


def test_the_reason_chart_shows_the_eight_first_reasons_shortened() -> None:
    reasons = {f"reason number {i} with a long explanation": 10 - i for i in range(10)}
    svg = str(charts.reason_chart(reasons))
    assert svg.count("<rect ") == 8
    assert "reason number 0 with a lo…" in svg and "reason number 8" not in svg


def test_dashboard_charts_draws_the_selected_runs_charts_and_the_annotator_panel_when_there_is_one() -> None:
    assert list(charts.dashboard_charts([_run(0)], None)) == ["rates"]
    selected = {
        "class_distribution": {"a": {"previous": 0, "before": 2, "after": 2}},
        "has_decisions": False,
        "noise_matrix": {"classes": ["a"], "matrix": [[2.0]]},
        "quarantine_reasons": {"empty text": 1},
        "annotators": None,
    }
    assert list(charts.dashboard_charts([_run(0)], selected)) == ["rates", "classes", "noise", "reasons"]
    selected["annotators"] = {"classes": ["a", "b"], "matrix": [[3, 1], [0, 2]]}
    drawn = charts.dashboard_charts([_run(0)], selected)
    assert "annotator disagreement matrix" in drawn["annotators"]
    assert "labels that differ from the consensus: ≈1 of 6 rows" in drawn["annotators"]
