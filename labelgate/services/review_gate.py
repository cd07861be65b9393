"""Serving the review app while a flow waits for a person (:func:`labelgate.flows.review_gate.human_gate`).

:func:`start_review_server` serves the app from this process (or finds a labelgate server that already serves
the run), :func:`release_review_server` stops it once the run's outcome is final, :func:`review_page_url` is the
page a run's review link points to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from labelgate import store
from labelgate.web.server import EmbeddedServer, ReviewServerSettings, base_url


@dataclass(frozen=True)
class ReviewServing:
    """Where the review app of a paused run is served (:func:`start_review_server`).

    Attributes:
        server: the server this process started (stop it, or hand it to :func:`keep_serving`); None when another
            labelgate server already serves the run, or serving is off.
        url: the base URL of the review app (``LABELGATE_REVIEW_URL`` when set); None when serving is off
            and no public URL is set.
        how: one line saying which server the URL points to (or how to start one).
    """

    server: EmbeddedServer | None
    url: str | None
    how: str


def _serving_this_run(url: str, run_id: str, token: str | None) -> bool:
    """True when a labelgate review server at ``url`` knows ``run_id`` (e.g. a running ``labelgate serve``)."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(f"{url}/api/runs/{run_id}/progress", headers=headers, timeout=3.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.json().get("run_id") == run_id


def start_review_server(db_path: str, run_id: str, settings: ReviewServerSettings) -> ReviewServing:
    """Serve the review app for ``run_id`` from this process when the settings ask for it.

    A taken port is fine when a labelgate server for the run already listens there; otherwise a free
    port is used.

    Returns:
        The server started (if any), the base URL and which server it points to (:class:`ReviewServing`).
    """
    if settings.serve == "off":
        how = f"start `labelgate serve --db {db_path}` to review (LABELGATE_REVIEW_SERVE=off)"
        return ReviewServing(None, settings.public_url, how)
    from labelgate.web.app import create_app

    app = create_app(db_path, token=settings.token, default_run=run_id)
    try:
        server = EmbeddedServer.start(app, host=settings.host, port=settings.port, token=settings.token)
    except OSError:
        existing = base_url(settings.host, settings.port)
        if _serving_this_run(existing, run_id, settings.token):
            return ReviewServing(
                None, settings.public_url or existing, f"served by the labelgate server already on {existing}"
            )
        server = EmbeddedServer.start(app, host=settings.host, port=0, token=settings.token)
    return ReviewServing(server, settings.public_url or server.url, "served by this process while the flow waits")


def mark_failed(db_path: str, run_id: str, message: str) -> None:
    """Close ``run_id`` as failed with ``message`` (the flow was interrupted while waiting for the review)."""
    with store.connect(db_path) as con, store.transaction(con):
        store.close_run(con, run_id=run_id, status="failed", message=message)


#: review servers kept up after the review, until the run's outcome is written (run id -> server)
_SERVING: dict[str, EmbeddedServer] = {}
#: a page that asked for the outcome this recently (seconds) is waiting for it. A page asks every 0.7 s, but the
#: process may not answer for seconds while the export runs (a loaded machine: a 3 s window let the server stop under
#: a page that was still watching); a page closed within this window costs the process at most ``LINGER_S``
WATCH_S = 30.0
#: at most this many seconds the process waits for a watching page to fetch the final outcome
LINGER_S = 10.0


def keep_serving(run_id: str, server: EmbeddedServer) -> None:
    """Keep ``server`` up after the review of ``run_id``, until :func:`release_review_server` (the page shows the
    export's outcome)."""
    _SERVING[run_id] = server


def release_review_server(run_id: str, *, linger_s: float = LINGER_S) -> bool:
    """Stop the review server :func:`labelgate.flows.review_gate.human_gate` kept up for ``run_id`` (call once
    the run's status is final).

    When a page polled ``/api/runs/{run}/outcome`` in the last :data:`WATCH_S` seconds and has not yet
    received the final outcome, wait for it (at most ``linger_s`` seconds), so the person sees the files
    written or the failure before the server goes. No page watching: stop at once.

    Returns True when a server was stopped.
    """
    server = _SERVING.pop(run_id, None)
    if server is None:
        return False
    watch = getattr(server.app.state, "outcome_watch", {}).get(run_id)
    deadline = time.monotonic() + linger_s
    while (
        watch is not None
        and not watch["final_served"]
        and time.monotonic() - watch["polled_at"] < WATCH_S
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    server.stop()
    return True


def review_page_url(run_id: str, review_url: str | None = None) -> str:
    """The review page of ``run_id``: ``review_url`` when the run has one, else the configured review server's."""
    if review_url:
        return review_url
    settings = ReviewServerSettings.from_env()
    base = settings.public_url or base_url(settings.host, settings.port)
    return f"{base}/runs/{run_id}"
