"""The review web app: server-rendered pages plus a small JSON API, on top of :mod:`labelgate.services.review`.

Pages: ``/`` (runs), ``/runs/{run}`` (the review page; ``run`` may be ``latest``), ``/login``.
API (JSON in, JSON out; ``{run}`` may be ``latest``, a run id or a unique prefix):

- ``GET  /api/runs`` — the runs, newest first
- ``GET  /api/runs/{run}/issues`` — rows to review (query: scope, issue_type, given, suggested, status, q, limit,
  novelty: new|seen|all, the page opening on ``new`` when earlier runs of the dataset saw some of its rows;
  annotator: items that annotator labelled, for runs with several annotators; each item lists every annotator's
  label in ``annotator_labels``)
- ``/runs/{run}/rows/{row_id}/history``, ``/api/runs/{run}/rows/{row_id}/history``,
  ``POST /api/runs/{run}/rows/{row_id}/memory``, ``/api/memory`` — the curation memory (:mod:`labelgate.web.memory`)
- ``GET  /api/runs/{run}/progress`` — reviewed / flagged counts
- ``GET  /api/runs/{run}/decisions`` — every decision of the run (the append-only history)
- ``POST /api/runs/{run}/decisions`` — ``{"id", "action": "keep|relabel|exclude|accept", "label"}`` or
  ``{"decisions": [...]}``; optional ``"reviewer"`` and ``"note"``
- ``POST /api/runs/{run}/undo`` — undo the last decision batch
- ``POST /api/runs/{run}/finish`` — ``{"action": "finish|auto"}``: resume the paused flow run
- ``GET  /api/runs/{run}/outcome`` — status, counts and files written (a page polls it after "Finish review")

Security: every text is HTML-escaped by Jinja2 autoescaping and a strict Content-Security-Policy
forbids inline scripts; SQL is parameterised in :mod:`labelgate.store`; state changes only through
POST with a JSON body (a cross-site form cannot send one without a CORS preflight, and a foreign
``Origin`` is refused). With a token, every request but ``/login`` and ``/static`` needs
``Authorization: Bearer <token>`` or the session cookie the login form sets, else 401.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Body, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core import explain
from labelgate.core.metrics import RunMetrics
from labelgate.errors import DatabaseBusyError, LabelgateError, RunNotFoundError
from labelgate.services import reports, review
from labelgate.web import dashboard, memory, templating

HERE = Path(__file__).resolve().parent
COOKIE = "labelgate_session"
#: most rows one page shows (narrow the filters to see others)
PAGE_LIMIT = 500
#: seconds a request waits for a database another process writes
DB_WAIT_S = 5.0

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _session_value(token: str) -> str:
    """The cookie value proving a login: an HMAC of the token, never the token itself."""
    return hmac.new(token.encode(), b"labelgate-review-session", hashlib.sha256).hexdigest()


def create_app(
    db_path: str,
    *,
    token: str | None = None,
    reviewer: str | None = None,
    default_run: str = "latest",
) -> FastAPI:
    """Build the review app for the DuckDB file ``db_path``.

    Args:
        token: when set, every request needs ``Authorization: Bearer <token>`` or the login cookie.
        reviewer: the reviewer name used when a request names none (default: the OS user name).
        default_run: the run ``/`` opens (``latest``; the flow's embedded server passes its own run id).

    The app opens the database for each request and closes it (it never holds the file).
    """
    db_path = str(db_path)
    default_reviewer = reviewer or review.default_reviewer()
    env = templating.environment()
    app = FastAPI(title="labelgate review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.db_path = db_path
    app.state.token = token
    #: run id -> {"polled_at": monotonic time of a page's last /outcome request, "final_served": bool}
    app.state.outcome_watch = {}
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.reviewer = default_reviewer
    app.include_router(dashboard.router)  # /dashboard, /api/dashboard (labelgate.web.dashboard)
    app.include_router(memory.router)  # row history, revoke/change remembered decisions (labelgate.web.memory)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        path = request.url.path
        public = path == "/login" or path.startswith("/static/")
        if token and not public and not _authorised(request, token):
            if path.startswith("/api/"):
                response: Response = JSONResponse(
                    {"error": "authentication required: send 'Authorization: Bearer <token>'"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            else:
                response = HTMLResponse(
                    env.get_template("login.html").render(error=None, next=_safe_next(str(request.url.path))),
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        elif request.method not in ("GET", "HEAD", "OPTIONS") and not _same_origin(request):
            response = JSONResponse({"error": "cross-origin request refused"}, status_code=403)
        elif request.method == "POST" and path.startswith("/api/") and not _is_json(request):
            response = JSONResponse({"error": "send the request body as application/json"}, status_code=415)
        else:
            response = await call_next(request)
        for key, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    @app.exception_handler(LabelgateError)
    async def labelgate_error(request: Request, err: LabelgateError) -> Response:
        code = 404 if isinstance(err, RunNotFoundError) else 503 if isinstance(err, DatabaseBusyError) else 400
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(err)}, status_code=code)
        page = env.get_template("error.html").render(message=str(err), code=code)
        return HTMLResponse(page, status_code=code)

    # --- pages -------------------------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    def login_form(next: str = "/") -> HTMLResponse:
        return HTMLResponse(env.get_template("login.html").render(error=None, next=_safe_next(next)))

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        given = str(form.get("token") or "")
        target = _safe_next(str(form.get("next") or "/"))
        if not token:
            return RedirectResponse(target, status_code=303)
        if not hmac.compare_digest(given.encode(), token.encode()):
            page = env.get_template("login.html").render(error="wrong token", next=target)
            return HTMLResponse(page, status_code=401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, _session_value(token), httponly=True, samesite="strict", path="/")
        return response

    @app.get("/", response_class=HTMLResponse)
    def home() -> Response:
        with store.connect(db_path, wait_s=DB_WAIT_S) as con:
            runs = reports.runs_frame(con, limit=50)
        if default_run != "latest":
            return RedirectResponse(f"/runs/{default_run}", status_code=303)
        rows = json.loads(runs.to_json(orient="records", date_format="iso"))
        return HTMLResponse(env.get_template("runs.html").render(runs=rows, db_path=db_path))

    @app.get("/runs/{run}", response_class=HTMLResponse)
    def review_page(
        run: str,
        scope: str = "flagged",
        issue_type: str = "",
        given: str = "",
        suggested: str = "",
        status: str = "all",
        q: str = "",
        limit: int = PAGE_LIMIT,
        novelty: str | None = None,
        annotator: str = "",
    ) -> HTMLResponse:
        with store.connect(db_path, wait_s=DB_WAIT_S) as con:
            run_id = store.resolve_run(con, run)
            if novelty is None:  # the page opens on what is new when earlier runs of the dataset saw some rows
                novelty = "new" if store.seen_rows(con, run_id) else "all"
            filters = {
                "scope": scope,
                "issue_type": issue_type,
                "given": given,
                "suggested": suggested,
                "status": status,
                "q": q,
                "novelty": novelty,
                "annotator": annotator,
            }
            record = store.run_record(con, run_id)
            classes = review.run_classes(con, run_id)
            everything = review.review_items(con, run_id, scope=scope)
            items = review.review_items(
                con,
                run_id,
                scope=scope,
                issue_type=issue_type or None,
                given=given or None,
                suggested=suggested or None,
                status=status,
                query=q or None,
                novelty=novelty,
                annotator=annotator or None,
            )
            annotators = review.run_annotators(con, run_id)
            prog = review.progress(con, run_id)
            limit = max(1, min(int(limit), 5000))
            shown = review.item_records(items.head(limit))
            related = review.related_rows(con, run_id, [it["related_row_id"] for it in shown])
        issue_types = sorted({t for ts in everything["issue_types"] for t in ts})
        thresholds = _policy_thresholds(record["params_json"])
        for it in shown:
            it["related"] = related.get(it["related_row_id"] or "")
            it["basis"] = explain.label_basis(
                given_label=it["given_label"],
                suggested_label=it["suggested_label"],
                suggested_prob=it["suggested_prob"],
                model_prob=it["model_prob"],
                **thresholds,
            )
        data = {
            "run_id": run_id,
            "classes": classes,
            "reviewer": default_reviewer,
            "filters": filters,
            "matching": len(items),
            "progress": prog,
            "db_path": db_path,
        }
        page = env.get_template("review.html").render(
            run_id=run_id,
            run=record,
            awaiting=record["status"] == review.AWAITING_REVIEW,
            detected=RunMetrics.from_json(record["metrics_json"]).detected,
            classes=classes,
            class_keys=list(zip(range(1, 10), classes)),
            items=shown,
            matching=len(items),
            limit=limit,
            filters=filters,
            issue_types=issue_types,
            annotators=annotators,
            progress=prog,
            reviewer=default_reviewer,
            data=data,
            filter_query=urlencode({k: v for k, v in filters.items() if v}),
        )
        return HTMLResponse(page)

    # --- API ---------------------------------------------------------------------------------------

    @app.get("/api/runs")
    def api_runs(limit: int | None = None) -> Response:
        with store.connect(db_path, wait_s=DB_WAIT_S) as con:
            runs = reports.runs_frame(con, limit=limit)
        return Response(runs.to_json(orient="records", date_format="iso"), media_type="application/json")

    @app.get("/api/runs/{run}/issues")
    def api_issues(
        run: str,
        scope: str = "flagged",
        issue_type: str | None = None,
        given: str | None = None,
        suggested: str | None = None,
        status: str | None = None,
        q: str | None = None,
        limit: int | None = None,
        novelty: str | None = None,
        annotator: str | None = None,
    ) -> dict[str, Any]:
        with store.connect(db_path, wait_s=DB_WAIT_S) as con:
            run_id = store.resolve_run(con, run)
            items = review.review_items(
                con,
                run_id,
                scope=scope,
                issue_type=issue_type,
                given=given,
                suggested=suggested,
                status=status,
                query=q,
                novelty=novelty,
                annotator=annotator,
            )
            classes = review.run_classes(con, run_id)
            prog = review.progress(con, run_id)
        shown = items.head(limit) if limit else items
        return {
            "run_id": run_id,
            "classes": classes,
            "progress": prog,
            "count": len(items),
            "items": review.item_records(shown),
        }

    @app.get("/api/runs/{run}/progress")
    def api_progress(run: str) -> dict[str, Any]:
        with store.connect(db_path, wait_s=DB_WAIT_S) as con:
            run_id = store.resolve_run(con, run)
            return review.progress(con, run_id)

    @app.get("/api/runs/{run}/outcome")
    def api_outcome(run: str) -> dict[str, Any]:
        with store.connect(db_path, wait_s=DB_WAIT_S) as con:
            run_id = store.resolve_run(con, run)
            result = review.outcome(con, run_id)
        watch = app.state.outcome_watch.setdefault(run_id, {"polled_at": 0.0, "final_served": False})
        watch["polled_at"] = time.monotonic()
        watch["final_served"] = watch["final_served"] or result["final"]
        return result

    @app.get("/api/runs/{run}/decisions")
    def api_history(run: str) -> Response:
        with store.connect(db_path, wait_s=DB_WAIT_S) as con:
            run_id = store.resolve_run(con, run)
            df = review.decision_history(con, run_id)
        return Response(df.to_json(orient="records", date_format="iso"), media_type="application/json")

    @app.post("/api/runs/{run}/decisions")
    def api_decide(run: str, request: Request, payload: Any = Body(...)) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise review.ReviewError('send one decision object or {"decisions": [...]}')
        if "decisions" in payload:
            items = payload["decisions"]
            if not isinstance(items, list):
                raise review.ReviewError("'decisions' must be a list of decision objects")
        else:
            items = [payload]
        name = _reviewer(payload, request, default_reviewer)
        with store.connect(db_path, wait_s=DB_WAIT_S) as con:
            run_id = store.resolve_run(con, run)
            recorded = review.record_decisions(con, run_id, items, reviewer=name, note=payload.get("note"))
            prog = review.progress(con, run_id)
        return {"run_id": run_id, "recorded": recorded, "progress": prog}

    @app.post("/api/runs/{run}/undo")
    def api_undo(run: str, request: Request, payload: Any = Body(default=None)) -> dict[str, Any]:
        name = _reviewer(payload if isinstance(payload, dict) else {}, request, default_reviewer)
        with store.connect(db_path, wait_s=DB_WAIT_S) as con:
            run_id = store.resolve_run(con, run)
            restored = review.undo_last(con, run_id, reviewer=name)
            prog = review.progress(con, run_id)
        return {"run_id": run_id, "restored": restored, "progress": prog}

    @app.post("/api/runs/{run}/finish")
    def api_finish(run: str, request: Request, payload: Any = Body(default=None)) -> dict[str, Any]:
        body = payload if isinstance(payload, dict) else {}
        name = _reviewer(body, request, default_reviewer)
        return review.finish_review(db_path, run, reviewer=name, action=str(body.get("action") or "finish"))

    return app


def _policy_thresholds(params: dict[str, Any]) -> dict[str, float | None]:
    """The run's auto-policy thresholds (the defaults where its parameters lack them)."""
    defaults = CurateParams.model_fields
    relabel = params.get("relabel_threshold", defaults["relabel_threshold"].default)
    model = params.get("relabel_model_threshold", defaults["relabel_model_threshold"].default)
    return {
        "relabel_threshold": float(relabel),
        "model_threshold": None if model is None else float(model),
    }


def _reviewer(payload: dict[str, Any], request: Request, default: str) -> str:
    name = payload.get("reviewer") or request.headers.get("x-labelgate-reviewer") or default
    return review.clean_reviewer(str(name))


def _authorised(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), _session_value(token).encode())


def _same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin (no Origin header: a script, allowed)."""
    origin = request.headers.get("origin")
    if not origin:
        return True
    if origin == "null":
        return False
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


def _is_json(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return ctype == "application/json" or (ctype == "" and request.headers.get("content-length") in (None, "0"))


def _safe_next(target: str) -> str:
    """A local path to go to after login (never another site)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
