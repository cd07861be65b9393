"""Evaluate task: a thin Prefect wrapper over :func:`labelgate.services.evaluate.evaluate_run` that publishes
the before/after tables as artifacts (what is trained and stored is described there)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from labelgate.config import CurateParams
from labelgate.core.evaluate import (
    Comparison,
    format_details,
    format_overview,
    format_table,
)
from labelgate.core.metrics import EvaluationMetrics
from labelgate.services.evaluate import evaluate_run
from labelgate.tasks._common import TASK_OPTIONS


def evaluation_markdown(run_id: str, comparisons: Sequence[Comparison], summary: EvaluationMetrics) -> str:
    """The ``labelgate-evaluation-summary`` artifact: the overview across trainers, then each trainer's table."""
    n_test = comparisons[0].n_test if comparisons else summary.n_test
    parts = [
        f"# Before/after evaluation of run `{run_id}`",
        "",
        f"Test file `{summary.test_path}` ({n_test} rows); "
        f"{summary.leakage_excluded or 0} training rows that leak it left out of both sides.",
        "",
        "Every trainer is trained on the raw and on the cleaned rows with the same seed and budget. The views "
        "differ in how much label noise the model absorbs: compare them rather than picking one.",
        "",
        f"```\n{format_overview(comparisons)}\n```",
    ]
    for c in comparisons:
        extra = format_details(c.details)
        parts += ["", f"## {c.trainer}", "", f"{c.model}" + (f"; {extra}" if extra else ""), ""]
        parts.append(f"```\n{format_table(c)}\n```")
    return "\n".join(parts) + "\n"


class _StepProgress:
    """The ``labelgate-evaluation-progress`` Prefect artifact: percent of the fine-tuning steps done (best effort)."""

    KEY = "labelgate-evaluation-progress"

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.artifact_id: Any = None
        self.last = -1.0
        self.failed = False

    def __call__(self, variant: str, done: int, total: int) -> None:
        if self.failed:
            return
        # the raw side is the first half of the work, the cleaned side the second
        percent = float(round((50.0 if variant != "raw" else 0.0) + 50.0 * done / max(1, total)))
        if percent == self.last:
            return
        description = f"labelgate run {self.run_id}: fine-tuning on the {variant} rows, step {done} of {total}"
        try:
            from prefect.artifacts import create_progress_artifact, update_progress_artifact

            if self.artifact_id is None:
                self.artifact_id = create_progress_artifact(progress=percent, key=self.KEY, description=description)
            else:
                update_progress_artifact(self.artifact_id, percent, description=description)
            self.last = percent
        except Exception:  # a convenience: never fail the evaluation for it
            self.failed = True


@task(name="evaluate", **TASK_OPTIONS)
def evaluate(db_path: str, run_id: str, params: CurateParams) -> EvaluationMetrics:
    """Prefect task around :func:`evaluate_run`; publishes the tables as artifacts."""
    result = evaluate_run(db_path, run_id, params, on_step=_StepProgress(run_id))
    comparisons, summary = result.comparisons, result.to_metrics()
    create_table_artifact(
        key="labelgate-evaluation",
        table=[
            {
                "trainer": c.trainer,
                "metric": m,
                "raw": round(float(r), 4),
                "cleaned": round(float(cl), 4),
                "delta": round(float(d), 4),
            }
            for c in comparisons
            for m, r, cl, d in c.frame().itertuples(index=False)
        ],
        description=f"Trainers {', '.join(c.trainer for c in comparisons)} each trained on raw vs cleaned rows of "
        f"run {run_id}, scored on {summary.n_test} test rows",
    )
    create_markdown_artifact(
        key="labelgate-evaluation-summary",
        markdown=evaluation_markdown(run_id, comparisons, summary),
        description=f"labelgate evaluation of run {run_id}",
    )
    print(f"evaluation of run {run_id} on {summary.n_test} test rows:\n{format_overview(comparisons)}")
    return summary
