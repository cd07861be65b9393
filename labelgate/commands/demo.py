"""``labelgate demo``: the whole chain on the bundled sample, scored against its truth file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from labelgate.clikit import db_option, handle_errors, make_params, prepare_environment, verbose_option
from labelgate.commands.summary import curate_in_process, json_summary, print_summary
from labelgate.errors import LabelgateError


@click.command("demo")
@db_option
@click.option("--out", "out_dir", default="exports", show_default=True, help="Folder of the export files.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of the run's figures.")
@verbose_option
@handle_errors
def demo_cmd(db_path: str, out_dir: str, as_json: bool, verbose: bool) -> None:
    """Run the whole chain on the bundled sample (support tickets with injected label errors)."""
    sample = sample_path()
    params = make_params(dataset="sample-support-tickets", task_description="Classify the customer support message")
    prepare_environment(verbose)
    if as_json:
        os.environ.setdefault("LABELGATE_PROGRESS", "0")
    click.echo(f"labelgate demo: curating the bundled sample {sample}")
    metrics = curate_in_process(str(sample), db_path, out_dir, params)
    truth = sample.with_name("sample_truth.csv")
    extra = [_demo_score(truth, db_path, str(metrics.run_id))] if truth.exists() else []
    print_summary(metrics, db_path, params, extra=extra)
    if as_json:
        click.echo(json.dumps(json_summary(metrics), sort_keys=True))


def sample_path() -> Path:
    """The bundled sample CSV (``data/sample.csv`` of the source tree, or the installed copy)."""
    here = Path(__file__).resolve().parents[1]  # the package folder
    for candidate in (here.parent / "data" / "sample.csv", here / "sample_data" / "sample.csv"):
        if candidate.exists():
            return candidate
    raise LabelgateError("the bundled sample is missing from this installation; reinstall labelgate")


def _demo_score(truth_path: Path, db_path: str, run_id: str) -> str:
    import pandas as pd

    from labelgate import store
    from labelgate.services import reports

    truth = pd.read_csv(truth_path, dtype=str, keep_default_na=False)
    errors = set(truth.loc[truth["is_label_error"] == "True", "id"])
    with store.connect(db_path, read_only=True) as con:
        frame = reports.issues_frame(con, run_id)
    flagged = set(frame.loc[frame["is_label_issue"], "id"])
    hit = len(errors & flagged)
    precision = hit / len(flagged) if flagged else 0.0
    recall = hit / len(errors) if errors else 0.0
    return (
        f"  vs truth file    {hit} of {len(errors)} injected label errors flagged "
        f"(precision {precision:.2f}, recall {recall:.2f})"
    )
