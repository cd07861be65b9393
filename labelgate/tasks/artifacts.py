"""A run's Prefect artifacts (shown in the Prefect UI): summary, top issues, embedding progress, review link.

- ``labelgate-summary`` (markdown): the run's figures; for a run the quality gate blocked, the reason
- ``labelgate-top-issues`` (table): the worst flagged rows
- ``labelgate-embedding-progress`` (progress): updated while the embed task works (:class:`EmbeddingProgress`)
- ``labelgate-review`` (link): the run's review page (:func:`publish_review_link`)
- ``labelgate-quality`` (markdown): the quality gate's checks (published by :mod:`labelgate.tasks.quality`)
"""

from __future__ import annotations

import logging
from uuid import UUID

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from labelgate import store
from labelgate.core.metrics import (
    DetectMetrics,
    EmbedMetrics,
    EvaluationMetrics,
    ExportMetrics,
    GateMetrics,
    RunMetrics,
    ValidateMetrics,
)
from labelgate.services.review_gate import review_page_url
from labelgate.tasks._common import TASK_OPTIONS

TOP_ISSUES = 25


def _evaluation_lines(evaluation: EvaluationMetrics | None) -> list[str]:
    """The before/after evaluation as a markdown table, one row per trainer (nothing without an evaluation)."""
    from labelgate.core.evaluate import comparisons_from_summary

    comparisons = comparisons_from_summary(evaluation.to_json() if evaluation else None)
    if not comparisons:
        return []
    assert evaluation is not None
    lines = [
        f"**Before/after evaluation** on {evaluation.n_test} rows of `{evaluation.test_path}` "
        "(each trainer trained on the raw and on the cleaned rows)",
        "",
        "| trainer | accuracy raw → cleaned | macro-F1 raw → cleaned | seconds |",
        "|---|---|---|---|",
    ]
    for c in comparisons:
        seconds = "–" if c.seconds is None else f"{c.seconds:.1f}"
        lines.append(
            f"| {c.trainer} | {c.raw.accuracy:.3f} → {c.cleaned.accuracy:.3f} "
            f"({c.cleaned.accuracy - c.raw.accuracy:+.3f}) | {c.raw.macro_f1:.3f} → {c.cleaned.macro_f1:.3f} "
            f"({c.cleaned.macro_f1 - c.raw.macro_f1:+.3f}) | {seconds} |"
        )
    return [*lines, ""]


def summary_markdown(metrics: RunMetrics, *, blocked: str | None = None) -> str:
    """A markdown summary of a run's metrics (``blocked``: the quality gate's message when it stopped the run)."""
    d = metrics.decisions or GateMetrics()
    validated = metrics.validate or ValidateMetrics()
    embedded = metrics.embed or EmbedMetrics()
    detected = metrics.detect or DetectMetrics()
    exported = metrics.export or ExportMetrics()
    lines = [f"# labelgate run `{metrics.run_id}`", ""]
    if blocked is not None:
        lines += [f"**Blocked by the quality gate, nothing exported.** {blocked}", ""]
    lines += [
        "| stage | figure |",
        "|---|---|",
        f"| rows in | {metrics.rows_in} |",
        f"| valid | {validated.rows_valid} |",
        f"| quarantined | {validated.rows_quarantined} |",
        f"| embedded / cached | {embedded.texts_embedded} / {embedded.texts_cached} |",
        f"| label issues | {detected.label_issues} ({detected.label_issue_rate}) |",
        f"| decisions keep / relabel / exclude | {d.count('keep')} / {d.count('relabel')} / {d.count('exclude')} |",
        f"| exported train / val | {exported.exported_train} / {exported.exported_val} |",
        "",
    ]
    reasons = metrics.quarantine_reasons
    if reasons:
        lines += ["**Quarantine reasons**", ""] + [f"- {k}: {v}" for k, v in reasons.items()] + [""]
    quality = metrics.quality
    if quality:
        state = "passed" if quality.passed else ("FAILED" if quality.enforced else "would fail (off)")
        lines += [
            f"**Quality gate**: {state}" + (f" — {'; '.join(quality.reasons)}" if quality.reasons else ""),
            "",
        ]
    lines += _evaluation_lines(metrics.evaluation)
    for warning in metrics.warnings:
        lines.append(f"> **Warning:** {warning}")
    for note in metrics.notes:
        lines.append(f"> {note}")
    if exported.export_dir:
        lines += ["", f"Files: `{exported.export_dir}`"]
    return "\n".join(lines)


