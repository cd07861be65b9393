"""``labelgate evaluate``: score a proxy classifier trained on a run's raw vs cleaned rows on a test file."""

from __future__ import annotations

import json

import click

from labelgate.clikit import db_option, handle_errors, make_params, verbose_option
from labelgate.errors import ConfigError


@click.command("evaluate")
@db_option
@click.option("--run", "run", default="latest", show_default=True, help="Run id, unique prefix, or 'latest'.")
@click.option("--test", "test_path", help="Held-out test file (same columns as the input).  [default: the run's]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line of the scores.")
@verbose_option
@handle_errors
def evaluate_cmd(db_path: str, run: str, test_path: str | None, as_json: bool, verbose: bool) -> None:
    """Train a fast proxy (TF-IDF + logistic regression) on the raw and on the cleaned training rows.

    Prints test accuracy, macro-F1 and per-class F1 side by side and stores them in the database
    (table evaluations). Rows that leak the test set are left out of both training sets.
    """
    from labelgate import store
    from labelgate.core.evaluate import format_table
    from labelgate.tasks.evaluate import evaluate_run

    with store.connect(db_path, read_only=True) as con:
        run_id = store.resolve_run(con, run)
        record = store.run_record(con, run_id)
    if record["status"] != "completed" and "label_issues" not in record["metrics_json"]:
        raise ConfigError(f"run {run_id} has no detection results (status {record['status']}); nothing to evaluate")
    params = make_params(**record["params_json"])
    comparison, summary = evaluate_run(db_path, run_id, params, test_path=test_path)
    if as_json:
        click.echo(json.dumps({"run_id": run_id, **summary}, sort_keys=True))
        return
    click.echo(
        f"run {run_id}: proxy classifier trained on raw vs cleaned rows, scored on {comparison.n_test} test rows\n"
        f"  test file {summary['test_path']}\n"
        f"  model     {comparison.model}\n"
        f"  left out  {summary['leakage_excluded']} training rows that leak the test set (both sides)\n"
    )
    click.echo(format_table(comparison))
