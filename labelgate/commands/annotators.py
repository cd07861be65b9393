"""``labelgate annotators``: the annotators of a multi-annotator run, with their estimated quality."""

from __future__ import annotations

import json

import click
import duckdb

from labelgate import store
from labelgate.clikit import db_option, handle_errors, verbose_option
from labelgate.errors import ConfigError, RunNotFoundError


@click.command("annotators")
@db_option
@click.option("--run", "run", default="latest", show_default=True, help="Run id, unique prefix, or 'latest'.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option(
    "--queue",
    type=int,
    default=None,
    metavar="N",
    help="Instead: the N items where one more label would help most (the relabelling queue).",
)
@verbose_option
@handle_errors
def annotators_cmd(db_path: str, run: str, fmt: str, queue: int | None, verbose: bool) -> None:
    """List the annotators of a run (input read with --annotator-col or several --label-col columns), best first.

    Columns: annotator, quality (estimated accuracy, 0-1), quality_sd (its uncertainty), n_labels, agreement
    (share of their labels equal to the consensus). With --queue N: the items with the weakest consensus.
    """
    if queue is not None and queue < 1:
        raise ConfigError(f"--queue must be at least 1, got {queue}")
    with store.connect(db_path, read_only=True) as con:
        run_id = store.resolve_run(con, run)
        try:
            table = store.annotator_table(con, run_id) if queue is None else store.relabel_queue(con, run_id, queue)
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
        click.echo(f"run {run_id}: {len(table)} " + ("annotators" if queue is None else "items to label again"))
        click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
