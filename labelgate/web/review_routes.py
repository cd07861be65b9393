"""The review pages and their JSON API, on top of :mod:`labelgate.services.review` and
:mod:`labelgate.services.review_page` (which assembles the review page's data and the issue list).

A router included by :func:`labelgate.web.app.create_app` (the app's token check, same-origin and JSON-body rules,
security headers and error pages apply). It reads ``db_path``, ``reviewer``, ``default_run`` and ``outcome_watch``
from ``app.state`` (:mod:`labelgate.web.context`).

Pages: ``/`` (runs; a redirect to ``/runs/<default_run>`` for the flow's embedded server), ``/runs/{run}`` (the
review page; ``run`` may be ``latest``).
API (JSON in, JSON out; ``{run}`` may be ``latest``, a run id or a unique prefix):

- ``GET  /api/runs`` — the runs, newest first
- ``GET  /api/runs/{run}/issues`` — rows to review (query: scope, issue_type, given, suggested, status, q, limit,
  novelty: new|seen|all, the page opening on ``new`` when earlier runs of the dataset saw some of its rows;
  annotator: items that annotator labelled, for runs with several annotators; each item lists every annotator's
  label in ``annotator_labels``; label_kind: mislabelled|ambiguous, the kind of a row's label issue; the items come
  in the review queue's order, likely mislabelled label issues before ambiguous ones)
- ``GET  /api/runs/{run}/progress`` — reviewed / flagged counts
- ``GET  /api/runs/{run}/decisions`` — every decision of the run (the append-only history)
- ``POST /api/runs/{run}/decisions`` — ``{"id", "action": "keep|relabel|exclude|accept", "label"}`` or
  ``{"decisions": [...]}``; optional ``"reviewer"`` and ``"note"``
- ``POST /api/runs/{run}/undo`` — undo the last decision batch
- ``POST /api/runs/{run}/finish`` — ``{"action": "finish|auto"}``: resume the paused flow run
- ``GET  /api/runs/{run}/outcome`` — status, counts and files written (a page polls it after "Finish review")
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from labelgate import store
from labelgate.services import reports, review, review_page
from labelgate.web import context, templating

router = APIRouter()


# --- pages -----------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    with context.connect(request) as con:
        runs = reports.runs_frame(con, limit=50)
    default_run = request.app.state.default_run
    if default_run != "latest":
        return RedirectResponse(f"/runs/{default_run}", status_code=303)
    rows = json.loads(runs.to_json(orient="records", date_format="iso"))
    return HTMLResponse(templating.render("runs.html", runs=rows, db_path=request.app.state.db_path))


def review_filters(
    scope: str = "flagged",
    issue_type: str | None = None,
    given: str | None = None,
    suggested: str | None = None,
    status: str | None = None,
    q: str | None = None,
    limit: int | None = None,
    novelty: str | None = None,
    annotator: str | None = None,
    label_kind: str | None = None,
) -> review.ReviewFilters:
    """The review filters of a request's query string (the review page and ``GET /api/runs/{run}/issues``): one
    :class:`labelgate.services.review.ReviewFilters`, ``q`` its ``query`` (a value that is not allowed is a 400
    from the service, a ``limit`` that is not a whole number FastAPI's 422)."""
    return review.ReviewFilters(
        scope=scope,
        issue_type=issue_type,
        given=given,
        suggested=suggested,
        status=status,
        query=q,
        limit=limit,
        novelty=novelty,
        annotator=annotator,
        label_kind=label_kind,
    )


Filters = Annotated[review.ReviewFilters, Depends(review_filters)]


@router.get("/runs/{run}", response_class=HTMLResponse)
def run_page(request: Request, run: str, filters: Filters) -> HTMLResponse:
    reviewer = request.app.state.reviewer
    with context.connect(request) as con:
        page = review_page.review_page_data(con, run, filters=filters)
    shown = page["filters"]
    data = {  # what the page's script reads (#lg-data)
        "run_id": page["run_id"],
        "classes": page["classes"],
        "reviewer": reviewer,
        "filters": shown,
        "matching": page["matching"],
        "progress": page["progress"].to_dict(),
        "db_path": request.app.state.db_path,
    }
    html = templating.render(
        "review.html",
        **page,
        class_keys=list(zip(range(1, 10), page["classes"])),
        reviewer=reviewer,
        data=data,
        filter_query=urlencode({k: v for k, v in shown.items() if v}),
    )
    return HTMLResponse(html)


# --- API -------------------------------------------------------------------------------------------


@router.get("/api/runs")
def api_runs(request: Request, limit: int | None = None) -> Response:
    with context.connect(request) as con:
        runs = reports.runs_frame(con, limit=limit)
    return Response(runs.to_json(orient="records", date_format="iso"), media_type="application/json")


@router.get("/api/runs/{run}/issues")
def api_issues(request: Request, run: str, filters: Filters) -> dict[str, Any]:
    with context.connect(request) as con:
        return review_page.issues_data(con, run, filters=filters)


@router.get("/api/runs/{run}/progress")
def api_progress(request: Request, run: str) -> dict[str, Any]:
    with context.connect(request) as con:
        run_id = store.resolve_run(con, run)
        return review.review_progress(con, run_id).to_dict()


@router.get("/api/runs/{run}/outcome")
def api_outcome(request: Request, run: str, after_sending: BackgroundTasks) -> dict[str, Any]:
    with context.connect(request) as con:
        run_id = store.resolve_run(con, run)
        watch = request.app.state.outcome_watch.setdefault(run_id, {"polled_at": 0.0, "final_served": False})
        watch["polled_at"] = time.monotonic()  # a page is watching from the moment it asks, however long the answer
        result = review.outcome(con, run_id)
    watch["polled_at"] = time.monotonic()
    if result["final"]:  # served once the response is sent: the process stops the server when it reads this
        after_sending.add_task(watch.__setitem__, "final_served", True)
    return result


@router.get("/api/runs/{run}/decisions")
def api_history(request: Request, run: str) -> Response:
    with context.connect(request) as con:
        run_id = store.resolve_run(con, run)
        df = review.decision_history(con, run_id)
    return Response(df.to_json(orient="records", date_format="iso"), media_type="application/json")


@router.post("/api/runs/{run}/decisions")
def api_decide(run: str, request: Request, payload: Any = Body(...)) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise review.ReviewError('send one decision object or {"decisions": [...]}')
    if "decisions" in payload:
        items = payload["decisions"]
        if not isinstance(items, list):
            raise review.ReviewError("'decisions' must be a list of decision objects")
    else:
        items = [payload]
    name = context.reviewer_for(request, payload)
    with context.connect(request) as con:
        run_id = store.resolve_run(con, run)
        recorded = review.record_decisions(con, run_id, items, reviewer=name, note=payload.get("note"))
        prog = review.review_progress(con, run_id).to_dict()
    return {"run_id": run_id, "recorded": recorded, "progress": prog}


@router.post("/api/runs/{run}/undo")
def api_undo(run: str, request: Request, payload: Any = Body(default=None)) -> dict[str, Any]:
    name = context.reviewer_for(request, payload)
    with context.connect(request) as con:
        run_id = store.resolve_run(con, run)
        restored = review.undo_last(con, run_id, reviewer=name)
        prog = review.review_progress(con, run_id).to_dict()
    return {"run_id": run_id, "restored": restored, "progress": prog}


@router.post("/api/runs/{run}/finish")
def api_finish(run: str, request: Request, payload: Any = Body(default=None)) -> dict[str, Any]:
    body = payload if isinstance(payload, dict) else {}
    name = context.reviewer_for(request, body)
    return review.finish_review(
        request.app.state.db_path, run, reviewer=name, action=str(body.get("action") or "finish")
    )
