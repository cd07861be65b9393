"""What every route of the web app shares: the app's settings in ``app.state`` and per-request helpers.

:func:`configure` sets, once per app (:func:`labelgate.web.app.create_app`):

- ``db_path``: the DuckDB file; every request opens it briefly (:func:`connect`) and closes it
- ``token``: the access token or None (:mod:`labelgate.web.auth`)
- ``reviewer``: the reviewer name when a request names none
- ``default_run``: the run ``/`` opens (``latest``, or the flow's own run id for its embedded server)
- ``outcome_watch``: run id -> ``{"polled_at": monotonic time of a page's last /outcome request, "final_served":
  bool, set once a response with the final outcome has been sent}`` (:mod:`labelgate.services.review_gate` reads it
  to know when the page has seen the outcome)
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import duckdb
from fastapi import FastAPI, Request

from labelgate import store
from labelgate.services import review

#: seconds a request waits for a database another process writes
DB_WAIT_S = 5.0


def configure(app: FastAPI, *, db_path: str, token: str | None, reviewer: str, default_run: str) -> None:
    """Store the app's settings in ``app.state`` (see the module docstring)."""
    app.state.db_path = db_path
    app.state.token = token
    app.state.reviewer = reviewer
    app.state.default_run = default_run
    app.state.outcome_watch = {}


def connect(request: Request) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """A writable connection to the app's database for this request (waits :data:`DB_WAIT_S` for a busy file)."""
    return store.connect(request.app.state.db_path, wait_s=DB_WAIT_S)


def reviewer_for(request: Request, payload: Any) -> str:
    """Who acts: the body's ``"reviewer"``, else the ``X-Labelgate-Reviewer`` header, else the app's reviewer;
    cleaned by :func:`labelgate.services.review.clean_reviewer`. ``payload`` that is not a dict names nobody."""
    body = payload if isinstance(payload, dict) else {}
    name = body.get("reviewer") or request.headers.get("x-labelgate-reviewer") or request.app.state.reviewer
    return review.clean_reviewer(str(name))
