"""``labelgate run``: curate an input file (or a folder or glob of batch files) with the Prefect flow ``curate``.

The options are checked and the input is read for its header and classes first (:mod:`labelgate.preflight`),
before Prefect or a model starts, so a wrong column or a one-class file is reported in well under a second.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import click

from labelgate.clikit import (
    ThresholdOrOff,
    db_option,
    handle_errors,
    make_params,
    prepare_environment,
    verbose_option,
)
from labelgate.commands.evaluate import trainer_options, trainer_settings
from labelgate.commands.summary import curate_in_process, json_summary, print_summary
from labelgate.errors import ConfigError


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options of ``labelgate run`` that set CurateParams fields (each named after its field)."""
    options = [
        click.option("--text-col", help="Column/key of the text.  [default: text]"),
        click.option("--label-col", help="Column/key of the label.  [default: label]"),
        click.option("--id-col", help="Column of a stable row id.  [default: 'id' if present, else a content hash]"),
        click.option(
            "--annotator-col", help="Several annotators per item: the column naming who gave each label (long format)."
        ),
        click.option(
            "--input-format",
            type=click.Choice(["auto", "csv", "tsv", "jsonl", "chat-jsonl", "parquet"]),
            help="Input format.  [default: auto, by extension]",
        ),
        click.option("--encoding", help="Encoding of CSV/JSONL input.  [default: utf-8]"),
        click.option("--delimiter", help="CSV delimiter.  [default: ',', tab for .tsv]"),
        click.option("--label-case", type=click.Choice(["keep", "lower"]), help="Fold label case.  [default: keep]"),
        click.option("--dataset", help="Dataset name grouping runs.  [default: input file stem]"),
        click.option(
            "--gate",
            type=click.Choice(["auto", "none", "human"]),
            help="auto: a policy decides; none: export as-is; human: pause for a reviewer.  [default: auto]",
        ),
        click.option(
            "--review-timeout", "review_timeout_s", type=int, help="Human gate: seconds to wait.  [default: 86400]"
        ),
        click.option(
            "--on-review-timeout",
            type=click.Choice(["fail", "auto"]),
            help="Human gate: fail, or apply the auto policy, when the wait ends.  [default: fail]",
        ),
        click.option(
            "--test", "test_path", help="Held-out test file: never exported, checked for leakage, evaluated on."
        ),
        click.option("--format", "export_formats", help="Export formats, comma-separated.  [default: openai-chat]"),
        click.option(
            "--relabel-threshold",
            type=float,
            help="Auto gate: relabel when the probability that the suggestion is the true label (noise-corrected) "
            "is >= this.  [default: 0.5]",
        ),
        click.option(
            "--relabel-model-threshold",
            type=ThresholdOrOff(),
            help="Auto gate: also relabel when the model's own probability of the suggestion is >= this ('off': "
            "never).  [default: 0.6]",
        ),
        click.option(
            "--exclude-threshold",
            type=ThresholdOrOff(),
            help="Auto gate: exclude flagged rows scored below this.  [default: never]",
        ),
        click.option(
            "--exclude-below-chance/--keep-below-chance",
            "exclude_below_chance",
            default=None,
            help="Auto gate: exclude flagged label issues it does not relabel when their given label scores "
            "below chance.  [default: keep them]",
        ),
        click.option(
            "--exclude-doubtful",
            type=ThresholdOrOff(),
            help="Auto gate: exclude flagged label issues it does not relabel when the probability that the "
            "suggestion is the true label (noise-corrected) is >= this ('off': keep them as given).  [default: 0.3]",
        ),
        click.option(
            "--near-duplicates",
            type=click.Choice(["keep", "exclude"]),
            help="Auto gate: keep near duplicates whose labels agree (paraphrases) or exclude the later copies.  "
            "[default: keep]",
        ),
        click.option(
            "--conflicts",
            type=click.Choice(["resolve", "keep", "exclude"]),
            help="Auto gate: duplicates whose labels still differ: resolve (keep the better-supported copy, relabel "
            "or exclude the other), keep both, or exclude both.  [default: resolve]",
        ),
        click.option(
            "--low-agreement",
            type=click.Choice(["keep", "review", "exclude"]),
            help="Several annotators per item: items whose agreement (share of labels equal to the consensus) is "
            "below --min-agreement: keep them, flag them for review (the human gate queues them; the auto gate keeps "
            "them), or flag them and let the auto gate exclude them.  [default: keep]",
        ),
        click.option(
            "--min-agreement",
            type=float,
            help="Several annotators per item: an item with 2+ labels is low agreement when its agreement is below "
            "this (0.5 passes a 1-of-2 split; 0.51 catches it; 0.67 catches 2 of 3).  [default: 0.5]",
        ),
        click.option(
            "--carry-policy-decisions/--no-carry-policy-decisions",
            "carry_policy_decisions",
            default=None,
            help="Curation memory: also carry the policy's decisions into later runs of the dataset (a person's "
            "decisions always are).  [default: off, the policy re-decides]",
        ),
        click.option("--model", help="sentence-transformers model name or path.  [default: bundled all-MiniLM-L6-v2]"),
        click.option(
            "--embed-backend",
            type=click.Choice(["auto", "torch", "torch-bf16", "onnx"]),
            help="Embedding backend; auto: bf16 where the CPU has it, else ONNX, else torch.  [default: auto]",
        ),
        click.option("--batch-size", type=int, help="Embedding batch size.  [default: 64]"),
        click.option(
            "--folds",
            "n_folds",
            type=int,
            help="Cross-validation folds.  [default: auto: 20 up to 5,000 rows, 5 from 20,000]",
        ),
        click.option("--seed", type=int, help="Seed of folds and split.  [default: 0]"),
        click.option("--val-fraction", type=float, help="Validation share per class.  [default: 0.1]"),
        click.option(
            "--system-prompt", help="System message of each example ('' omits it).  [default: names task and labels]"
        ),
        click.option(
            "--strict",
            is_flag=True,
            default=None,
            help="Stop instead of warning when a whole class would be left out (too few rows).  [default: warn]",
        ),
        click.option("--min-text-chars", type=int, help="Quarantine shorter texts.  [default: 1]"),
        click.option("--max-text-chars", type=int, help="Quarantine longer texts.  [default: 20000]"),
        click.option(
            "--runner",
            type=click.Choice(["default", "dask"]),
            help="default: every stage in this process; dask: shard embedding and scoring over a Dask cluster "
            "(needs pip install 'labelgate[dask]').  [default: default]",
        ),
        click.option(
            "--dask-address",
            help="--runner dask: address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786.  "
            "[default: a local cluster]",
        ),
        click.option(
            "--dask-workers", type=int, help="--runner dask, no --dask-address: local worker processes.  [default: 2]"
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command("run")
@click.argument("input_path", metavar="INPUT", type=click.Path())
@run_options
@trainer_options
@db_option
@click.option("--out", "out_dir", default="exports", show_default=True, help="Folder of the export files.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of the run's figures.")
@verbose_option
@handle_errors
def run_cmd(input_path: str, db_path: str, out_dir: str, as_json: bool, verbose: bool, **options: Any) -> None:
    """Curate INPUT (CSV, TSV, JSONL, chat JSONL, Parquet) with the Prefect flow `curate`.

    INPUT may be a folder ('incoming/') or a quoted glob ('incoming/*.csv') of batch files of one format with the
    same columns: they are read in path order as one input, and the dataset name defaults to the folder's name.
    """
    from labelgate.config import CurateParams

    chosen = {k: v for k, v in options.items() if k in CurateParams.model_fields}
    unknown = set(options) - set(chosen)
    if unknown:  # an option whose name is not a CurateParams field: a programming error
        raise RuntimeError(f"run options without a CurateParams field: {sorted(unknown)}")
    if chosen["export_formats"] is not None:
        chosen["export_formats"] = [f.strip() for f in chosen["export_formats"].split(",") if f.strip()]
    chosen.update(trainer_settings(chosen))
    for name in ("dask_address", "dask_workers"):
        if chosen[name] is not None and chosen["runner"] != "dask":
            raise ConfigError(f"--{name.replace('_', '-')} is an option of --runner dask")
    params = _checked_params(input_path, chosen)
    prepare_environment(verbose)
    if as_json:  # one JSON line for a program: no progress lines (unless LABELGATE_PROGRESS asks for them)
        os.environ.setdefault("LABELGATE_PROGRESS", "0")
    metrics = curate_in_process(input_path, db_path, out_dir, params)
    print_summary(metrics, db_path, params)
    if as_json:
        click.echo(json.dumps(json_summary(metrics), sort_keys=True))


def _checked_params(input_path: str, chosen: dict[str, Any]) -> Any:
    """The run's CurateParams, after the pre-flight check of the input (no Prefect, no model: well under a second).

    Raises:
        ConfigError / PreflightError: every problem found in the options and the input file, in one error.
    """
    from labelgate.config import SETTINGS_MAP
    from labelgate.preflight import PreflightError, check_run_input

    # the options the pre-flight check reads: those of the ingest settings, and the test file
    input_fields = [*SETTINGS_MAP["ingest_settings"][2].values(), "test_path"]
    problems: list[str] = []
    params = None
    try:
        params = make_params(**chosen)
    except ConfigError as err:
        problems.append(str(err))
    try:
        read = params or make_params(**{k: chosen[k] for k in input_fields})
        check_run_input(input_path, settings=read.ingest_settings(), test_path=read.test_path)
    except PreflightError as err:
        if params is not None:
            raise
        problems += err.problems
    except ConfigError:
        pass  # an input option itself is invalid: already in problems
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + " | ".join(problems))
    return params
