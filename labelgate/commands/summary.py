"""The summary ``labelgate run`` and ``labelgate demo`` print: the flow run in this process, its figures as lines
and as one JSON line (``--json``)."""

from __future__ import annotations

from typing import Any

import click

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


def curate_in_process(input_path: str, db_path: str, out_dir: str, params: Any) -> RunMetrics:
    """Run the curate flow in this process against Prefect's ephemeral local API (with the params' task runner).

    The ephemeral API is started first, and while it comes up this process does the stages' first slow work
    (:func:`labelgate.warmup.warm_start`); the run records its start-up seconds (:mod:`labelgate.startup`).
    """
    from labelgate.startup import command_run
    from labelgate.warmup import warm_start

    with command_run():
        warm_start(model=params.model, runner=params.runner, db_path=db_path, backend=params.embed_backend)
        from labelgate.flows.curate import curate_flow

        result = curate_flow(params)(input_path=input_path, db_path=db_path, out_dir=out_dir, params=params)
    return RunMetrics.from_json(result)


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
    "low_agreement_items",
)


def json_summary(metrics: RunMetrics) -> dict[str, Any]:
    """The `run --json` / `demo --json` line: documented key names of the stored metrics (docs/cli.md)."""
    from labelgate.flows.curate import SUMMARY_KEYS

    data = metrics.to_json()  # the stored JSON's key names are the contract
    out = {k: data.get(k) for k in SUMMARY_KEYS}
    out.update({k: data[k] for k in JSON_SUMMARY_KEYS if k in data})
    manifest = metrics.export.manifest if metrics.export else None
    out["export_files"] = [*metrics.export_files, *([manifest] if manifest else [])]
    return out


def print_summary(m: RunMetrics, db_path: str, params: Any, *, extra: list[str] | None = None) -> None:
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
    if detected.label_issues_by_kind and m.consensus is None:  # consensus issues (several annotators) have no kind
        by_kind = detected.label_issues_by_kind
        lines.append(
            f"    likely mislabelled {by_kind.get('mislabelled', 0):>4}   ambiguous {by_kind.get('ambiguous', 0)} "
            "(reviewed last)"
        )
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
    low = _low_agreement_line(m, params)
    if low:
        lines.append(low)
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
        rule = f"relabel when P(true) >= {params.relabel_threshold:.2f}"
        if params.relabel_model_threshold is not None:
            rule += f" or model P >= {params.relabel_model_threshold:.2f}"
        if params.exclude_doubtful is not None:
            rule += f", else exclude when P(true) >= {params.exclude_doubtful:.2f}"
        lines.append(f"  auto gate        {counts} ({rule})")
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


def _low_agreement_line(m: RunMetrics, params: Any) -> str | None:
    """The summary line of the low-agreement items (several annotators): how many, and what the gate did with them;
    None for a single-annotator run, or when there are none and ``--low-agreement`` is ``keep``."""
    n = m.consensus.low_agreement_items if m.consensus else None
    setting = getattr(params, "low_agreement", "keep")
    if n is None or (not n and setting == "keep"):
        return None
    if m.gate == "none" or setting == "keep":
        fate = f"kept (--low-agreement {setting}" + (", --gate none)" if m.gate == "none" else ")")
    elif m.gate == "human":
        fate = "flagged for the review"
        if setting == "exclude":
            fate += " (a review finished with auto excludes those nobody decided)"
    else:
        fate = "flagged, excluded by the auto gate" if setting == "exclude" else "flagged, kept by the auto gate"
    return (
        f"  low agreement    {n:>6}   items with under {getattr(params, 'min_agreement', 0.5):g} of their labels "
        f"agreeing with the consensus: {fate}"
    )
