"""The human review gate: the curate flow pauses until a person finishes the review, then exports.

:func:`human_gate` is called by the flow (not a task: it pauses the flow run itself):

1. serve the review app from this process (:mod:`labelgate.services.review_gate`; unless
   ``LABELGATE_REVIEW_SERVE=off`` or a labelgate server already serves the run on the configured port; see
   :class:`labelgate.web.server.ReviewServerSettings`),
2. mark the run ``awaiting_review`` and print/log the review URL,
3. ``pause_flow_run(wait_for_input=ReviewInput, timeout=params.review_timeout_s)``; no DuckDB
   connection is open during the pause,
4. on resume (the page's "Finish review", ``labelgate review``'s F, ``labelgate.services.review.finish_review``
   or the Prefect UI's resume form) optionally let the auto policy decide the rows nobody decided,
   record the decision counts and hand back to the flow, which exports. The review server stays up through
   the export (the page shows the files written, or the failure) until the flow calls
   :func:`release_review_server`.

On timeout, ``params.on_review_timeout`` decides: ``fail`` raises :class:`labelgate.errors.ReviewTimeoutError`
(the run fails, nothing is exported, the decisions stay), ``auto`` applies the auto policy to the
undecided rows and the flow exports.
"""

from __future__ import annotations

import sys
from typing import Literal

import click
from prefect import get_run_logger
from prefect.input import RunInput
from pydantic import Field

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.metrics import GateMetrics
from labelgate.services import review
from labelgate.services.review_gate import keep_serving, mark_failed, start_review_server
from labelgate.tasks.review import close_review, open_review
from labelgate.web.server import ReviewServerSettings

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


def human_gate(db_path: str, run_id: str, params: CurateParams) -> GateMetrics:
    """Pause the current flow run until the review of ``run_id`` is finished; see the module docstring.

    Returns the gate's figures (decisions, review, review_url) for the flow's metrics. The caller
    must call :func:`release_review_server` once the run's status is final (completed or failed).

    Raises:
        ReviewTimeoutError: the review timed out and ``params.on_review_timeout`` is ``fail``.
    """
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    settings = ReviewServerSettings.from_env()
    serving = start_review_server(db_path, run_id, settings)
    server, how = serving.server, serving.how
    page = f"{serving.url}/runs/{run_id}" if serving.url else None
    try:
        prog = open_review(db_path, run_id, page)
        timeout_text = f"{params.review_timeout_s} s, then " + (
            "fails" if params.on_review_timeout == "fail" else "the auto policy decides the rest"
        )
        _announce(
            [
                f"labelgate: run {run_id} waits for a review of {prog.remaining} flagged rows"
                + (f" ({prog.carried} more carry a remembered decision)" if prog.carried else "")
                + (f"; {prog.remaining_new} of them are new" if prog.remaining_new != prog.remaining else ""),
                f"  open      {page}   ({how})" if page else f"  review    {how}",
                f"  terminal  labelgate review --db {db_path} --run {run_id}",
                '  then      press "Finish review" (F in the terminal); keys W accept, Q keep, E exclude, 1-9, U undo',
                f"  waits     {timeout_text}",
            ]
        )
        description = (
            f"labelgate run `{run_id}` waits for a review of {prog.remaining} flagged rows.\n\n"
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
                    prog = review.review_progress(con, run_id)
                raise review.ReviewTimeoutError(
                    f"nobody finished the review of run {run_id} within {params.review_timeout_s} s "
                    f"({prog.reviewed} of {prog.flagged} flagged rows reviewed); nothing was exported. "
                    f"The decisions are kept: review on with `labelgate serve --db {db_path}`, then "
                    f"`labelgate export --db {db_path} --run {run_id}`"
                ) from None
            reviewer, action = "", "auto"
            _announce([f"labelgate: the review of run {run_id} timed out; the auto policy decides the rest"])
        if server is not None:  # serve on through the export: the page shows the outcome (release_review_server)
            keep_serving(run_id, server)
            server = None
    except KeyboardInterrupt:
        mark_failed(db_path, run_id, "interrupted while waiting for the review; the decisions are kept")
        raise
    finally:
        if server is not None:
            server.stop()
    gated = close_review(db_path, run_id, params, reviewer=reviewer, action=action, timed_out=timed_out)
    gated = gated.replace(review_url=page)
    who = f" by {reviewer}" if reviewer else ""
    counts = ", ".join(f"{k} {v}" for k, v in (gated.decisions or {}).items())
    _announce([f"labelgate: review of run {run_id} finished{who}: {counts}; exporting"])
    return gated
