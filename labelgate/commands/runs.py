"""``labelgate runs``: the runs in the database, newest first, with their figures and outcome."""

from __future__ import annotations

import json
from typing import Any

import click

from labelgate.clikit import db_option, handle_errors, verbose_option


@click.command("runs")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array: every run with its metrics and outcome.")
@click.option("--dataset", default=None, help="Only the runs of this dataset.")
@click.option("--limit", type=int, default=None, help="Only the newest N runs.")
@verbose_option
@handle_errors
def runs_cmd(db_path: str, as_json: bool, dataset: str | None, limit: int | None, verbose: bool) -> None:
    """List the runs in the database, newest first, with their figures and outcome.

    Outcomes: exported, blocked (stopped by the quality gate), failed, crashed, running, awaiting_review.
    """
    from labelgate import store
    from labelgate.services import reports

    with store.connect(db_path, read_only=True) as con:
        runs = reports.run_history(con, dataset=dataset, limit=limit)
    if as_json:
        click.echo(json.dumps(runs, default=str))
        return
    if not runs:
        click.echo("no runs yet" + (f" of dataset {dataset!r}" if dataset else ""))
        return
    click.echo(_runs_table(runs))


def _run_note(run: dict[str, Any]) -> str:
    if run["outcome"] == "blocked" and run["quality"]:
        return "quality gate: " + "; ".join(run["quality"]["reasons"])
    return run["message"] or ""


def _runs_table(runs: list[dict[str, Any]]) -> str:
    import pandas as pd

    def num(v: Any) -> str:
        return "" if v is None else str(v)

    def decided(d: Any) -> str:
        d = d or {}
        return f"{d.get('relabel', 0)}/{d.get('exclude', 0)}/{d.get('keep', 0)}" if d else ""

    table = pd.DataFrame(
        {
            "run_id": [r["run_id"] for r in runs],
            "dataset": [r["dataset"] for r in runs],
            "outcome": [r["outcome"] for r in runs],
            "started": [(r["started_at"] or "")[:19].replace("T", " ") for r in runs],
            "rows": [num(r["rows_in"]) for r in runs],
            "quarant.": [num(r["rows_quarantined"]) for r in runs],
            "issues": [num(r["label_issues"]) for r in runs],
            "rel/exc/keep": [decided(r["decisions"]) for r in runs],
            "carried": [num(r.get("carried")) for r in runs],
            "exported": [
                f"{r['exported_train']}+{r['exported_val']}" if r["exported_train"] is not None else "" for r in runs
            ],
            "secs": [f"{r['duration_s']:.0f}" if r["duration_s"] is not None else "" for r in runs],
            "message": [_run_note(r)[:80] for r in runs],
        }
    )
    return table.to_string(index=False)
