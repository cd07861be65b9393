"""How the pages write figures: the Jinja filters of :mod:`labelgate.web.templating` (one function per filter name)
and the tooltips of :mod:`labelgate.web.charts`. Values in, text out; a missing value is ``None`` or NaN.

Two percent formats, on purpose: the review page writes probabilities as whole percents and leaves a missing one
blank (:func:`pct`); the dashboard writes rates to one decimal and shows a missing one as a dash (:func:`pct1`).
"""

from __future__ import annotations

import math
from typing import Any

#: how the quality checks (labelgate.core.quality.CHECKS) are named on the page
CHECK_LABELS = {
    "quarantine_rate": "quarantine rate",
    "label_issue_rate": "label-issue rate",
    "label_shift_kl": "label shift (KL)",
    "label_shift_pvalue": "label shift (χ² p)",
}
#: what the dashboard shows for a missing figure
DASH = "–"


def missing(value: Any) -> bool:
    """True for ``None`` and a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def pct(value: Any) -> str:
    """A share in [0, 1] as a whole percent (``0.873`` -> ``"87%"``); ``""`` when missing (review page)."""
    return "" if missing(value) else f"{100 * value:.0f}%"


def pct1(value: Any) -> str:
    """A share in [0, 1] as a percent with one decimal (``0.0873`` -> ``"8.7%"``); ``"–"`` when missing
    (dashboard)."""
    return DASH if missing(value) else f"{100 * float(value):.1f}%"


def num(value: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals (default 2); ``""`` when missing."""
    return "" if missing(value) else f"{value:.{digits}f}"


def score(value: Any) -> str:
    """A score with 3 decimals (``0.61`` -> ``"0.610"``); ``"–"`` when missing."""
    return DASH if missing(value) else f"{float(value):.3f}"


def signed(value: Any) -> str:
    """A difference with its sign and 3 decimals (``0.02`` -> ``"+0.020"``); ``"–"`` when missing."""
    return DASH if missing(value) else f"{float(value):+.3f}"


def check_value(value: Any, name: str) -> str:
    """A quality-check figure as shown: rates (``*_rate``) as :func:`pct1`, KL in nats with 3 decimals, p-values
    in 3 significant digits; ``"–"`` when ``None``."""
    if value is None:
        return DASH
    if name.endswith("_rate"):
        return pct1(value)
    if name == "label_shift_kl":
        return f"{float(value):.3f}"
    return f"{float(value):.3g}"


def check_name(name: str) -> str:
    """A quality check's name on the page (:data:`CHECK_LABELS`, else the name with spaces for underscores)."""
    return CHECK_LABELS.get(name, name.replace("_", " "))


def duration(seconds: Any) -> str:
    """Seconds as ``"4.2 s"`` (under 10 s), ``"42 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``; ``"–"`` when
    ``None``."""
    if seconds is None:
        return DASH
    s = float(seconds)
    if s < 60:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    minutes, sec = divmod(round(s), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
