"""``labelgate history`` and ``labelgate memory``: the curation memory from the command line.

``labelgate history ROW_ID`` prints every decision on the row's content (its text and given label) in every run
of its dataset, and every memory entry: who, when, why. ``labelgate memory list | revoke | set`` lists the
remembered decisions, revokes one (later runs carry nothing for that content) or changes it (a new decision on
the row in the run, remembered in its turn). See :mod:`labelgate.services.memory`.
"""

from __future__ import annotations

import json
from typing import Any

import click

from labelgate.clikit import db_option, handle_errors, verbose_option

run_option = click.option(
    "--run", "run", default="latest", show_default=True, help="Run holding ROW_ID: id, unique prefix, or 'latest'."
)
reviewer_option = click.option(
    "--reviewer", default=None, help="Your name, stored with the entry.  [default: your user name]"
)


def _when(value: Any) -> str:
    return str(value or "")[:19].replace("T", " ")


def _describe(action: Any, label: Any) -> str:
    return {"relabel": f"relabel -> {label}", "keep": f"keep {label}", "exclude": "exclude", "revoke": "revoke"}.get(
        str(action), str(action)
    )


def _print_history(found: dict[str, Any]) -> None:
    from labelgate.commands.review import safe_text

    text = safe_text(found["text"])
    click.echo(
        f"row {found['row_id']} of run {found['run_id']} (dataset {found['dataset']}): given {found['given_label']}, "
        f"copy {found['occurrence']} of this content"
    )
    click.echo(f"  text      {text[:100]}{'…' if len(text) > 100 else ''}")
    current = found["current"]
    if current:
        who = f"{current['source']} {current['reviewer'] or ''}".strip()
        click.echo(
            f"  remembered  {_describe(current['action'], current['label'])} ({who}, run {current['run_id']}, "
            f"{_when(current['created_at'])}): later runs of the dataset apply it"
        )
    else:
        click.echo("  remembered  nothing: later runs decide this content again")
    click.echo(f"decisions on this content ({len(found['decisions'])}, oldest first):")
    for d in found["decisions"]:
        who = d["reviewer"] or ""
        click.echo(
            f"  #{d['decision_id']:<6} {_when(d['decided_at'])}  run {d['run_id']}  row {d['row_id']}  "
            f"{d['source']:<6} {safe_text(who):<12} {_describe(d['action'], d['label']):<22} "
            f"{safe_text(d['reason'] or '')[:80]}"
        )
    click.echo(f"memory entries ({len(found['memory'])}, oldest first):")
    for m in found["memory"]:
        click.echo(
            f"  m{m['memory_id']:<6} {_when(m['created_at'])}  run {m['run_id']}  row {m['row_id']}  copy "
            f"{m['occurrence']}  {m['source']:<6} {safe_text(m['reviewer'] or ''):<12} "
            f"{_describe(m['action'], m['label']):<22} {safe_text(m['reason'] or '')[:80]}"
        )


@click.command("history")
@click.argument("row_id")
@db_option
@run_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@verbose_option
@handle_errors
def history_cmd(row_id: str, db_path: str, run: str, as_json: bool, verbose: bool) -> None:
    """Every decision on ROW_ID's content (text and given label) across the runs of its dataset: who, when, why."""
    from labelgate import store
    from labelgate.services import memory

    with store.connect(db_path, read_only=True) as con:
        run_id = store.resolve_run(con, run)
        found = memory.history(con, run_id, row_id)
    if as_json:
        click.echo(json.dumps(found, default=str))
        return
    _print_history(found)


@click.group("memory")
def memory_cmd() -> None:
    """The curation memory: decisions a person made, carried into every later run of the dataset."""


@memory_cmd.command("list")
@db_option
@click.option("--dataset", default=None, help="Only this dataset.  [default: every dataset]")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@verbose_option
@handle_errors
def memory_list(db_path: str, dataset: str | None, as_json: bool, verbose: bool) -> None:
    """List the remembered decisions (not revoked), newest first."""
    from labelgate import store
    from labelgate.services import memory

    with store.connect(db_path, read_only=True) as con:
        found = memory.remembered(con, dataset)
    if as_json:
        click.echo(json.dumps(found, default=str))
        return
    if not found:
        click.echo("no remembered decisions" + (f" for dataset {dataset!r}" if dataset else ""))
        return
    click.echo(f"{len(found)} remembered decisions")
    for m in found:
        click.echo(
            f"  {m['dataset']}  row {m['row_id']} (run {m['run_id']})  {_describe(m['action'], m['label'])}  "
            f"by {m['source']} {m['reviewer'] or ''}  {_when(m['created_at'])}"
        )


@memory_cmd.command("revoke")
@click.argument("row_id")
@db_option
@run_option
@reviewer_option
@click.option("--reason", default=None, help="Why (stored with the entry).")
@verbose_option
@handle_errors
def memory_revoke(db_path: str, row_id: str, run: str, reviewer: str | None, reason: str | None, verbose: bool) -> None:
    """Revoke the remembered decision of ROW_ID's content: later runs decide it again (the log keeps it)."""
    from labelgate import store
    from labelgate.services import memory, review

    with store.connect(db_path) as con:
        run_id = store.resolve_run(con, run)
        found = memory.revoke(con, run_id, row_id, reviewer=reviewer or review.default_reviewer(), reason=reason)
    click.echo(f"revoked: later runs of {found['dataset']} carry no decision for row {row_id}'s content")


@memory_cmd.command("set")
@click.argument("row_id")
@db_option
@run_option
@click.option("--action", type=click.Choice(["keep", "relabel", "exclude"]), required=True, help="The decision.")
@click.option("--label", default=None, help="--action relabel: the new label.")
@reviewer_option
@click.option("--reason", default=None, help="Why (stored with the decision).")
@verbose_option
@handle_errors
def memory_set(
    db_path: str,
    row_id: str,
    run: str,
    action: str,
    label: str | None,
    reviewer: str | None,
    reason: str | None,
    verbose: bool,
) -> None:
    """Change the remembered decision of ROW_ID's content: a new decision on the row in the run, remembered."""
    from labelgate import store
    from labelgate.services import memory, review

    with store.connect(db_path) as con:
        run_id = store.resolve_run(con, run)
        found = memory.change(
            con,
            run_id,
            row_id,
            action=action,
            label=label,
            reviewer=reviewer or review.default_reviewer(),
            reason=reason,
        )
    current = found["current"] or {}
    click.echo(
        f"remembered for {found['dataset']}: row {row_id} {_describe(current.get('action'), current.get('label'))} "
        f"(run {run_id}; `labelgate export --run {run_id}` writes it, later runs carry it)"
    )
