"""The dashboard's charts as inline SVG, drawn on the server: pure functions, data in, SVG text out.

No script, no CDN, nothing the app's Content-Security-Policy would block: colours are SVG presentation
attributes, the rest is in ``/static/dashboard.css``. Every text taken from the data is escaped; the results are
:class:`markupsafe.Markup` (a ``str``), so a template inserts them as they are.

- :func:`rate_chart`: label-issue and quarantine rate over the runs, with the quality-gate limits
- :func:`class_chart`: class distribution (previous version / given / after the decisions)
- :func:`heatmap`: a class-by-class matrix (the estimated noise matrix; the annotator disagreement matrix)
- :func:`reason_chart`: quarantined rows per reason
- :func:`dashboard_charts`: the charts of one dashboard page from :func:`labelgate.services.dashboard.dashboard_data`
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

from labelgate.web.formatting import pct1

#: most classes the heat map and the class chart show (the most frequent ones)
MAX_CLASSES = 16

OUTCOME_COLOURS = {
    "exported": "#16a34a",
    "blocked": "#dc2626",
    "failed": "#9f1239",
    "crashed": "#6b7280",
    "running": "#4f46e5",
    "awaiting_review": "#d97706",
}
ISSUE_COLOUR = "#4f46e5"
QUARANTINE_COLOUR = "#d97706"


def _ticks(value: float) -> tuple[float, float]:
    """``(top, step)`` of a rate axis covering ``value`` with at most 6 round steps (1%, 2%, 5%, 10%, 20%, 25%)."""
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25):
        n = max(1, math.ceil(value / step - 1e-9))
        if n <= 6:
            return n * step, step
    return 1.0, 0.25


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    head = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
    )
    return Markup(head + "".join(body) + "</svg>")


def _empty(width: int, height: int, text: str) -> Markup:
    return _svg(
        width,
        height,
        [
            f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" rx="8" fill="#fafbfc" stroke="#e3e6ec"/>',
            f'<text class="empty-text" x="{width / 2}" y="{height / 2}" text-anchor="middle">{escape(text)}</text>',
        ],
        text,
    )


def rate_chart(runs: Sequence[dict[str, Any]], *, width: int = 1270, height: int = 250) -> Markup:
    """Label-issue rate (line, points coloured by outcome) and quarantine rate (dashed) over ``runs``.

    ``runs``: :func:`labelgate.services.reports.run_history` items in any order (drawn oldest first); each dataset gets
    its own lines (labelled with its name when there are several), never one line through them all. The latest
    enforced quality-gate limits are drawn as horizontal lines.
    """
    ordered = sorted(runs, key=lambda r: (r.get("started_at") or "", r["run_id"]))
    points = [r for r in ordered if r.get("label_issue_rate") is not None or r.get("quarantine_rate") is not None]
    if not points:
        return _empty(width, height, "no run reached detection yet")
    left, right, top, bottom = 48, 18, 18, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    limits: dict[str, float] = {}
    for r in reversed(ordered):
        q = r.get("quality") or {}
        if q.get("enforced"):
            limits = {c["name"]: c["limit"] for c in q.get("checks") or [] if c.get("limit") is not None}
            break
    values = [float(r.get(k) or 0.0) for r in points for k in ("label_issue_rate", "quarantine_rate")]
    values += [limits.get("label_issue_rate", 0.0), limits.get("quarantine_rate", 0.0)]
    ymax, ystep = _ticks(max([*values, 0.02]) * 1.08)
    n = len(points)

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else i * plot_w / (n - 1))

    def y(v: float) -> float:
        return top + plot_h - plot_h * min(v, ymax) / ymax

    body = []
    for k in range(round(ymax / ystep) + 1):
        v = ystep * k
        body.append(f'<line class="gridline" x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>')
        body.append(f'<text class="axis" x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{100 * v:.0f}%</text>')
    for name, colour, text in (
        ("label_issue_rate", ISSUE_COLOUR, "issue limit"),
        ("quarantine_rate", QUARANTINE_COLOUR, "quarantine limit"),
    ):
        if name in limits:
            yy = y(limits[name])
            body.append(
                f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="{colour}" '
                f'stroke-width="1.2" stroke-dasharray="2 4" opacity="0.9"/>'
            )
            body.append(
                f'<text class="limit" x="{width - right - 4}" y="{yy - 5:.1f}" text-anchor="end" fill="{colour}">'
                f"{text} {100 * limits[name]:.0f}%</text>"
            )
    # one line per dataset: the runs of different datasets are not one series (issue 15, item 12)
    datasets = list(dict.fromkeys(str(r.get("dataset") or "") for r in points))
    for key, colour, dash in (("quarantine_rate", QUARANTINE_COLOUR, "5 4"), ("label_issue_rate", ISSUE_COLOUR, "")):
        for ds in datasets:
            coords = [
                (x(i), y(float(r[key])))
                for i, r in enumerate(points)
                if r.get(key) is not None and str(r.get("dataset") or "") == ds
            ]
            if len(coords) > 1:
                path = " ".join(f"{'M' if j == 0 else 'L'}{cx:.1f},{cy:.1f}" for j, (cx, cy) in enumerate(coords))
                extra = f' stroke-dasharray="{dash}"' if dash else ""
                body.append(
                    f'<path class="trend" data-dataset="{escape(ds)}" data-series="{key}" d="{path}" fill="none" '
                    f'stroke="{colour}" stroke-width="2.2"{extra}/>'
                )
            if len(datasets) > 1 and key == "label_issue_rate" and coords:
                cx, cy = coords[-1]
                body.append(f'<text class="legend" x="{cx + 8:.1f}" y="{cy - 8:.1f}">{escape(ds)}</text>')
    step = max(1, math.ceil(n / max(1, plot_w // 84)))
    for i, r in enumerate(points):
        when = (r.get("started_at") or "")[5:16].replace("T", " ")
        if r.get("quarantine_rate") is not None:
            body.append(
                f'<circle cx="{x(i):.1f}" cy="{y(float(r["quarantine_rate"])):.1f}" r="3" fill="#fff" '
                f'stroke="{QUARANTINE_COLOUR}" stroke-width="1.6"><title>{escape(r["run_id"])}: quarantined '
                f"{pct1(r['quarantine_rate'])}</title></circle>"
            )
        if r.get("label_issue_rate") is not None:
            colour = OUTCOME_COLOURS.get(r["outcome"], "#6b7280")
            tip = f"{r['run_id']} ({r['outcome']}): label issues {pct1(r['label_issue_rate'])}"
            body.append(
                f'<circle class="pt pt-{escape(r["outcome"])}" cx="{x(i):.1f}" '
                f'cy="{y(float(r["label_issue_rate"])):.1f}" '
                f'r="5" fill="{colour}" stroke="#fff" stroke-width="1.5"><title>{escape(tip)}</title></circle>'
            )
        if i % step == 0 or i == n - 1:
            anchor = "middle" if n == 1 else "start" if i == 0 else "end" if i == n - 1 else "middle"
            body.append(
                f'<text class="axis" x="{x(i):.1f}" y="{height - bottom + 18}" text-anchor="{anchor}">'
                f"{escape(when)}</text>"
            )
    legend = [
        (ISSUE_COLOUR, "label-issue rate", ""),
        (QUARANTINE_COLOUR, "quarantine rate", "5 4"),
    ]
    lx = left
    for colour, text, dash in legend:
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        body.append(
            f'<line x1="{lx}" x2="{lx + 22}" y1="{height - 10}" y2="{height - 10}" stroke="{colour}" '
            f'stroke-width="2.2"{extra}/>'
        )
        body.append(f'<text class="legend" x="{lx + 28}" y="{height - 6}">{escape(text)}</text>')
        lx += 150
    for outcome in ("exported", "blocked"):
        body.append(f'<circle cx="{lx + 5}" cy="{height - 10}" r="5" fill="{OUTCOME_COLOURS[outcome]}"/>')
        body.append(f'<text class="legend" x="{lx + 15}" y="{height - 6}">{outcome}</text>')
        lx += 90
    return _svg(width, height, body, "label-issue and quarantine rate over runs")


def class_chart(distribution: dict[str, dict[str, int]], *, width: int = 380, has_decisions: bool = True) -> Markup:
    """Grouped horizontal bars per class: previous version, given labels (before), after the decisions."""
    if not distribution:
        return _empty(width, 180, "no valid rows")
    labels = sorted(distribution, key=lambda c: -distribution[c]["before"])[:MAX_CLASSES]
    series = [("previous", "#cbd5e1", "previous version"), ("before", "#6366f1", "given labels")]
    if has_decisions:
        series.append(("after", "#16a34a", "after decisions"))
    if not any(distribution[c]["previous"] for c in labels):
        series = series[1:]
    bar, gap = 9, 14
    group = bar * len(series) + gap
    left, right, top = 104, 44, 30
    height = top + group * len(labels) + 6
    vmax = max(max(distribution[c][s] for s, _, _ in series) for c in labels) or 1
    plot_w = width - left - right
    body = []
    lx = 8
    for _, colour, text in series:
        body.append(f'<rect x="{lx}" y="6" width="10" height="10" rx="2" fill="{colour}"/>')
        body.append(f'<text class="legend" x="{lx + 14}" y="15">{escape(text)}</text>')
        lx += 14 + round(6.3 * len(text)) + 14
    for i, c in enumerate(labels):
        y0 = top + i * group
        short = c if len(c) <= 15 else c[:14] + "…"
        body.append(
            f'<text class="cat" x="{left - 8}" y="{y0 + bar * len(series) / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{escape(c)}</title>{escape(short)}</text>"
        )
        for j, (key, colour, text) in enumerate(series):
            v = distribution[c][key]
            w = plot_w * v / vmax
            yy = y0 + j * bar
            body.append(
                f'<rect x="{left}" y="{yy}" width="{max(w, 1):.1f}" height="{bar - 1}" rx="2" fill="{colour}">'
                f"<title>{escape(c)}: {v} rows ({escape(text)})</title></rect>"
            )
            body.append(f'<text class="val" x="{left + w + 4:.1f}" y="{yy + bar - 2}">{v}</text>')
    return _svg(width, height, body, "class distribution")


def _blend(share: float, colour: tuple[int, int, int]) -> str:
    t = max(0.0, min(1.0, share))
    r, g, b = (round(255 + (c - 255) * t) for c in colour)
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(
    classes: Sequence[str],
    matrix: Sequence[Sequence[float]],
    *,
    width: int = 380,
    rows_title: str = "given label",
    columns_title: str = "true label (estimated)",
    noun: str = "estimated label noise",
    label: str = "estimated noise matrix",
    empty: str = "no detection for this run",
) -> Markup:
    """A class-by-class matrix: by default the estimated noise matrix (rows the given label, columns the
    estimated true label; the annotator panel passes its own titles: an annotator's label by the consensus).

    Cells hold (estimated) row counts; their colour is the share of the row label's rows (diagonal in blue,
    off-diagonal, i.e. disagreement, in red; a 25% share is full red). ``noun`` names the off-diagonal total
    in the legend.
    """
    if not classes:
        return _empty(width, 200, empty)
    k = len(classes)
    order = list(range(k))
    if k > MAX_CLASSES:
        order = sorted(order, key=lambda i: -sum(matrix[i]))[:MAX_CLASSES]
    names = [classes[i] for i in order]
    k = len(order)
    left, top = 104, 88
    cell = max(18, min(58, (width - left - 10) // k))
    height = top + cell * k + 30
    body = [
        f'<text class="axis-title" x="{left + cell * k / 2:.1f}" y="14" text-anchor="middle">'
        f"{escape(columns_title)}</text>",
        f'<text class="axis-title" x="14" y="{top + cell * k / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + cell * k / 2:.1f})">{escape(rows_title)}</text>',
    ]
    for j, name in enumerate(names):
        cx = left + j * cell + cell / 2
        short = name if len(name) <= 12 else name[:11] + "…"
        body.append(
            f'<text class="cat" x="{cx:.1f}" y="{top - 8}" text-anchor="start" '
            f'transform="rotate(-40 {cx:.1f} {top - 8})">'
            f"<title>{escape(name)}</title>{escape(short)}</text>"
        )
    for a, i in enumerate(order):
        row = [float(v) for v in matrix[i]]
        total = sum(row) or 1.0
        name = classes[i]
        short = name if len(name) <= 15 else name[:14] + "…"
        body.append(
            f'<text class="cat" x="{left - 8}" y="{top + a * cell + cell / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{escape(name)}</title>{escape(short)}</text>"
        )
        for b, j in enumerate(order):
            v = row[j]
            share = v / total
            fill = _blend(share, (79, 70, 229)) if i == j else _blend(min(1.0, share / 0.25), (220, 38, 38))
            dark = (share > 0.55) if i == j else (share / 0.25 > 0.55)
            tip = f"{rows_title} {name}, {columns_title} {classes[j]}: ≈{v:.1f} rows ({100 * share:.1f}% of {name})"
            x0, y0 = left + b * cell, top + a * cell
            body.append(
                f'<rect class="cell" x="{x0}" y="{y0}" width="{cell - 2}" height="{cell - 2}" rx="3" fill="{fill}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            if cell >= 26:
                body.append(
                    f'<text class="cellval{" on-dark" if dark else ""}" x="{x0 + (cell - 2) / 2:.1f}" '
                    f'y="{y0 + (cell - 2) / 2 + 4:.1f}" text-anchor="middle">{v:.0f}</text>'
                )
    noise = sum(float(matrix[i][j]) for i in range(len(classes)) for j in range(len(classes)) if i != j)
    rows = sum(float(v) for r in matrix for v in r) or 1.0
    body.append(
        f'<text class="legend" x="{left}" y="{height - 8}">{escape(noun)}: ≈{noise:.0f} of {rows:.0f} rows '
        f"({100 * noise / rows:.1f}%)</text>"
    )
    return _svg(width, height, body, label)


def reason_chart(reasons: dict[str, int], *, width: int = 380) -> Markup:
    """Horizontal bars: quarantined rows per reason (the 8 most frequent)."""
    if not reasons:
        return _empty(width, 120, "nothing quarantined")
    items = list(reasons.items())[:8]
    left, right, top, bar = 150, 36, 6, 24
    height = top + bar * len(items) + 4
    vmax = max(v for _, v in items) or 1
    body = []
    for i, (reason, v) in enumerate(items):
        y0 = top + i * bar
        w = (width - left - right) * v / vmax
        short = reason if len(reason) <= 26 else reason[:25] + "…"
        body.append(
            f'<text class="cat" x="{left - 8}" y="{y0 + 14}" text-anchor="end"><title>{escape(reason)}</title>'
            f"{escape(short)}</text>"
        )
        body.append(
            f'<rect x="{left}" y="{y0 + 3}" width="{max(w, 1):.1f}" height="{bar - 8}" rx="3" '
            f'fill="{QUARANTINE_COLOUR}">'
            f"<title>{escape(reason)}: {v} rows</title></rect>"
        )
        body.append(f'<text class="val" x="{left + w + 5:.1f}" y="{y0 + 14}">{v}</text>')
    return _svg(width, height, body, "quarantine reasons")


def dashboard_charts(runs: Sequence[dict[str, Any]], selected: dict[str, Any] | None) -> dict[str, Markup]:
    """The charts of one dashboard page: ``rates`` over ``runs``; with a ``selected`` run (both as in
    :func:`labelgate.services.dashboard.dashboard_data`) also ``classes``, ``noise``, ``reasons`` and, for a run
    with several annotators, ``annotators`` (the annotator disagreement matrix)."""
    charts: dict[str, Markup] = {"rates": rate_chart(runs)}
    if selected:
        charts["classes"] = class_chart(selected["class_distribution"], has_decisions=selected["has_decisions"])
        charts["noise"] = heatmap(selected["noise_matrix"]["classes"], selected["noise_matrix"]["matrix"])
        charts["reasons"] = reason_chart(selected["quarantine_reasons"])
        if selected["annotators"]:
            panel = selected["annotators"]
            charts["annotators"] = heatmap(
                panel["classes"],
                panel["matrix"],
                rows_title="annotator's label",
                columns_title="consensus label",
                noun="labels that differ from the consensus",
                label="annotator disagreement matrix",
            )
    return charts
