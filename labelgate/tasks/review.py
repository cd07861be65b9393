"""The human review gate: the curate flow pauses until a person finishes the review, then exports.

:func:`human_gate` is called by the flow (not a task: it pauses the flow run itself):

1. serve the review app from this process (unless ``LABELGATE_REVIEW_SERVE=off`` or a labelgate
   server already serves the run on the configured port; see :class:`labelgate.web.server.ReviewServerSettings`),
2. mark the run ``awaiting_review`` and print/log the review URL,
3. ``pause_flow_run(wait_for_input=ReviewInput, timeout=params.review_timeout_s)``; no DuckDB
   connection is open during the pause,
4. on resume (the page's "Finish review", ``labelgate review``'s F, ``labelgate.review.finish_review``
   or the Prefect UI's resume form) optionally let the auto policy decide the rows nobody decided,
   record the decision counts and hand back to the flow, which exports. The review server stays up through
   the export (the page shows the files written, or the failure) until the flow calls
   :func:`release_review_server`.

On timeout, ``params.on_review_timeout`` decides: ``fail`` raises :class:`labelgate.review.ReviewTimeoutError`
(the run fails, nothing is exported, the decisions stay), ``auto`` applies the auto policy to the
undecided rows and the flow exports.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Literal

import click
from prefect import get_run_logger, task
from prefect.input import RunInput
from pydantic import Field

from labelgate import review, store
from labelgate.config import CurateParams
from labelgate.tasks._common import TASK_OPTIONS
from labelgate.web.server import EmbeddedServer, ReviewServerSettings, base_url

#: seconds between two checks of the paused flow run's state
POLL_S = 2


class ReviewInput(RunInput):
    """What the reviewer answers when the review is finished (also the Prefect UI's resume form)."""

    reviewer: str = Field("", description="Who finished the review.")
    action: Literal["finish", "auto"] = Field(
        "finish",
        description="finish: export with the decisions made (undecided rows keep their label); "
        "auto: the auto policy decides the flagged rows nobody decided, then export.",
    )


@task(name="open-review", **TASK_OPTIONS)
def open_review(db_path: str, run_id: str, review_url: str | None) -> dict[str, Any]:
    """Mark the run ``awaiting_review`` (with its review URL) and return the review progress."""
    with store.connect(db_path) as con:
        with store.transaction(con):
            store.update_run(con, run_id, status=review.AWAITING_REVIEW)
            store.merge_metrics(con, run_id, {"gate": "human", "review_url": review_url})
        return review.progress(con, run_id)


@task(name="close-review", **TASK_OPTIONS)
def close_review(
    db_path: str, run_id: str, params: CurateParams, *, reviewer: str, action: str, timed_out: bool
) -> dict[str, Any]:
    """Apply the auto policy to undecided rows when ``action`` is ``auto``; record the review; status running.

    Returns ``{"decisions": keep/relabel/exclude counts of the latest decisions, "review": {...}}``.
    """
    with store.connect(db_path) as con:
        policy = review.fill_with_policy(con, run_id, **params.policy_settings()) if action == "auto" else {}
        if policy and params.carry_policy_decisions:
            with store.transaction(con):
                store.remember_policy_decisions(con, run_id)
        prog = review.progress(con, run_id)
        counts = review.decision_counts(con, run_id)
        summary = {
            "reviewer": reviewer or None,
            "action": action,
            "timed_out": timed_out,
            "flagged": prog["flagged"],
            "reviewed": prog["reviewed"],
            "carried": prog["carried"],
            "by_action": prog["by_action"],
            "policy_decided": sum(policy.values()),
        }
        with store.transaction(con):
            store.update_run(con, run_id, status="running")
            store.merge_metrics(con, run_id, {"decisions": counts, "gate": "human", "review": summary})
    return {"decisions": counts, "review": summary}


def _serving_this_run(url: str, run_id: str, token: str | None) -> bool:
    """True when a labelgate review server at ``url`` knows ``run_id`` (e.g. a running ``labelgate serve``)."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.get(f"{url}/api/runs/{run_id}/progress", headers=headers, timeout=3.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.json().get("run_id") == run_id


def start_review_server(
    db_path: str, run_id: str, settings: ReviewServerSettings
) -> tuple[EmbeddedServer | None, str | None, str]:
    """Serve the review app for ``run_id`` from this process when the settings ask for it.

    Returns ``(server or None, base URL or None, how)``: ``how`` says which server the URL points to.
    A taken port is fine when a labelgate server for the run already listens there; otherwise a free
    port is used.
    """
    if settings.serve == "off":
        how = f"start `labelgate serve --db {db_path}` to review (LABELGATE_REVIEW_SERVE=off)"
        return None, settings.public_url, how
    from labelgate.web.app import create_app

    app = create_app(db_path, token=settings.token, default_run=run_id)
    try:
        server = EmbeddedServer.start(app, host=settings.host, port=settings.port, token=settings.token)
    except OSError:
        existing = base_url(settings.host, settings.port)
        if _serving_this_run(existing, run_id, settings.token):
            return None, settings.public_url or existing, f"served by the labelgate server already on {existing}"
        server = EmbeddedServer.start(app, host=settings.host, port=0, token=settings.token)
    return server, settings.public_url or server.url, "served by this process while the flow waits"


def _announce(lines: list[str]) -> None:
    """Tell the person at the terminal (stderr, past Prefect's print capture) and the run's log."""
    click.echo("\n".join(lines), err=True)
    sys.stderr.flush()
    try:
        logger = get_run_logger()
    except Exception:  # pragma: no cover - outside a run
        return
    for line in lines:
        logger.info(line)


def _force_running() -> None:
    """Set the current flow run back to Running after a pause that timed out (tasks can run again)."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.states import Running

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:  # pragma: no cover - outside a flow run
        return
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(ctx.flow_run.id, Running(), force=True)


def _mark_failed(db_path: str, run_id: str, message: str) -> None:
    with store.connect(db_path) as con, store.transaction(con):
        store.close_run(con, run_id=run_id, status="failed", message=message)


#: review servers kept up after the review, until the run's outcome is written (run id -> server)
_SERVING: dict[str, EmbeddedServer] = {}
#: a page that asked for the outcome this recently (seconds) is waiting for it
WATCH_S = 3.0
#: at most this many seconds the process waits for a watching page to fetch the final outcome
LINGER_S = 10.0


def release_review_server(run_id: str, *, linger_s: float = LINGER_S) -> bool:
    """Stop the review server :func:`human_gate` kept up for ``run_id`` (call once the run's status is final).

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


def human_gate(db_path: str, run_id: str, params: CurateParams) -> dict[str, Any]:
    """Pause the current flow run until the review of ``run_id`` is finished; see the module docstring.

    Returns ``{"decisions": {...}, "review": {...}, "review_url": ...}`` for the flow's metrics. The caller
    must call :func:`release_review_server` once the run's status is final (completed or failed).

    Raises:
        ReviewTimeoutError: the review timed out and ``params.on_review_timeout`` is ``fail``.
    """
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    settings = ReviewServerSettings.from_env()
    server, url, how = start_review_server(db_path, run_id, settings)
    page = f"{url}/runs/{run_id}" if url else None
    try:
        prog = open_review(db_path, run_id, page)
        timeout_text = f"{params.review_timeout_s} s, then " + (
            "fails" if params.on_review_timeout == "fail" else "the auto policy decides the rest"
        )
        _announce(
            [
                f"labelgate: run {run_id} waits for a review of {prog['remaining']} flagged rows"
                + (f" ({prog['carried']} more carry a remembered decision)" if prog["carried"] else "")
                + (f"; {prog['remaining_new']} of them are new" if prog["remaining_new"] != prog["remaining"] else ""),
                f"  open      {page}   ({how})" if page else f"  review    {how}",
                f"  terminal  labelgate review --db {db_path} --run {run_id}",
                '  then      press "Finish review" (F in the terminal); keys W accept, Q keep, E exclude, 1-9, U undo',
                f"  waits     {timeout_text}",
            ]
        )
        description = (
            f"labelgate run `{run_id}` waits for a review of {prog['remaining']} flagged rows.\n\n"
            + (f"Review them at [{page}]({page}), then press **Finish review**.\n\n" if page else "")
            + f"Or in a terminal: `labelgate review --db {db_path} --run {run_id}`. Resuming here finishes the review."
        )
        form = ReviewInput.with_initial_data(description=description, reviewer="", action="finish")
        timed_out = False
        try:
            answer = pause_flow_run(wait_for_input=form, timeout=params.review_timeout_s, poll_interval=POLL_S)
            reviewer, action = str(answer.reviewer or ""), str(answer.action)
        except FlowPauseTimeout:
            timed_out = True
            _force_running()
            if params.on_review_timeout == "fail":
                with store.connect(db_path) as con:
                    prog = review.progress(con, run_id)
                raise review.ReviewTimeoutError(
                    f"nobody finished the review of run {run_id} within {params.review_timeout_s} s "
                    f"({prog['reviewed']} of {prog['flagged']} flagged rows reviewed); nothing was exported. "
                    f"The decisions are kept: review on with `labelgate serve --db {db_path}`, then "
                    f"`labelgate export --db {db_path} --run {run_id}`"
                ) from None
            reviewer, action = "", "auto"
            _announce([f"labelgate: the review of run {run_id} timed out; the auto policy decides the rest"])
        if server is not None:  # serve on through the export: the page shows the outcome (release_review_server)
            _SERVING[run_id], server = server, None
    except KeyboardInterrupt:
        _mark_failed(db_path, run_id, "interrupted while waiting for the review; the decisions are kept")
        raise
    finally:
        if server is not None:
            server.stop()
    result = close_review(db_path, run_id, params, reviewer=reviewer, action=action, timed_out=timed_out)
    who = f" by {reviewer}" if reviewer else ""
    counts = ", ".join(f"{k} {v}" for k, v in result["decisions"].items())
    _announce([f"labelgate: review of run {run_id} finished{who}: {counts}; exporting"])
    return {**result, "review_url": page}
