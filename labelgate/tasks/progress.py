"""Stage progress of a run: one line on the terminal now and then, and a Prefect progress artifact per stage.

The long stages after embedding (the ``layers`` member's second pass over the texts, the out-of-fold fits,
the neighbour search) report through :class:`StageProgress`; :func:`stage_reporter` hands core code a plain
``report(stage, done, total)`` callback. Output goes to stderr (past Prefect's print capture) only when
progress output is on: ``LABELGATE_PROGRESS=1``, or unset and stderr is a terminal; ``labelgate run --json``
turns it off unless ``LABELGATE_PROGRESS`` says otherwise.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO
from uuid import UUID

#: environment variable: ``1`` forces progress lines on, ``0`` off; unset: on when stderr is a terminal
ENV = "LABELGATE_PROGRESS"
#: at most one line per stage this often (seconds); the first and the last always print
EVERY_S = 2.0


def progress_enabled() -> bool:
    """Whether progress lines go to stderr (see the module docstring)."""
    env = os.environ.get(ENV)
    if env is not None:
        return env.strip().lower() not in ("0", "false", "no", "")
    return sys.stderr.isatty()


def _slug(stage: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in stage.lower()).strip("-")


class StageProgress:
    """Progress of one stage of run ``run_id``: ``update(done)`` as work completes, ``finish()`` at the end.

    Prints ``labelgate: <stage> <done>/<total> <unit> (<pct>%, <s> s)`` at the first update, then at most every
    :data:`EVERY_S` seconds, and when done reaches total (a one-step stage without a unit:
    ``labelgate: <stage>…`` and ``labelgate: <stage> done (<s> s)``); updates the Prefect progress artifact
    ``labelgate-<stage>-progress`` inside a flow run (best effort: a refused artifact never fails the run).
    """

    def __init__(
        self,
        run_id: str,
        stage: str,
        total: int,
        *,
        unit: str = "",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_id = run_id
        self.stage = stage
        self.total = max(int(total), 0)
        self.unit = unit
        self.clock = clock
        self.started = clock()
        self.printed_at: float | None = None
        self.done = 0
        self.show = progress_enabled()
        self.stream = stream
        self.artifact_id: UUID | None = None
        self.last_percent = -1.0
        self._artifact_start()

    def _line(self, done: int) -> str:
        elapsed = self.clock() - self.started
        if self.total == 1 and not self.unit:  # a single step: say when it starts and when it is done
            return f"labelgate: {self.stage} done ({elapsed:.0f} s)" if done else f"labelgate: {self.stage}…"
        percent = 100.0 if self.total == 0 else 100.0 * done / self.total
        unit = f" {self.unit}" if self.unit else ""
        return f"labelgate: {self.stage} {done}/{self.total}{unit} ({percent:.0f}%, {elapsed:.0f} s)"

    def update(self, done: int) -> None:
        """``done`` of ``total`` units are finished."""
        self.done = min(max(int(done), 0), self.total) if self.total else int(done)
        now = self.clock()
        last = self.total and self.done >= self.total
        if self.show and (self.printed_at is None or last or now - self.printed_at >= EVERY_S):
            stream = self.stream or sys.stderr
            stream.write(self._line(self.done) + "\n")
            stream.flush()
            self.printed_at = now
        self._artifact_update()

    def finish(self) -> None:
        """The stage is done (prints the last line when it has not been printed)."""
        if self.done < self.total or self.printed_at is None:
            self.update(self.total)

    # --- the Prefect artifact ----------------------------------------------------------------------

    def _describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"labelgate run {self.run_id}: {self.stage} {self.done} of {self.total}{unit}"

    def _artifact_start(self) -> None:
        from labelgate.tasks.artifacts import _in_run

        if not _in_run():
            return
        try:
            from prefect.artifacts import create_progress_artifact

            self.artifact_id = create_progress_artifact(
                progress=0.0, key=f"labelgate-{_slug(self.stage)}-progress", description=self._describe()
            )
        except Exception:  # the artifact is a convenience: never fail the run for it
            self.artifact_id = None

    def _artifact_update(self) -> None:
        if self.artifact_id is None:
            return
        percent = 100.0 if self.total == 0 else float(round(100.0 * self.done / self.total))
        if percent == self.last_percent:
            return
        try:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self.artifact_id, percent, description=self._describe())
            self.last_percent = percent
        except Exception:
            self.artifact_id = None


def stage_reporter(run_id: str, *, stream: TextIO | None = None) -> Callable[[str, int, int], None]:
    """A ``report(stage, done, total)`` callback for core code: one :class:`StageProgress` per stage name."""
    stages: dict[str, StageProgress] = {}

    def report(stage: str, done: int, total: int) -> None:
        progress = stages.get(stage)
        if progress is None or progress.total != total:
            progress = stages[stage] = StageProgress(run_id, stage, total, stream=stream)
        progress.update(done)

    return report
