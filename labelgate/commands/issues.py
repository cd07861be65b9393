"""``labelgate issues``: a run's flagged rows with reasons and the latest decision, as a table, CSV or JSON."""

from __future__ import annotations

from typing import Any

import click

from labelgate.clikit import db_option, handle_errors, verbose_option


@click.command("issues")
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

    Severity is the largest (1 - score) over a row's flagged issue types, a label issue's halved when it is
    ambiguous, so the likely mislabelled rows come first (the review queue's order). kind: a label issue's kind,
    mislabelled (a confident disagreement) or ambiguous (the text supports both labels); label_kind and ambiguity
    (0..1) in CSV and JSON. Decision columns: decision (keep/relabel/exclude), decision_label, decided_by (policy,
    human:REVIEWER, ...), decided_at.
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
        "kind": [
            str(k) if isinstance(k, str) and "label" in t.split(",") else ""
            for k, t in zip(df["label_kind"], df["issue_types"])
        ],
        "given": [str(v) for v in df["given_label"]],
        "suggested": [suggestion(r) for _, r in df.iterrows()],
        "decision": [decision(r) for _, r in df.iterrows()],
    }
    caps = {"id": 18, "issues": 20, "kind": 11, "given": 16, "suggested": 20, "decision": 28}
    widths = {k: min(caps[k], max(len(k), *(len(v) for v in vals))) for k, vals in fixed.items()}
    seps = 2 * (len(widths) + 1)
    floors = {
        "id": 6,
        "issues": 8,
        "kind": 4,
        "given": 8,
        "suggested": 10,
        "decision": 16,
    }  # the decision stays readable
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
