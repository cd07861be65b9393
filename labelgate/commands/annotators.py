"""``labelgate annotators``: the annotators of a multi-annotator run, with their estimated quality."""

from __future__ import annotations

import json

import click
import duckdb

from labelgate import store
from labelgate.clikit import db_option, handle_errors, verbose_option
from labelgate.errors import RunNotFoundError


@click.command("annotators")
@db_option
@click.option("--run", "run", default="latest", show_default=True, help="Run id, unique prefix, or 'latest'.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@verbose_option
@handle_errors
def annotators_cmd(db_path: str, run: str, fmt: str, verbose: bool) -> None:
    """List the annotators of a run (input read with --annotator-col), best first.

    Columns: annotator, quality (estimated accuracy, 0-1), quality_sd (its uncertainty), n_labels, agreement
    (share of their labels equal to the consensus).
    """
    with store.connect(db_path, read_only=True) as con:
        run_id = store.resolve_run(con, run)
        try:
            table = store.annotator_table(con, run_id)
        except duckdb.CatalogException:
            table = None
    if table is None or table.empty:
        raise RunNotFoundError(
            f"run {run_id} has no annotators: its input was not read with --annotator-col (or detection did not run)"
        )
    if fmt == "csv":
        click.echo(table.to_csv(index=False, float_format="%.4f"), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(table.round(4).to_dict(orient="records")))
    else:
        click.echo(f"run {run_id}: {len(table)} annotators")
        click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
