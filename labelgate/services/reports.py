"""Read-side queries shared by the CLI and the web pages: runs and their issues as DataFrames."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from labelgate import store
from labelgate.core.ambiguity import queue_severity
from labelgate.core.issues import ISSUE_TYPES
from labelgate.core.metrics import ExportMetrics, MemoryMetrics, RunMetrics

#: the first columns of the issue report (:func:`issues_frame`: one row per input row, the detectors side by side;
#: not the long ``issues`` table of :data:`labelgate.core.issues.ISSUE_COLUMNS`); per-type columns follow
REPORT_COLUMNS = [
    "id",
    "text",
    "given_label",
    "suggested_label",
    "label_score",
    "is_label_issue",
    "suggested_prob",
    "model_prob",
    "source_line",
    "reason",
    "flagged",
    "severity",
    "issue_types",
    "reasons",
    "related_row_id",
    "label_kind",
    "ambiguity",
]


def issue_type_columns() -> list[str]:
    """``is_<type>_issue`` and ``<type>_score`` for every non-label issue type (label's are ``is_label_issue``
    and ``label_score``)."""
    return [c for t in ISSUE_TYPES if t != "label" for c in (f"is_{t}_issue", f"{t}_score")]


def issues_frame(con: duckdb.DuckDBPyConnection, run_id: str, *, flagged_only: bool = True) -> pd.DataFrame:
    """One row per valid row of ``run_id`` (only rows some detector flagged when ``flagged_only``), most severe first.

    Columns :data:`REPORT_COLUMNS` then :func:`issue_type_columns`:

    - ``id`` the row id, ``text``, ``source_line``;
    - the label detector's ``given_label``, ``suggested_label``, ``suggested_prob`` (noise-corrected),
      ``model_prob`` (the model's plain probability of the suggestion), ``label_score`` in [0, 1]
      (higher = the given label is more likely right), ``is_label_issue`` and its ``reason``;
    - ``flagged``: any detector flagged the row; ``issue_types``: the flagged types (list, most severe
      type first); ``reasons``: their sentences (list, same order); ``related_row_id``: the row this one
      duplicates or conflicts with, or the test row it leaks (first such type);
    - ``label_kind``: ``mislabelled`` or ``ambiguous`` for a flagged label issue (None otherwise, and for runs
      detected before kinds existed) and its ``ambiguity`` in [0, 1] (:mod:`labelgate.core.ambiguity`);
    - ``severity`` in [0, 1]: the largest ``1 - score`` over the flagged types, the label type's halved when it is
      ``ambiguous`` (:func:`labelgate.core.ambiguity.queue_severity`: likely mislabelled rows come before
      ambiguous ones); for unflagged rows half of ``1 - label_score``, and flagged rows sort first;
    - ``is_<type>_issue`` / ``<type>_score`` per issue type (False / NaN where the detector wrote nothing).

    Sorted by flagged first, then severity (descending), then label score, then id.
    """
    long = store.issue_rows(con, run_id=run_id, flagged_only=flagged_only)
    columns = REPORT_COLUMNS + issue_type_columns()
    if long.empty:
        return pd.DataFrame(columns=columns)
    base = long.drop_duplicates("id").set_index("id")[["text", "label", "source_line"]]
    out = pd.DataFrame(index=base.index)
    out["text"] = base["text"]
    out["source_line"] = base["source_line"]
    typed = long[long["issue_type"].notna()]
    label = typed[typed["issue_type"] == "label"].set_index("id")
    out["given_label"] = label["given_label"].reindex(out.index).fillna(base["label"])
    out["suggested_label"] = label["suggested_label"].reindex(out.index)
    out["label_score"] = label["score"].reindex(out.index).astype("float64")
    out["is_label_issue"] = label["is_issue"].reindex(out.index).fillna(False).astype(bool)
    out["suggested_prob"] = label["suggested_prob"].reindex(out.index).astype("float64")
    out["model_prob"] = label["model_prob"].reindex(out.index).astype("float64")
    out["reason"] = label["reason"].reindex(out.index)
    kinds = label["label_kind"].reindex(out.index).astype(object)
    out["label_kind"] = kinds.where(kinds.notna(), None)
    out["ambiguity"] = pd.to_numeric(label["ambiguity"].reindex(out.index), errors="coerce").astype("float64")
    for t in ISSUE_TYPES:
        if t == "label":
            continue
        part = typed[typed["issue_type"] == t].set_index("id")
        out[f"is_{t}_issue"] = part["is_issue"].reindex(out.index).fillna(False).astype(bool)
        out[f"{t}_score"] = part["score"].reindex(out.index).astype("float64")
    hits = typed[typed["is_issue"].fillna(False).astype(bool)].copy()
    hits["rank"] = hits["issue_type"].map({t: i for i, t in enumerate(ISSUE_TYPES)})
    hits["severity"] = queue_severity(
        label_scores=pd.to_numeric(hits["score"], errors="coerce").fillna(0.0).to_numpy(),
        kinds=np.where(hits["issue_type"] == "label", hits["label_kind"].astype(object), None),
    )
    hits = hits.sort_values(["id", "rank"])
    grouped = hits.groupby("id", sort=False)
    types = grouped["issue_type"].agg(list)
    reasons = grouped["reason"].agg(lambda v: [str(x) for x in v if isinstance(x, str) and x])
    related = grouped["related_row_id"].agg(lambda v: next((x for x in v if isinstance(x, str) and x), None))
    worst = grouped["severity"].max()
    out["issue_types"] = types.reindex(out.index).map(lambda v: v if isinstance(v, list) else [])
    out["reasons"] = reasons.reindex(out.index).map(lambda v: v if isinstance(v, list) else [])
    out["related_row_id"] = related.reindex(out.index)
    out["flagged"] = out["issue_types"].map(bool)
    unflagged = 0.5 * (1.0 - out["label_score"].fillna(1.0))
    out["severity"] = worst.reindex(out.index).fillna(unflagged).clip(0.0, 1.0)
    out = out.reset_index().rename(columns={"index": "id"})
    out = out.sort_values(
        ["flagged", "severity", "label_score", "id"], ascending=[False, False, True, True], na_position="last"
    )
    return out[columns].reset_index(drop=True)


#: columns :func:`with_decisions` adds: the latest decision of each row (empty where nobody decided yet)
DECISION_COLUMNS = ["decision", "decision_label", "decided_by", "decided_at"]


def with_decisions(frame: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (from :func:`issues_frame`) with :data:`DECISION_COLUMNS` from ``decisions``
    (:func:`labelgate.store.latest_decisions`): ``decision`` keep/relabel/exclude, ``decision_label`` the label a
    relabel sets, ``decided_by`` the source (``policy``/``human``/…) and the reviewer as ``human:alice``,
    ``decided_at`` ISO time. Rows without a decision get None."""
    d = decisions.set_index("row_id") if not decisions.empty else pd.DataFrame(columns=decisions.columns)
    out = frame.copy()
    ids = out["id"]
    out["decision"] = ids.map(d["action"]) if not d.empty else None
    out["decision_label"] = ids.map(d["label"]) if not d.empty else None
    if not d.empty:
        who = d["source"].astype(str) + d["reviewer"].map(lambda r: f":{r}" if isinstance(r, str) and r else "")
        when = d["decided_at"].map(lambda t: t.isoformat(timespec="seconds") if hasattr(t, "isoformat") else None)
        out["decided_by"] = ids.map(who)
        out["decided_at"] = ids.map(when)
    else:
        out["decided_by"] = None
        out["decided_at"] = None
    for col in DECISION_COLUMNS:
        out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


RUN_COLUMNS = [
    "run_id",
    "dataset",
    "dataset_version",
    "status",
    "started_at",
    "finished_at",
    "rows_in",
    "rows_valid",
    "rows_quarantined",
    "label_issues",
    "exported_train",
    "exported_val",
    "message",
]


def runs_frame(con: duckdb.DuckDBPyConnection, *, limit: int | None = None) -> pd.DataFrame:
    """Every run, newest first, with its headline metrics (columns :data:`RUN_COLUMNS`)."""
    df = store.runs_table(con, limit=limit)
    metrics = [RunMetrics.from_json(m if isinstance(m, str) else None) for m in df["metrics_json"]]
    columns = {
        "rows_in": [m.rows_in for m in metrics],
        "rows_valid": [m.rows_valid for m in metrics],
        "rows_quarantined": [m.rows_quarantined for m in metrics],
        "label_issues": [m.label_issues for m in metrics],
        "exported_train": [m.export.exported_train if m.export else None for m in metrics],
        "exported_val": [m.export.exported_val if m.export else None for m in metrics],
    }
    for key, values in columns.items():
        df[key] = pd.array(values, dtype="Int64")
    return df[RUN_COLUMNS]


# --- run history, quality gate and dashboard figures (labelgate runs --json, /dashboard) ----------

#: what became of a run: ``exported`` (completed, files written), ``blocked`` (the quality gate stopped it),
#: ``failed``, ``crashed``, ``running``, ``awaiting_review``
OUTCOMES = ("exported", "blocked", "failed", "crashed", "running", "awaiting_review")


def run_outcome(status: str, *, quality_blocked: bool) -> str:
    """The outcome (one of :data:`OUTCOMES`) of a run with ``status`` in the ``runs`` table."""
    if quality_blocked:
        return "blocked"
    if status == "completed":
        return "exported"
    return status if status in OUTCOMES else "failed"


def _json_value(value: object) -> object:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def run_history(con: duckdb.DuckDBPyConnection, *, dataset: str | None = None, limit: int | None = None) -> list[dict]:
    """Runs, newest first, with their metrics, quality verdict and outcome (``labelgate runs --json``).

    Each item: run_id, dataset, dataset_version, status, outcome (:data:`OUTCOMES`), started_at and
    finished_at (ISO strings), duration_s, gate, rows_in, rows_valid, rows_quarantined, quarantine_rate,
    label_issues, label_issue_rate, decisions (keep/relabel/exclude counts), exported_train, exported_val,
    texts_embedded, texts_cached, carried (decisions carried from the curation memory), carried_from (run id ->
    how many), rows_new, detection_reused_from, seconds_by_stage (stage -> seconds, :data:`labelgate.core.metrics.
    STAGES`; None for runs of older versions), startup_seconds (process start to the first stage, runs of
    ``labelgate run``/``demo`` only, else None), quality (None, or enforced/passed/message/reasons/checks/
    baseline_run_id/baseline_version), message, prefect_flow_run_id, metrics (every figure the run recorded).
    """
    rows = store.run_history_rows(con, dataset=dataset, limit=limit)
    out = []
    for (
        run_id,
        ds,
        version,
        status,
        started,
        finished,
        duration,
        metrics_json,
        message,
        flow_run_id,
        params_json,
        enforced,
        passed,
        q_message,
        reasons,
        checks,
        baseline_run_id,
        baseline_version,
    ) in rows:
        m = _json_value(metrics_json) or {}
        m = m if isinstance(m, dict) else {}
        typed = RunMetrics.from_json(m)
        memory = typed.memory or MemoryMetrics()
        exported = typed.export or ExportMetrics()
        quality = None
        if passed is not None:
            quality = _quality(enforced, passed, q_message, reasons, checks, baseline_run_id, baseline_version)
        blocked = bool(quality and quality["enforced"] and not quality["passed"] and status == "failed")
        rows_in, quarantined, valid, issues = (
            typed.rows_in,
            typed.rows_quarantined,
            typed.rows_valid,
            typed.label_issues,
        )
        out.append(
            {
                "run_id": run_id,
                "dataset": ds,
                "dataset_version": version,
                "status": status,
                "outcome": run_outcome(status, quality_blocked=blocked),
                "started_at": started.isoformat() if started is not None else None,
                "finished_at": finished.isoformat() if finished is not None else None,
                "duration_s": float(duration) if duration is not None else typed.seconds,
                "gate": typed.gate or (_json_value(params_json) or {}).get("gate"),
                "rows_in": rows_in,
                "rows_valid": valid,
                "rows_quarantined": quarantined,
                "quarantine_rate": round(quarantined / rows_in, 4) if rows_in and quarantined is not None else None,
                "label_issues": issues,
                "label_issue_rate": typed.detect.label_issue_rate if typed.detect else None,
                "decisions": typed.decisions.decisions if typed.decisions else None,
                "exported_train": exported.exported_train,
                "exported_val": exported.exported_val,
                "texts_embedded": typed.embed.texts_embedded if typed.embed else None,
                "texts_cached": typed.embed.texts_cached if typed.embed else None,
                "carried": memory.carried,
                "carried_from": memory.from_runs,
                "rows_new": memory.rows_new,
                "detection_reused_from": typed.detect.detection_reused_from if typed.detect else None,
                "seconds_by_stage": typed.seconds_by_stage,
                "startup_seconds": typed.startup_seconds,
                "quality": quality,
                "message": message,
                "warnings": typed.warnings,
                "prefect_flow_run_id": flow_run_id,
                "metrics": m,
            }
        )
    return out


def class_distribution(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Per class: ``before`` (given labels of the valid rows), ``after`` (after the decisions; equal to
    ``before`` when nothing was decided) and ``previous`` (given labels of the previous version, 0 when none).

    Columns: label, before, after, previous; one row per class seen in any of them, sorted by label.
    """
    before = store.class_counts(con, run_id=run_id)
    has_decisions = bool(store.count_decisions(con, run_id=run_id))
    after = store.counts_after_decisions(con, run_id=run_id) if has_decisions else dict(before)
    prev = store.previous_version(con, run_id=run_id)
    previous = store.class_counts(con, run_id=prev["run_id"]) if prev else {}
    labels = sorted(set(before) | set(after) | set(previous))
    return pd.DataFrame(
        {
            "label": labels,
            "before": [before.get(c, 0) for c in labels],
            "after": [after.get(c, 0) for c in labels],
            "previous": [previous.get(c, 0) for c in labels],
        }
    )


def noise_matrix(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[list[str], list[list[float]]]:
    """The run's estimated noise matrix (given label x true label, estimated row counts) and its classes.

    Built from the stored out-of-fold probabilities with :func:`labelgate.core.quality.estimated_noise_matrix`;
    ``([], [])`` when the run has no detection yet.
    """
    import numpy as np

    from labelgate.core.quality import estimated_noise_matrix

    found = store.detection_classes(con, run_id=run_id)
    if not found:
        return [], []
    classes = [str(c) for c in found]
    table = store.predictions_with_labels(con, run_id=run_id)
    if table.num_rows == 0:
        return classes, [[0.0] * len(classes) for _ in classes]
    index = {c: i for i, c in enumerate(classes)}
    labels = table.column("label").to_pylist()
    keep = [i for i, lab in enumerate(labels) if lab in index]
    probs_col = table.column("probs").combine_chunks()
    flat = probs_col.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    probs = flat.reshape(table.num_rows, len(classes))[keep]
    y = np.array([index[labels[i]] for i in keep], dtype=np.int64)
    matrix = estimated_noise_matrix(y, probs)
    return classes, [[round(float(v), 2) for v in row] for row in matrix]


def quarantine_reasons(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, int]:
    """Quarantine reason kind -> rows, most frequent first (the run's recorded counts, else from the table)."""
    recorded = _json_value(store.stored_metrics(con, run_id=run_id))
    typed = RunMetrics.from_json(recorded if isinstance(recorded, dict) else None)
    reasons = typed.validate.quarantine_reasons if typed.validate else None
    if isinstance(reasons, dict):
        return {str(k): int(v) for k, v in sorted(reasons.items(), key=lambda kv: -int(kv[1]))}
    rows = store.quarantine_kinds(con, run_id=run_id)
    return {str(k).strip().rstrip(":"): int(n) for k, n in rows}


def quality_record(con: duckdb.DuckDBPyConnection, run_id: str) -> dict | None:
    """The quality gate's stored verdict of ``run_id`` (None when the run never reached the gate)."""
    row = store.quality_row(con, run_id=run_id)
    if row is None:
        return None
    *verdict, created = row
    return {
        "run_id": run_id,
        **_quality(*verdict),
        "created_at": created.isoformat() if created is not None else None,
    }


def _quality(
    enforced: Any,
    passed: Any,
    message: str | None,
    reasons: Any,
    checks: Any,
    baseline_run_id: str | None,
    baseline_version: str | None,
) -> dict[str, Any]:
    """A stored quality verdict as the reports show it (JSON columns parsed, flags as booleans)."""
    return {
        "enforced": bool(enforced),
        "passed": bool(passed),
        "message": message,
        "reasons": _json_value(reasons) or [],
        "checks": _json_value(checks) or [],
        "baseline_run_id": baseline_run_id,
        "baseline_version": baseline_version,
    }


def annotator_panel(con: duckdb.DuckDBPyConnection, run_id: str) -> dict | None:
    """The dashboard's annotator panel of a run with several annotators per item (None for a single-label run).

    Returns ``{"annotators": [{annotator, quality, quality_sd, n_labels, agreement}] (best first), "classes":
    [...], "matrix": counts[annotator's label][consensus label], "labels": usable labels with a consensus,
    "disagreeing": how many of them differ from their item's consensus}``.
    """
    table = store.annotator_table(con, run_id)
    if table.empty:
        return None
    pairs = store.label_pairs(con, run_id)
    given, consensus = pairs["label"].astype(str), pairs["consensus_label"].astype(str)
    classes = sorted(set(given) | set(consensus))
    index = {c: i for i, c in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for label, agreed in zip(given, consensus):
        matrix[index[label]][index[agreed]] += 1
    return {
        "annotators": json.loads(table.to_json(orient="records")),
        "classes": classes,
        "matrix": matrix,
        "labels": len(pairs),
        "disagreeing": int((given != consensus).sum()),
    }
