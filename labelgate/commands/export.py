"""``labelgate export``: write a run's fine-tuning files again (other formats, templates, after a review)."""

from __future__ import annotations

import json
from typing import Any

import click

from labelgate.clikit import db_option, handle_errors, stored_params, verbose_option
from labelgate.core.metrics import RunMetrics
from labelgate.errors import ConfigError


def parse_label_map(value: str | None) -> dict[str, str] | None:
    """``'{"a": "A"}'`` (JSON object) or ``'a=A,b=B'`` → dict; None stays None.

    Raises:
        ConfigError: neither form.
    """
    if value is None:
        return None
    text = value.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError as err:
            raise ConfigError(f"--label-map: not a JSON object: {err}") from None
        if not isinstance(obj, dict) or not all(isinstance(v, str) for v in obj.values()):
            raise ConfigError("--label-map: expected a JSON object of label to answer strings")
        return {str(k): v for k, v in obj.items()}
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise ConfigError(f"--label-map: expected LABEL=ANSWER, got {item!r}")
        label, answer = item.split("=", 1)
        out[label.strip()] = answer.strip()
    return out


@click.command("export")
@db_option
@click.option("--run", "run", default="latest", show_default=True, help="Run id, unique prefix, or 'latest'.")
@click.option("--format", "formats", help="Formats, comma-separated.  [default: the run's formats]")
@click.option("--out", "out_dir", default="exports", show_default=True, help="Folder of the export files.")
@click.option("--test", "test_path", help="Held-out test file whose rows must stay out.  [default: the run's]")
@click.option("--system-prompt", help="System message ('' omits it).  [default: the run's]")
@click.option("--user-template", help="User message with {text}.  [default: the run's, '{text}']")
@click.option("--label-map", help="Label verbalisation: 'a=Answer A,b=Answer B' or a JSON object.")
@click.option("--max-tokens", "max_example_tokens", type=int, help="Per-example token limit.  [default: per format]")
@click.option("--min-examples", "min_train_examples", type=int, help="Minimum training examples (0: no check).")
@click.option("--price-per-mtok", type=float, help="Price per million training tokens, for the cost estimate.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line of the export's figures.")
@verbose_option
@handle_errors
def export_cmd(
    db_path: str, run: str, formats: str | None, out_dir: str, as_json: bool, verbose: bool, **overrides: Any
) -> None:
    """Write a run's fine-tuning files again with its latest decisions (e.g. after a review).

    Formats: openai-chat, openai-completion, hf-messages, alpaca, vertex-gemini, bedrock-claude, csv,
    parquet. Files go to OUT/<run id>/ with a manifest.json (a later export of the run to OUT/<run id>-v2/, -v3/,
    ...: earlier files are never deleted or overwritten); every file is checked first (token counts
    are offline estimates) and nothing is written when a check fails.
    """
    from labelgate import store
    from labelgate.core.formats import parse_formats
    from labelgate.services.export import export_run

    with store.connect(db_path, read_only=True) as con:
        run_id = store.resolve_run(con, run)
        record = store.run_record(con, run_id)
    if record["status"] != "completed" and not RunMetrics.from_json(record["metrics_json"]).detected:
        raise ConfigError(f"run {run_id} has no detection results (status {record['status']}); nothing to export")
    overrides["label_map"] = parse_label_map(overrides["label_map"])
    if formats is not None:
        overrides["export_formats"] = parse_formats(formats)
    params = stored_params(record["params_json"], **overrides)
    done = export_run(db_path, run_id, out_dir, params, apply=params.gate != "none")
    if as_json:
        click.echo(json.dumps({"run_id": run_id, **done.to_dict()}, sort_keys=True))
        return
    click.echo(
        f"run {run_id}: exported train {done.exported_train}, validation {done.exported_val} "
        f"({', '.join(done.export_formats)}; excluded {done.excluded}, "
        f"of which {done.leakage_excluded} leak the test set)"
        + (f"; export version {done.export_version} (earlier exports untouched)" if done.export_version > 1 else "")
    )
    for f in [*done.export_files, done.manifest]:
        click.echo(f"  {f}")
    for w in done.export_warnings:
        click.echo(f"  warning: {w}")
    click.echo(f"  token counts are estimates ({done.tokenizer})")
