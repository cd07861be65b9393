"""Publish a run's summary and its top issues as Prefect artifacts (shown in the Prefect UI)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from labelgate import store
from labelgate.tasks._common import TASK_OPTIONS

TOP_ISSUES = 25


def summary_markdown(metrics: dict[str, Any]) -> str:
    """A markdown summary of a run's metrics."""
    d = metrics.get("decisions", {})
    lines = [
        f"# labelgate run `{metrics.get('run_id')}`",
        "",
        "| stage | figure |",
        "|---|---|",
        f"| rows in | {metrics.get('rows_in')} |",
        f"| valid | {metrics.get('rows_valid')} |",
        f"| quarantined | {metrics.get('rows_quarantined')} |",
        f"| embedded / cached | {metrics.get('texts_embedded')} / {metrics.get('texts_cached')} |",
        f"| label issues | {metrics.get('label_issues')} ({metrics.get('label_issue_rate')}) |",
        f"| decisions keep / relabel / exclude | {d.get('keep', 0)} / {d.get('relabel', 0)} / {d.get('exclude', 0)} |",
        f"| exported train / val | {metrics.get('exported_train')} / {metrics.get('exported_val')} |",
        "",
    ]
    reasons = metrics.get("quarantine_reasons") or {}
    if reasons:
        lines += ["**Quarantine reasons**", ""] + [f"- {k}: {v}" for k, v in reasons.items()] + [""]
    for note in metrics.get("notes") or []:
        lines.append(f"> {note}")
    if metrics.get("export_dir"):
        lines += ["", f"Files: `{metrics['export_dir']}`"]
    return "\n".join(lines)


@task(name="publish-artifacts", **TASK_OPTIONS)
def publish_artifacts(db_path: str, run_id: str, metrics: dict[str, Any]) -> None:
    """Create the run's markdown summary and top-issues table artifacts."""
    with store.connect(db_path) as con:
        top = store.query_df(
            con,
            """SELECT i.row_id, r.text, i.given_label, i.suggested_label, round(i.suggested_prob, 3) AS suggested_prob,
                      round(i.score, 4) AS label_score, i.reason
               FROM issues i JOIN valid_rows r ON r.run_id = i.run_id AND r.row_id = i.row_id
               WHERE i.run_id = ? AND i.issue_type = 'label' AND i.is_issue
               ORDER BY i.score ASC, i.row_id LIMIT ?""",
            [run_id, TOP_ISSUES],
        )
    top["text"] = top["text"].str.slice(0, 200)
    create_markdown_artifact(
        key="labelgate-summary",
        markdown=summary_markdown({"run_id": run_id, **metrics}),
        description=f"labelgate run {run_id}",
    )
    create_table_artifact(
        key="labelgate-top-issues",
        table=top.to_dict(orient="records"),
        description=f"Top {TOP_ISSUES} label issues of run {run_id} (lowest label score first)",
    )
