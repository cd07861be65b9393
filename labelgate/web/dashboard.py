"""The monitoring dashboard's routes: ``GET /dashboard`` (page) and ``GET /api/dashboard`` (the same figures as JSON).

A router included by :func:`labelgate.web.app.create_app`, so the app's token check, security headers and
error pages apply. It reads the app's database (``request.app.state.db_path``) through
:func:`labelgate.services.dashboard.dashboard_data` and draws every chart on the server as inline SVG
(:mod:`labelgate.web.charts`): no script, no CDN, nothing the app's Content-Security-Policy would block.

Query parameters: ``dataset`` (default: every dataset), ``run`` (the run whose class distribution, noise
matrix and quarantine reasons are shown; default the newest run shown), ``limit`` (runs, default 50).

Charts: label-issue and quarantine rate over the runs (with the quality-gate limits), class distribution
(previous version / given / after the decisions), the estimated noise matrix (given x true label) as a
heat map, quarantine reasons. Below them the run history: rows, quarantined, issues, decisions, exported,
duration, outcome, and a link to the Prefect flow run when the Prefect UI is known (``PREFECT_UI_URL`` or
``PREFECT_API_URL``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from labelgate.errors import RunNotFoundError
from labelgate.services import dashboard
from labelgate.web import charts, context, templating

router = APIRouter()


def link(*, dataset: str | None, run: str | None, **params: str | None) -> str:
    """The dashboard URL for ``dataset``, ``run`` and any other query ``params`` (empty or None: left out).

    The page passes it to its template with its own filters bound (``functools.partial``), so
    ``link(run="r1")`` keeps the page's dataset and selects run r1."""
    merged = {"dataset": dataset or None, "run": run or None, **params}
    query = urlencode({k: v for k, v in merged.items() if v})
    return "/dashboard" + (f"?{query}" if query else "")


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard_page(
    request: Request, dataset: str = "", run: str = "", limit: int = dashboard.DEFAULT_LIMIT
) -> HTMLResponse:
    db_path = request.app.state.db_path
    if not Path(db_path).exists():
        raise RunNotFoundError(f"database {db_path!r} does not exist yet; start a run first")
    data = dashboard.dashboard_data(
        db_path, dataset=dataset or None, run=run or None, limit=limit, wait_s=context.DB_WAIT_S
    )
    page = templating.render(
        "dashboard.html",
        data=data,
        runs=data["runs"],
        selected=data["selected"],
        charts=charts.dashboard_charts(data["runs"], data["selected"]),
        latest=data["runs"][0] if data["runs"] else None,
        link=functools.partial(link, dataset=dataset, run=run),
        db_path=db_path,
        colours=charts.OUTCOME_COLOURS,
    )
    return HTMLResponse(page)


@router.get("/api/dashboard")
def dashboard_api(
    request: Request, dataset: str = "", run: str = "", limit: int = dashboard.DEFAULT_LIMIT
) -> dict[str, Any]:
    return dashboard.dashboard_data(
        request.app.state.db_path, dataset=dataset or None, run=run or None, limit=limit, wait_s=context.DB_WAIT_S
    )
