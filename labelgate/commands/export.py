"""``labelgate export``: write a run's fine-tuning files again with its latest decisions."""

from __future__ import annotations

import json

import click

from labelgate.clikit import db_option, handle_errors, verbose_option
from labelgate.errors import ConfigError


@click.command("export")
@db_option
@click.option("--run", "run", default="latest", show_default=True, help="Run id, unique prefix, or 'latest'.")
@click.option("--out", "out_dir", default="exports", show_default=True, help="Folder of the export files.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line of the export's figures.")
@verbose_option
@handle_errors
def export_cmd(db_path: str, run: str, out_dir: str, as_json: bool, verbose: bool) -> None:
    """Write a run's fine-tuning files again with its latest decisions (e.g. after a review)."""
    from labelgate import store
    from labelgate.config import CurateParams
    from labelgate.tasks.export import export_run

    with store.connect(db_path, read_only=True) as con:
        run_id = store.resolve_run(con, run)
        record = store.run_record(con, run_id)
    if record["status"] != "completed" and "label_issues" not in record["metrics_json"]:
        raise ConfigError(f"run {run_id} has no detection results (status {record['status']}); nothing to export")
    params = CurateParams(**record["params_json"])
    result = export_run(db_path, run_id, out_dir, params, apply=params.gate != "none")
    if as_json:
        click.echo(json.dumps({"run_id": run_id, **result}, sort_keys=True))
    else:
        click.echo(f"run {run_id}: exported train {result['exported_train']}, validation {result['exported_val']}")
        for f in [*result["export_files"], result["manifest"]]:
            click.echo(f"  {f}")
