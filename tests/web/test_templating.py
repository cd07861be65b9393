"""The one Jinja2 environment of the pages and its filters (labelgate.web.templating, labelgate.web.formatting)."""

from __future__ import annotations

import math

import pytest

from labelgate.web import formatting, templating

pytestmark = pytest.mark.unit


def test_one_environment_with_one_function_per_filter() -> None:
    env = templating.environment()
    assert templating.environment() is env
    for name, fn in templating.FILTERS.items():
        assert env.filters[name] is fn
    assert env.autoescape is True


@pytest.mark.parametrize(
    ("value", "review", "dashboard"),
    [(0.873, "87%", "87.3%"), (0.0, "0%", "0.0%"), (1, "100%", "100.0%"), (None, "", "–"), (math.nan, "", "–")],
)
def test_the_two_percent_filters_differ_in_decimals_and_in_how_they_show_a_missing_value(
    value: float | None, review: str, dashboard: str
) -> None:
    assert formatting.pct(value) == review
    assert formatting.pct1(value) == dashboard


def test_number_filters() -> None:
    assert formatting.num(0.12345) == "0.12" and formatting.num(3.14159, 3) == "3.142" and formatting.num(None) == ""
    assert formatting.score(0.61) == "0.610" and formatting.score(math.nan) == "–"
    assert formatting.signed(0.02) == "+0.020" and formatting.signed(-0.5) == "-0.500"
    assert formatting.signed(None) == "–"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "–"), (4.24, "4.2 s"), (42.4, "42 s"), (185, "3 min 05 s"), (3720, "1 h 02 min")],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert formatting.duration(seconds) == text


def test_quality_check_figures_and_names() -> None:
    assert formatting.check_value(0.0525, "quarantine_rate") == "5.2%"
    assert formatting.check_value(0.01234, "label_shift_kl") == "0.012"
    assert formatting.check_value(0.000123456, "label_shift_pvalue") == "0.000123"
    assert formatting.check_value(None, "label_issue_rate") == "–"
    assert formatting.check_name("label_shift_kl") == "label shift (KL)"
    assert formatting.check_name("some_new_check") == "some new check"


def test_a_template_uses_the_filters_and_escapes() -> None:
    env = templating.environment()
    text = env.from_string("{{ a | pct }} {{ a | pct1 }} {{ b }}").render(a=0.5, b="<b>")
    assert text == "50% 50.0% &lt;b&gt;"