@task(name="publish-artifacts", **TASK_OPTIONS)
def publish_artifacts(db_path: str, run_id: str, metrics: RunMetrics) -> None:
    """Create the run's markdown summary and top-issues table artifacts."""
    with store.connect(db_path) as con:
        top = store.top_label_issues(con, run_id=run_id, limit=TOP_ISSUES)
    top["text"] = top["text"].str.slice(0, 200)
    create_markdown_artifact(
        key="labelgate-summary",
        markdown=summary_markdown(metrics.replace(run_id=run_id)),
        description=f"labelgate run {run_id}",
    )
    create_table_artifact(
        key="labelgate-top-issues",
        table=top.to_dict(orient="records"),
        description=f"Top {TOP_ISSUES} label issues of run {run_id} (lowest label score first)",
    )
    review_url = metrics.decisions.review_url if metrics.decisions else None
    publish_review_link(run_id, review_page_url(run_id, review_url), db_path=db_path)


def _log() -> logging.Logger | logging.LoggerAdapter:
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a run
        return logging.getLogger("labelgate")


def _in_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


class EmbeddingProgress:
    """The ``labelgate-embedding-progress`` artifact: percent of the texts to embed that are committed.

    Best effort: outside a Prefect run, or when the API refuses, it does nothing (and logs why once).
    Usage inside the embed task: ``progress = EmbeddingProgress(run_id, total)``, then ``progress.update(done)``
    after each committed chunk and ``progress.finish()``.
    """

    KEY = "labelgate-embedding-progress"

    def __init__(self, run_id: str, total: int, *, cached: int = 0) -> None:
        self.run_id = run_id
        self.total = int(total)
        self.cached = int(cached)
        self.artifact_id: UUID | None = None
        self.last = -1.0
        if not _in_run():
            return
        try:
            from prefect.artifacts import create_progress_artifact

            self.artifact_id = create_progress_artifact(
                progress=100.0 if self.total == 0 else 0.0, key=self.KEY, description=self._describe(0)
            )
        except Exception as err:  # the artifact is a convenience: never fail the run for it
            _log().warning("no embedding progress artifact: %s: %s", type(err).__name__, err)

    def _describe(self, done: int) -> str:
        return f"labelgate run {self.run_id}: embedded {done} of {self.total} new texts" + (
            f" ({self.cached} from the cache)" if self.cached else ""
        )

    def update(self, done: int) -> None:
        """Set the progress to ``done`` of ``total`` texts (rounded to whole percent; repeats are skipped)."""
        if self.artifact_id is None:
            return
        percent = 100.0 if self.total == 0 else round(100.0 * min(done, self.total) / self.total)
        if percent == self.last:
            return
        try:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self.artifact_id, percent, description=self._describe(done))
            self.last = percent
        except Exception as err:
            _log().warning("embedding progress artifact not updated: %s: %s", type(err).__name__, err)
            self.artifact_id = None

    def finish(self) -> None:
        """Mark every text embedded."""
        self.update(self.total)


def publish_review_link(run_id: str, url: str, *, db_path: str | None = None) -> UUID | None:
    """Create the ``labelgate-review`` link artifact pointing at the run's review page (None outside a run)."""
    if not _in_run():
        return None
    from prefect.artifacts import create_link_artifact

    serve = f" (served by `labelgate serve --db {db_path}`)" if db_path else ""
    return create_link_artifact(
        link=url,
        link_text=f"Review run {run_id}",
        key="labelgate-review",
        description=f"Review page of labelgate run {run_id}{serve}; the run history is at /dashboard",
    )
