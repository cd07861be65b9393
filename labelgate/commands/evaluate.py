"""``labelgate evaluate``: classifiers trained on a run's raw vs cleaned rows, scored on a test file."""

from __future__ import annotations

import json
from typing import Any

import click

from labelgate.clikit import db_option, handle_errors, stored_params, verbose_option
from labelgate.core.metrics import RunMetrics
from labelgate.errors import ConfigError


def trainer_options(func: Any) -> Any:
    """``--trainer``, ``--finetune-model``, ``--finetune-epochs``, ``--finetune-max-seconds`` (shared with ``run``)."""
    options = [
        click.option(
            "--trainer",
            "eval_trainers",
            help="Evaluation trainers, comma-separated: proxy (TF-IDF + logistic regression, C=1), proxy-c4 (C=4, "
            "less regularised), finetune (fine-tune an encoder with a classification head; ~80 s of CPU per 1,000 "
            "rows per epoch per side on one core, far less on a GPU).  [default: proxy,proxy-c4]",
        ),
        click.option(
            "--finetune-model",
            help="finetune: a local sentence-transformers / Hugging Face model folder.  [default: bundled MiniLM]",
        ),
        click.option("--finetune-epochs", type=float, help="finetune: epochs (same steps both sides).  [default: 3]"),
        click.option(
            "--finetune-max-seconds",
            type=float,
            help="finetune: wall-time budget of the training, both sides together.  [default: none]",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def trainer_settings(options: dict[str, Any]) -> dict[str, Any]:
    """The CurateParams fields of :func:`trainer_options` the user set, ``--trainer`` parsed and checked.

    Raises:
        ConfigError: an unknown or empty ``--trainer`` (the message names the option).
    """
    names = ("finetune_model", "finetune_epochs", "finetune_max_seconds")
    out = {k: options[k] for k in names if options.get(k) is not None}
    if options.get("eval_trainers") is not None:
        from labelgate.core.evaluate import parse_trainers  # only then: `run`'s pre-flight stays free of pandas

        out["eval_trainers"] = parse_trainers(options["eval_trainers"], option="--trainer")
    return out


@click.command("evaluate")
@db_option
@click.option("--run", "run", default="latest", show_default=True, help="Run id, unique prefix, or 'latest'.")
@click.option("--test", "test_path", help="Held-out test file (same columns as the input).  [default: the run's]")
@trainer_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line of the scores (every trainer).")
@verbose_option
@handle_errors
def evaluate_cmd(db_path: str, run: str, test_path: str | None, as_json: bool, verbose: bool, **options: Any) -> None:
    """Train each trainer on the raw and on the cleaned training rows, with the same seed and budget.

    Prints test accuracy and macro-F1 of every trainer side by side, then each trainer's per-class F1, and
    stores them in the database (table evaluations). Rows that leak the test set are left out of both training
    sets. The default trainers differ only in regularisation (C=1 and C=4), which shows how much the measured
    effect of cleaning depends on it; finetune is as sensitive to label noise as fine-tuning is.
    """
    from labelgate import store
    from labelgate.core.evaluate import format_details, format_overview, format_table
    from labelgate.services.evaluate import evaluate_run

    settings = trainer_settings(options)
    with store.connect(db_path, read_only=True) as con:
        run_id = store.resolve_run(con, run)
        record = store.run_record(con, run_id)
    if record["status"] != "completed" and not RunMetrics.from_json(record["metrics_json"]).detected:
        raise ConfigError(f"run {run_id} has no detection results (status {record['status']}); nothing to evaluate")
    params = stored_params(record["params_json"], **settings)
    # the fine-tuning progress bar: on a terminal's stderr, never with --json
    progress = False if as_json else None
    evaluation = evaluate_run(db_path, run_id, params, test_path=test_path, progress=progress)
    comparisons = evaluation.comparisons
    if as_json:
        shown = {c.trainer for c in comparisons}
        trainers = {k: v for k, v in evaluation.trainers.items() if k in shown}
        click.echo(json.dumps({"run_id": run_id, **evaluation.to_dict(), "trainers": trainers}, sort_keys=True))
        return
    click.echo(
        f"run {run_id}: {len(comparisons)} trainer(s) trained on raw vs cleaned rows, scored on "
        f"{evaluation.n_test} test rows\n"
        f"  test file {evaluation.test_path}\n"
        f"  left out  {evaluation.leakage_excluded} training rows that leak the test set (both sides)\n"
    )
    click.echo(format_overview(comparisons))
    for c in comparisons:
        extra = format_details(c.details)
        click.echo(f"\n{c.trainer}: {c.model}" + (f"\n  {extra}" if extra else ""))
        click.echo(format_table(c))
