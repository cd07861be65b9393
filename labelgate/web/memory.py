"""The curation memory on the web: a row's history across runs, revoking or changing a remembered decision.

A router included by :func:`labelgate.web.app.create_app` (the app's token check, same-origin and JSON-body
rules, security headers and error pages apply). Built on :mod:`labelgate.services.memory`.

- ``GET  /runs/{run}/rows/{row_id}/history`` — the page: every decision on the row's content in every run of
  the dataset, the memory log, and a "Revoke" button (``/static/memory.js``, no inline script)
- ``GET  /api/runs/{run}/rows/{row_id}/history`` — the same as JSON
- ``POST /api/runs/{run}/rows/{row_id}/memory`` — ``{"action": "revoke"}`` revokes the remembered decision;
  ``{"action": "keep|relabel|exclude|accept", "label"}`` changes it (a new decision on the row in the run);
  optional ``"reviewer"`` and ``"reason"``
- ``GET  /api/memory?dataset=NAME`` — the current remembered decisions, newest first
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import HTMLResponse

from labelgate import store
from labelgate.services import memory, review
from labelgate.web import context, templating

router = APIRouter()


@router.get("/runs/{run}/rows/{row_id}/history", response_class=HTMLResponse)
def history_page(request: Request, run: str, row_id: str) -> HTMLResponse:
    with context.connect(request) as con:
        run_id = store.resolve_run(con, run)
        found = memory.history(con, run_id, row_id)
    page = templating.render("history.html", h=found, reviewer=request.app.state.reviewer)
    return HTMLResponse(page)


@router.get("/api/runs/{run}/rows/{row_id}/history")
def history_api(request: Request, run: str, row_id: str) -> dict[str, Any]:
    with context.connect(request) as con:
        run_id = store.resolve_run(con, run)
        return memory.history(con, run_id, row_id)


@router.post("/api/runs/{run}/rows/{row_id}/memory")
def memory_api(request: Request, run: str, row_id: str, payload: Any = Body(...)) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise review.ReviewError('send {"action": "revoke"} or {"action": "keep|relabel|exclude", "label": ...}')
    action = str(payload.get("action") or "").strip().lower()
    name = context.reviewer_for(request, payload)
    reason = payload.get("reason", payload.get("note"))
    with context.connect(request) as con:
        run_id = store.resolve_run(con, run)
        if action == "revoke":
            return memory.revoke(con, run_id, row_id, reviewer=name, reason=reason)
        return memory.change(
            con, run_id, row_id, action=action, label=payload.get("label"), reviewer=name, reason=reason
        )


@router.get("/api/memory")
def remembered_api(request: Request, dataset: str = "") -> list[dict[str, Any]]:
    with context.connect(request) as con:
        return memory.remembered(con, dataset or None)
