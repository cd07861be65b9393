"""Quality-gate task: check the run's rates and label shift; record the verdict; stop the run when it fails.

Runs after detection and before any gate decision or export. The verdict is always computed and stored
(table ``quality``, the run's ``metrics_json["quality"]`` and a ``labelgate-quality`` markdown artifact);
only with ``params.quality_gate`` on does a failed verdict stop the run: the task raises
:class:`~labelgate.errors.QualityGateError`, the flow marks the run failed with the message and nothing is
exported. The previous version compared with is :func:`labelgate.store.previous_version`.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.metrics import QualityMetrics, RunMetrics
from labelgate.core.quality import QualityVerdict, evaluate_quality
from labelgate.errors import QualityGateError
from labelgate.tasks._common import TASK_OPTIONS


def quality_markdown(run_id: str, dataset: str, verdict: QualityVerdict, *, enforced: bool) -> str:
    """The ``labelgate-quality`` artifact: the verdict, one table row per check."""
    if verdict.passed:
        head = "**Passed**: every check is within its limit."
    elif enforced:
        head = "**Blocked**: the run stopped before any decision or export.\n\n" + "\n".join(
            f"- {r}" for r in verdict.reasons
        )
    else:
        head = "**Would fail** (quality gate off: recorded only).\n\n" + "\n".join(f"- {r}" for r in verdict.reasons)
    lines = [
        f"# Quality gate of run `{run_id}` (dataset `{dataset}`)",
        "",
        head,
        "",
        "| check | value | limit | result | detail |",
        "|---|---|---|---|---|",
    ]
    for c in verdict.checks:
        value = "" if c.value is None else f"{c.value:.4g}"
        limit = "off" if c.limit is None else f"{c.limit:g}"
        result = {True: "pass", False: "**FAIL**", None: "skipped"}[c.passed]
        lines.append(f"| {c.name} | {value} | {limit} | {result} | {c.detail} |")
    if verdict.baseline_run_id:
        lines += [
            "",
            f"Compared with the previous version `{verdict.baseline_version}` (run `{verdict.baseline_run_id}`).",
        ]
    return "\n".join(lines)


def _publish(run_id: str, dataset: str, verdict: QualityVerdict, *, enforced: bool, metrics: dict[str, Any]) -> None:
    """Create the quality artifact (and, when the run is blocked, the summary artifact with the reason)."""
    from prefect.artifacts import create_markdown_artifact

    from labelgate.tasks.artifacts import summary_markdown

    create_markdown_artifact(
        key="labelgate-quality",
        markdown=quality_markdown(run_id, dataset, verdict, enforced=enforced),
        description=f"labelgate quality gate of run {run_id}: {verdict.message}",
    )
    if enforced and not verdict.passed:
        create_markdown_artifact(
            key="labelgate-summary",
            markdown=summary_markdown(RunMetrics.from_json({**metrics, "run_id": run_id}), blocked=verdict.message),
            description=f"labelgate run {run_id}: blocked by the quality gate",
        )


@task(name="quality-gate", **TASK_OPTIONS)
def quality_gate(db_path: str, run_id: str, params: CurateParams) -> QualityMetrics:
    """Evaluate the run against the quality limits of ``params``; return the verdict (stored as ``quality``).

    Raises:
        QualityGateError: ``params.quality_gate`` is on and a limit is passed (the message lists the reasons).
    """
    with store.connect(db_path) as con:
        record = store.run_record(con, run_id)
        rows_in = int(store.count_rows(con, run_id=run_id) or 0)
        quarantined = int(store.count_quarantined(con, run_id=run_id) or 0)
        issues = int(store.count_label_issues(con, run_id) or 0)
        counts = store.class_counts(con, run_id=run_id)
        baseline = store.previous_version(con, run_id=run_id)
        baseline_counts = store.class_counts(con, run_id=baseline["run_id"]) if baseline else None
    verdict = evaluate_quality(
        rows_in=rows_in,
        rows_quarantined=quarantined,
        rows_valid=rows_in - quarantined,
        label_issues=issues,
        class_counts=counts,
        baseline_counts=baseline_counts,
        baseline_run_id=baseline["run_id"] if baseline else None,
        baseline_version=baseline["dataset_version"] if baseline else None,
        dataset=record["dataset"],
        limits=params.quality_limits(),
    )
    enforced = bool(params.quality_gate)
    result = {**verdict.as_dict(), "enforced": enforced}
    with store.connect(db_path) as con, store.transaction(con):
        store.save_quality(
            con,
            run_id=run_id,
            enforced=enforced,
            passed=verdict.passed,
            message=verdict.message,
            reasons=verdict.reasons,
            checks=result["checks"],
            baseline_run_id=verdict.baseline_run_id,
            baseline_version=verdict.baseline_version,
        )
        merged = store.merge_metrics(con, run_id, {"quality": result, "baseline_run_id": verdict.baseline_run_id})
    _publish(run_id, record["dataset"], verdict, enforced=enforced, metrics=merged)
    if enforced and not verdict.passed:
        raise QualityGateError(
            f"run {run_id} of dataset {record['dataset']!r} stopped, nothing exported: {verdict.message}"
        )
    return QualityMetrics.from_json(result)
