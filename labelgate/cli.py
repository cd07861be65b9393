"""labelgate's command line: a thin layer that parses options, calls the library and prints.

Every error a user can cause is printed as one line (``labelgate: error: …``) with a non-zero exit
code; a traceback is shown only with ``--verbose``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from labelgate.clikit import db_option, handle_errors, make_params, prepare_environment, verbose_option
from labelgate.commands.evaluate import trainer_options, trainer_settings
from labelgate.core.metrics import (
    DetectMetrics,
    EmbedMetrics,
    ExportMetrics,
    GateMetrics,
    IngestMetrics,
    MemoryMetrics,
    ReviewMetrics,
    RunMetrics,
)
from labelgate.errors import ConfigError, LabelgateError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="labelgate")
def main() -> None:
    """labelgate: find label errors in a text dataset and export clean LLM fine-tuning files."""
    prepare_environment(verbose=bool({"-v", "--verbose"} & set(sys.argv[1:])))


def _run_options(func: Callable[..., Any]) -> Callable[..., Any]:
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
            type=float,
            help="Auto gate: also relabel when the model's own probability of the suggestion is >= this.  "
            "[default: 0.6]",
        ),
        click.option(
            "--exclude-threshold",
            type=float,
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


def _curate(input_path: str, db_path: str, out_dir: str, params: Any) -> RunMetrics:
    """Run the curate flow in this process against Prefect's ephemeral local API (with the params' task runner)."""
    from labelgate.flows.curate import curate_flow

    result = curate_flow(params)(input_path=input_path, db_path=db_path, out_dir=out_dir, params=params)
    return RunMetrics.from_json(result)


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path())
@_run_options
@trainer_options
@db_option
@click.option("--out", "out_dir", default="exports", show_default=True, help="Folder of the export files.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of the run's figures.")
@verbose_option
@handle_errors
def run(input_path: str, db_path: str, out_dir: str, as_json: bool, verbose: bool, **options: Any) -> None:
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
    metrics = _curate(input_path, db_path, out_dir, params)
    _print_summary(metrics, db_path, params)
    if as_json:
        click.echo(json.dumps(_json_summary(metrics), sort_keys=True))


#: the run options the pre-flight check of the input file reads
_INPUT_FIELDS = (
    "input_format",
    "text_col",
    "label_col",
    "id_col",
    "annotator_col",
    "encoding",
    "delimiter",
    "label_case",
    "test_path",
)


def _checked_params(input_path: str, chosen: dict[str, Any]) -> Any:
    """The run's CurateParams, after the pre-flight check of the input (no Prefect, no model: well under a second).

    Raises:
        ConfigError / PreflightError: every problem found in the options and the input file, in one error.
    """
    from labelgate.preflight import PreflightError, check_run_input

    problems: list[str] = []
    params = None
    try:
        params = make_params(**chosen)
    except ConfigError as err:
        problems.append(str(err))
    try:
        check_run_input(input_path, params or make_params(**{k: chosen[k] for k in _INPUT_FIELDS}))
    except PreflightError as err:
        if params is not None:
            raise
        problems += err.problems
    except ConfigError:
        pass  # an input option itself is invalid: already in problems
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + " | ".join(problems))
    return params


@main.command()
@db_option
@click.option("--out", "out_dir", default="exports", show_default=True, help="Folder of the export files.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of the run's figures.")
@verbose_option
@handle_errors
def demo(db_path: str, out_dir: str, as_json: bool, verbose: bool) -> None:
    """Run the whole chain on the bundled sample (support tickets with injected label errors)."""
    sample = sample_path()
    params = make_params(dataset="sample-support-tickets", task_description="Classify the customer support message")
    prepare_environment(verbose)
    if as_json:
        os.environ.setdefault("LABELGATE_PROGRESS", "0")
    click.echo(f"labelgate demo: curating the bundled sample {sample}")
    metrics = _curate(str(sample), db_path, out_dir, params)
    truth = sample.with_name("sample_truth.csv")
    extra = [_demo_score(truth, db_path, str(metrics.run_id))] if truth.exists() else []
    _print_summary(metrics, db_path, params, extra=extra)
    if as_json:
        click.echo(json.dumps(_json_summary(metrics), sort_keys=True))


def sample_path() -> Path:
    """The bundled sample CSV (``data/sample.csv`` of the source tree, or the installed copy)."""
    here = Path(__file__).resolve().parent
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


#: keys of the run's metrics JSON that `labelgate run --json` adds to :data:`labelgate.flows.curate.SUMMARY_KEYS`
#: when the run recorded them
JSON_SUMMARY_KEYS = (
    "dataset_version",
    "input_sha256",
    "decisions",
    "texts_embedded",
    "texts_cached",
    "embed_seconds",
    "manifest",
    "export_dir",
    "seconds",
    "gate",
    "review",
    "leakage_excluded",
    "export_formats",
    "export_warnings",
    "evaluation",
    "quality",
    "warnings",
    "dropped_classes",
    "memory",
    "detection_reused_from",
    "export_version",
)


def _json_summary(metrics: RunMetrics) -> dict[str, Any]:
    """The `run --json` / `demo --json` line: documented key names of the stored metrics (docs/cli.md)."""
    from labelgate.flows.curate import SUMMARY_KEYS

    data = metrics.to_json()  # the stored JSON's key names are the contract
    out = {k: data.get(k) for k in SUMMARY_KEYS}
    out.update({k: data[k] for k in JSON_SUMMARY_KEYS if k in data})
    manifest = metrics.export.manifest if metrics.export else None
    out["export_files"] = [*metrics.export_files, *([manifest] if manifest else [])]
    return out


def _print_summary(m: RunMetrics, db_path: str, params: Any, *, extra: list[str] | None = None) -> None:
    ingested = m.ingest or IngestMetrics()
    embedded = m.embed or EmbedMetrics()
    detected = m.detect or DetectMetrics()
    exported = m.export or ExportMetrics()
    gated = m.decisions or GateMetrics()
    reasons = m.quarantine_reasons
    reason_text = ", ".join(f"{k}: {v}" for k, v in list(reasons.items())[:4])
    if len(reasons) > 4:
        reason_text += f", {len(reasons) - 4} more kinds"
    if sum(reasons.values()) > (m.rows_quarantined or 0):
        reason_text += " (a row can fail several checks)"
    lines = [
        f"labelgate run {m.run_id}  (dataset version {ingested.dataset_version}, {m.seconds or 0:.1f} s)",
        f"  rows in          {m.rows_in:>6}   ({ingested.input_format}, ids from {ingested.id_source})",
        f"  valid            {m.rows_valid:>6}",
        f"  quarantined      {m.rows_quarantined:>6}" + (f"   {reason_text}" if reason_text else ""),
        f"  embedded         {embedded.texts_embedded:>6}   new, {embedded.texts_cached} from cache "
        f"({embedded.embed_seconds or 0:.1f} s)",
        f"  label issues     {detected.label_issues:>6}   "
        f"({100 * (detected.label_issue_rate or 0):.1f}% of valid rows, {detected.detector})",
    ]
    if detected.detection_reused_from:
        lines.append(
            f"  detection        reused from run {detected.detection_reused_from} (same rows, settings and model)"
        )
    others = {t: n for t, n in (detected.issues_by_type or {}).items() if t != "label" and n}
    if others:
        lines.append(
            f"  other issues     {sum(others.values()):>6}   "
            + ", ".join(f"{t.replace('_', ' ')} {n}" for t, n in others.items())
        )
    memory = m.memory or MemoryMetrics()
    if memory.rows_seen:
        lines.append(
            f"  new rows         {memory.rows_new or 0:>6}   (text and label in no earlier completed run of the "
            f"dataset; {memory.rows_seen} seen before)"
        )
    if memory.carried:
        from labelgate.core.memory import describe_carried

        lines.append(f"  remembered       {memory.carried:>6}   {describe_carried(memory)}")
    counts = f"relabel {gated.count('relabel')}, keep {gated.count('keep')}, exclude {gated.count('exclude')}"
    if m.gate == "auto":
        lines.append(
            f"  auto gate        {counts} "
            f"(relabel when P(true) >= {params.relabel_threshold:.2f}"
            + (
                f" or model P >= {params.relabel_model_threshold:.2f})"
                if params.relabel_model_threshold is not None
                else ")"
            )
        )
    elif m.gate == "human":
        r = gated.review or ReviewMetrics()
        who = f" by {r.reviewer}" if r.reviewer else ""
        lines.append(
            f"  human gate       {counts} "
            f"({r.reviewed or 0} of {r.flagged or 0} reviewed{who}"
            + (f", {r.policy_decided} by policy" if r.policy_decided else "")
            + (", review timed out" if r.timed_out else "")
            + ")"
        )
    else:
        lines.append("  gate             none: exported as given")
    lines.append(f"  exported         train {exported.exported_train}, validation {exported.exported_val}")
    files = [*m.export_files, exported.manifest]
    lines += [f"  {'files' if i == 0 else '':<16} {f}" for i, f in enumerate(f for f in files if f)]
    lines += [f"  note: {n}" for n in m.notes]
    lines += [f"  WARNING: {w}" for w in m.warnings]
    if exported.leakage_excluded:
        lines.append(
            f"  leakage          {exported.leakage_excluded} training rows excluded: they leak the --test file"
        )
    lines += [f"  warning: {w}" for w in exported.export_warnings or []]
    from labelgate.core.evaluate import comparisons_from_summary, format_overview

    ev = m.evaluation
    comparisons = comparisons_from_summary(ev.to_json() if ev else None)
    if comparisons and ev is not None:
        lines += [
            "",
            f"evaluation on {ev.n_test} test rows of {ev.test_path} (trained on raw vs cleaned rows; "
            "per-class F1: labelgate evaluate)",
            format_overview(comparisons),
            "",
        ]
    lines += extra or []
    lines.append(f"next: labelgate issues --db {db_path} --run {m.run_id} --format table")
    click.echo("\n".join(lines))


@main.command("issues")
@db_option
@click.option("--run", "run", default="latest", show_default=True, help="Run id, unique prefix, or 'latest'.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--all", "all_rows", is_flag=True, help="Every valid row, not only the flagged ones.")
@click.option("--limit", type=int, default=None, help="At most this many rows (most severe first).")
@click.option("--width", type=int, default=None, help="Table width in characters.  [default: the terminal's]")
@verbose_option
@handle_errors
def issues_cmd(
    db_path: str, run: str, fmt: str, all_rows: bool, limit: int | None, width: int | None, verbose: bool
) -> None:
    """Print a run's flagged rows (every issue type, with reasons and the latest decision), most severe first.

    Severity is the largest (1 - score) over a row's flagged issue types. Decision columns: decision
    (keep/relabel/exclude), decision_label, decided_by (policy, human:REVIEWER, ...), decided_at.
    """
    from labelgate import store
    from labelgate.services import reports

    with store.connect(db_path, read_only=True) as con:
        run_id = store.resolve_run(con, run)
        df = reports.issues_frame(con, run_id, flagged_only=not all_rows)
        df = reports.with_decisions(df, store.latest_decisions(con, run_id))
    if limit is not None:
        df = df.head(limit)
    if fmt == "json":
        click.echo(df.to_json(orient="records", force_ascii=False))
        return
    joined = df.assign(
        issue_types=df["issue_types"].map(",".join), reasons=df["reasons"].map("; ".join)
    )  # list cells -> one string each
    if fmt == "csv":
        click.echo(joined.to_csv(index=False, float_format="%.4f"), nl=False)
        return
    click.echo(f"run {run_id}: {len(df)} {'rows' if all_rows else 'flagged rows'}, most severe first")
    if not df.empty:
        import shutil

        click.echo(_issues_table(joined, width or shutil.get_terminal_size((120, 24)).columns))


def _clip(value: object, width: int) -> str:
    text = " ".join(str(value if value is not None and value == value else "").split())
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _issues_table(df: Any, width: int) -> str:
    """The issues as a left-aligned table that fits in ``width`` characters (text and reasons share what is left)."""
    width = max(width, 60)

    def decision(row: Any) -> str:
        if not row["decision"]:
            return ""
        what = f"{row['decision']} {row['decision_label']}" if row["decision"] == "relabel" else row["decision"]
        return f"{what} ({row['decided_by']})"

    def suggestion(row: Any) -> str:
        if not isinstance(row["suggested_label"], str):
            return ""
        return f"{row['suggested_label']} {row['suggested_prob']:.2f}"

    fixed = {
        "id": [str(v) for v in df["id"]],
        "issues": [_first_and_count(v) for v in df["issue_types"]],
        "given": [str(v) for v in df["given_label"]],
        "suggested": [suggestion(r) for _, r in df.iterrows()],
        "decision": [decision(r) for _, r in df.iterrows()],
    }
    caps = {"id": 18, "issues": 20, "given": 16, "suggested": 20, "decision": 28}
    widths = {k: min(caps[k], max(len(k), *(len(v) for v in vals))) for k, vals in fixed.items()}
    seps = 2 * (len(widths) + 1)
    floors = {"id": 6, "issues": 8, "given": 8, "suggested": 10, "decision": 16}  # the decision stays readable
    while sum(widths.values()) + seps + 20 > width:  # narrow terminal: shrink the widest column above its floor
        above = [k for k in widths if widths[k] > floors[k]]
        if not above:
            break
        widths[max(above, key=lambda k: widths[k] - floors[k])] -= 1
    rest = width - sum(widths.values()) - seps
    show_reasons = rest >= 60  # else the text gets the room (reasons: a wider --width, or --format csv)
    text_w = max(12, rest * 3 // 5 if show_reasons else rest + 2)
    reason_w = max(10, rest - text_w)
    header = [*(k.ljust(w) for k, w in widths.items()), "text".ljust(text_w), *(["reasons"] if show_reasons else [])]
    lines = ["  ".join(header).rstrip()]
    for i in range(len(df)):
        cells = [_clip(fixed[k][i], w).ljust(w) for k, w in widths.items()]
        cells.append(_clip(df["text"].iloc[i], text_w).ljust(text_w))
        if show_reasons:
            cells.append(_clip(df["reasons"].iloc[i], reason_w))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _first_and_count(types: str) -> str:
    """``"label,near_duplicate,conflicting_label"`` -> ``"label +2"`` (the most severe type, then how many more)."""
    parts = [t for t in types.split(",") if t]
    return "" if not parts else parts[0] + (f" +{len(parts) - 1}" if len(parts) > 1 else "")


@main.command("runs")
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


def _register_commands() -> None:
    """Attach the commands that live in their own modules (labelgate/commands/)."""
    from labelgate.commands.annotators import annotators_cmd
    from labelgate.commands.deploy import deploy_cmd
    from labelgate.commands.evaluate import evaluate_cmd
    from labelgate.commands.export import export_cmd
    from labelgate.commands.memory import history_cmd, memory_cmd
    from labelgate.commands.review import review_cmd
    from labelgate.commands.serve import serve_cmd

    main.add_command(export_cmd)
    main.add_command(evaluate_cmd)
    main.add_command(serve_cmd)
    main.add_command(review_cmd)
    main.add_command(deploy_cmd)
    main.add_command(history_cmd)
    main.add_command(memory_cmd)
    main.add_command(annotators_cmd)


_register_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
