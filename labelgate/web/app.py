"""The review web app: :func:`create_app` composes the routers of :mod:`labelgate.web` over one DuckDB file.

- :mod:`labelgate.web.auth` — the token check, same-origin and JSON-body rules and security headers (a
  middleware), ``/login``
- :mod:`labelgate.web.review_routes` — ``/`` (runs), ``/runs/{run}`` (the review page) and the review JSON API
  (``/api/runs``, ``/api/runs/{run}/issues|progress|decisions|undo|finish|outcome``)
- :mod:`labelgate.web.dashboard` — ``/dashboard`` and ``/api/dashboard``
- :mod:`labelgate.web.memory` — a row's history across runs (``/runs/{run}/rows/{row_id}/history``) and the
  curation memory API
- ``/static`` — stylesheets and scripts; every page renders through :mod:`labelgate.web.templating`

Errors: a :class:`labelgate.errors.LabelgateError` becomes 404 (no such run), 503 (database busy) or 400, as
``{"error": message}`` under ``/api/`` and the error page elsewhere.

Security: every text is HTML-escaped by Jinja2 autoescaping and a strict Content-Security-Policy
forbids inline scripts; SQL is parameterised in :mod:`labelgate.store`; state changes only through
POST with a JSON body (a cross-site form cannot send one without a CORS preflight, and a foreign
``Origin`` is refused). With a token, every request but ``/login`` and ``/static`` needs
``Authorization: Bearer <token>`` or the session cookie the login form sets, else 401.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from labelgate.errors import DatabaseBusyError, LabelgateError, RunNotFoundError
from labelgate.services import review
from labelgate.web import auth, context, dashboard, memory, review_routes, templating

HERE = Path(__file__).resolve().parent


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
    app = FastAPI(title="labelgate review", docs_url=None, redoc_url=None, openapi_url=None)
    context.configure(
        app,
        db_path=str(db_path),
        token=token,
        reviewer=reviewer or review.default_reviewer(),
        default_run=default_run,
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(dashboard.router)
    app.include_router(memory.router)
    app.include_router(auth.router)
    app.include_router(review_routes.router)
    app.middleware("http")(auth.guard)
    app.add_exception_handler(LabelgateError, labelgate_error)
    return app


async def labelgate_error(request: Request, err: LabelgateError) -> Response:
    """A labelgate error as the response: 404 (no such run), 503 (database busy) or 400; JSON under ``/api/``,
    else the error page."""
    code = 404 if isinstance(err, RunNotFoundError) else 503 if isinstance(err, DatabaseBusyError) else 400
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": str(err)}, status_code=code)
    return HTMLResponse(templating.render("error.html", message=str(err), code=code), status_code=code)
