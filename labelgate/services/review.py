"""The human review gate as a library: list the rows to review, record decisions, undo, progress, finish.

The web app (:mod:`labelgate.web`), the terminal review (``labelgate review``) and the tests all
call these functions; none of them writes SQL of its own.

Decisions are appended to the ``decisions`` table (source ``human``, with the reviewer's name);
the latest decision per row wins and nothing is ever deleted. An undo appends the row's previous
state again: a copy of the decision before the undone one, or, when there was none, a ``keep``
of the given label marked ``no_decision`` (its reason reads ``undo of #N: no decision``), which the review
views treat as "not decided" and the export treats as "keep as given" (exactly what a row without a decision
gets). Every undo entry names the decision it undoes in its ``undoes`` column: the undo state is read from
those columns, never parsed out of the reason text.

Every function taking ``con`` expects a short-lived connection from :func:`labelgate.store.connect`;
:func:`finish_review` opens its own and closes it before it talks to Prefect.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from labelgate import store
from labelgate.core.ambiguity import LABEL_KINDS
from labelgate.core.metrics import ExportMetrics, RunMetrics
from labelgate.core.policy import accept_action
from labelgate.errors import ReviewError as ReviewError
from labelgate.errors import ReviewTimeoutError as ReviewTimeoutError
from labelgate.services import reports

#: actions a reviewer can record (``accept`` is stored as relabel-to-suggestion, or keep when they agree)
ACTIONS = ("keep", "relabel", "exclude")
INPUT_ACTIONS = (*ACTIONS, "accept")
#: run status while its flow run is paused for a reviewer
AWAITING_REVIEW = "awaiting_review"
#: reason prefix of an undo entry
UNDO_PREFIX = "undo of #"
#: an undo entry that restores "no decision"
NO_DECISION = "no decision"
MAX_REVIEWER_CHARS = 100

#: columns of :func:`review_items`
ITEM_COLUMNS = [
    "id",
    "text",
    "given_label",
    "suggested_label",
    "suggested_prob",
    "label_score",
    "severity",
    "flagged",
    "issue_types",
    "reasons",
    "source_line",
    "decision_action",
    "decision_label",
    "decision_source",
    "decision_reviewer",
    "decided",
    "carried",
    "new",
    "accept_action",
    "accept_label",
    "model_prob",
    "related_row_id",
    "label_reason",
    "annotator_labels",
    "label_kind",
    "ambiguity",
]


# --- reading ---------------------------------------------------------------------------------------


def run_classes(con: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    """The classes a row of ``run_id`` may be labelled with: the detector's classes, else the given labels."""
    classes = store.detection_classes(con, run_id=run_id)
    if classes:
        return [str(c) for c in classes]
    return store.given_labels(con, run_id=run_id)


def _as_list(value: Any) -> list[str]:
    """A list of non-empty strings from a list/array/None/str cell."""
    if value is None:
        return []
    if isinstance(value, float) and math.isnan(value):
        return []
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return [str(v) for v in value if v is not None and str(v).strip() and str(v) != "nan"]
    text = str(value).strip()
    return [text] if text else []


def _issue_types(frame: pd.DataFrame) -> list[list[str]]:
    if "issue_types" in frame.columns:
        out = []
        for value in frame["issue_types"]:
            if isinstance(value, str):
                out.append([t.strip() for t in re.split(r"[,;|]", value) if t.strip()])
            else:
                out.append(_as_list(value))
        return out
    flags = frame["is_label_issue"].fillna(False).astype(bool) if "is_label_issue" in frame.columns else None
    return [["label"] if flags is not None and bool(f) else [] for f in (flags if flags is not None else [])]


def _flagged_scores(rec: pd.Series, types: list[str]) -> dict[str, float | None]:
    """issue type -> score of a row's flagged types (from an :func:`labelgate.services.reports.issues_frame` row)."""
    out: dict[str, float | None] = {}
    for t in types:
        col = "label_score" if t == "label" else f"{t}_score"
        value = rec.get(col) if hasattr(rec, "get") else None
        out[t] = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    return out


#: allowed :attr:`ReviewFilters.scope` values
SCOPES = ("flagged", "all")
#: allowed :attr:`ReviewFilters.status` values (None and ``""`` too: no such filter)
STATUSES = ("undecided", "decided", "all")
#: allowed :attr:`ReviewFilters.novelty` values (None and ``""`` too: no such filter)
NOVELTIES = ("new", "seen", "all")
#: allowed :attr:`ReviewFilters.label_kind` values (None and ``""`` too: no such filter)
LABEL_KIND_FILTERS = LABEL_KINDS


@dataclass(frozen=True)
class ReviewFilters:
    """Which rows of a run a review listing shows: :func:`review_items`, the review page and the issue API
    (:mod:`labelgate.services.review_page`), ``labelgate review``.

    None or an empty string: no such filter. The values are checked where they are used (:meth:`check`, called by
    :func:`review_items`), so a listing of an unknown run still says so first.

    Attributes:
        scope: one of :data:`SCOPES`: ``flagged`` (rows some detector flagged) or ``all`` (every valid row).
        issue_type: keep rows flagged with this issue type (e.g. ``label``).
        given: keep rows whose given label is this.
        suggested: keep rows whose suggested label is this.
        status: one of :data:`STATUSES`: ``undecided`` (no decision yet), ``decided`` or ``all``.
        query: case-insensitive substring of the text or the row id.
        novelty: one of :data:`NOVELTIES`: ``new`` (text and given label in no earlier completed run of the
            dataset), ``seen`` or ``all``; the review page opens on ``new`` when it is None (see
            :func:`labelgate.services.review_page.review_page_data`).
        annotator: keep items this annotator labelled (runs with several annotators per item).
        label_kind: one of :data:`LABEL_KIND_FILTERS`: keep rows whose label issue is ``mislabelled`` (a confident
            disagreement) or ``ambiguous`` (:mod:`labelgate.core.ambiguity`).
        limit: the most rows a listing shows (the review page: None is its default, clamped to 1..its maximum; the
            issue API: None or 0 shows every matching row). :func:`review_items` returns every matching row
            (the listings count them) and ignores it.
    """

    scope: str = "flagged"
    issue_type: str | None = None
    given: str | None = None
    suggested: str | None = None
    status: str | None = None
    query: str | None = None
    novelty: str | None = None
    annotator: str | None = None
    label_kind: str | None = None
    limit: int | None = None

    def check(self) -> None:
        """Raise :class:`ReviewError` for a ``scope``, ``novelty``, ``status`` or ``label_kind`` value that is not
        allowed."""
        if self.scope not in SCOPES:
            raise ReviewError(f"scope must be 'flagged' or 'all', got {self.scope!r}")
        if self.novelty not in (None, "", *NOVELTIES):
            raise ReviewError(f"novelty must be 'new', 'seen' or 'all', got {self.novelty!r}")
        if self.status not in (None, "", *STATUSES):
            raise ReviewError(f"status must be 'undecided', 'decided' or 'all', got {self.status!r}")
        if self.label_kind not in (None, "", *LABEL_KIND_FILTERS):
            raise ReviewError(f"label_kind must be 'mislabelled' or 'ambiguous', got {self.label_kind!r}")


def review_items(con: duckdb.DuckDBPyConnection, run_id: str, *, filters: ReviewFilters | None = None) -> pd.DataFrame:
    """The rows of ``run_id`` that ``filters`` keep (default: the flagged rows) with their current decision, in the
    review queue's order: flagged rows first, most severe first (likely mislabelled label issues before ambiguous
    ones, :func:`labelgate.core.ambiguity.queue_severity`; every matching row: ``filters.limit`` is the listing's
    to apply).

    Built on :func:`labelgate.services.reports.issues_frame`; extra columns it may have are ignored.

    Returns:
        Columns :data:`ITEM_COLUMNS`: ``severity`` in [0, 1] (higher = more likely wrong),
        ``issue_types`` and ``reasons`` lists of strings, ``decision_*`` the latest decision
        (None when there is none), ``decided`` True when a person (or the policy, or the curation memory)
        decided the row, ``carried`` True when that decision is a remembered one carried from an earlier run
        (source ``memory``), ``new`` as for :attr:`ReviewFilters.novelty`, ``accept_action`` / ``accept_label``
        what accepting the suggestion (W) records (:func:`labelgate.core.policy.accept_action`; None: nothing to
        accept), ``model_prob`` the model's plain probability of the suggestion (``suggested_prob`` is
        noise-corrected), ``related_row_id`` the row a duplicate or conflict points at (or the test row a leak
        matches), ``label_reason`` the label detector's sentence (with its statistics; also one of ``reasons`` when
        flagged), ``annotator_labels`` each annotator's usable label of the item (``[{"annotator", "label"}]`` in
        input order; empty for single-label runs), ``label_kind`` ``mislabelled`` / ``ambiguous`` for a flagged
        label issue (None otherwise) and its ``ambiguity`` in [0, 1].

    Raises:
        ReviewError: an unknown ``scope``, ``novelty`` or ``status`` value (:meth:`ReviewFilters.check`), or an
            ``annotator`` the run has not.
    """
    f = ReviewFilters() if filters is None else filters
    f.check()
    frame = reports.issues_frame(con, run_id, flagged_only=f.scope == "flagged").reset_index(drop=True)
    out = pd.DataFrame(
        {
            "id": frame["id"].astype(str),
            "text": frame["text"],
            "given_label": frame["given_label"],
            "suggested_label": frame.get("suggested_label"),
            "suggested_prob": frame.get("suggested_prob"),
            "label_score": frame.get("label_score"),
            "source_line": frame.get("source_line"),
            "model_prob": frame.get("model_prob"),
            "related_row_id": frame.get("related_row_id"),
            "label_reason": frame.get("reason"),
            "label_kind": frame.get("label_kind"),
            "ambiguity": frame.get("ambiguity"),
        }
    )
    if "severity" in frame.columns:
        severity = pd.to_numeric(frame["severity"], errors="coerce")
    else:
        severity = 1.0 - pd.to_numeric(frame["label_score"], errors="coerce")
    out["severity"] = severity.fillna(0.0).clip(0.0, 1.0)
    types = _issue_types(frame)
    out["issue_types"] = types
    if "flagged" in frame.columns:
        out["flagged"] = frame["flagged"].fillna(False).astype(bool)
    else:
        out["flagged"] = [bool(t) for t in types]
    reason_col = "reasons" if "reasons" in frame.columns else "reason"
    out["reasons"] = [_as_list(v) for v in frame[reason_col]] if reason_col in frame.columns else [[]] * len(out)

    latest = store.latest_decisions(con, run_id).set_index("row_id")
    out["decision_action"] = out["id"].map(latest["action"]) if not latest.empty else None
    out["decision_label"] = out["id"].map(latest["label"]) if not latest.empty else None
    out["decision_source"] = out["id"].map(latest["source"]) if not latest.empty else None
    out["decision_reviewer"] = out["id"].map(latest["reviewer"]) if not latest.empty else None
    no_decision = (
        out["id"].map(latest["no_decision"]).fillna(False).astype(bool)
        if not latest.empty
        else pd.Series([False] * len(out))
    )
    out.loc[no_decision.to_numpy(), ["decision_action", "decision_label", "decision_source", "decision_reviewer"]] = (
        None
    )
    for col in ("decision_action", "decision_label", "decision_source", "decision_reviewer"):
        values = out[col].astype(object)
        out[col] = values.where(values.notna(), None)
    out["decided"] = out["decision_action"].notna()
    out["carried"] = out["decision_source"] == "memory"
    seen = store.seen_rows(con, run_id)
    out["new"] = ~out["id"].isin(seen)
    accepts = [
        accept_action(_flagged_scores(frame.iloc[i], types[i]), given=_none(g), suggested=_none(sug))
        for i, (g, sug) in enumerate(zip(out["given_label"], out["suggested_label"]))
    ]
    out["accept_action"] = [a[0] if a else None for a in accepts]
    out["accept_label"] = [a[1] if a else None for a in accepts]

    by_item = run_annotator_labels(con, run_id)
    out["annotator_labels"] = [by_item.get(i, []) for i in out["id"]]
    annotator = f.annotator
    if annotator and not any(a["annotator"] == annotator for labels in by_item.values() for a in labels):
        known = sorted({a["annotator"] for labels in by_item.values() for a in labels})
        shown = ", ".join(repr(k) for k in known[:10]) + (", …" if len(known) > 10 else "") if known else "none"
        raise ReviewError(f"run {run_id} has no annotator {annotator!r} (annotators: {shown})")

    keep = pd.Series(True, index=out.index)
    if annotator:
        keep &= out["annotator_labels"].map(lambda labels: any(a["annotator"] == annotator for a in labels))
    if f.issue_type:
        keep &= out["issue_types"].map(lambda ts: f.issue_type in ts)
    if f.label_kind:
        keep &= (out["label_kind"] == f.label_kind) & out["issue_types"].map(lambda ts: "label" in ts)
    if f.given:
        keep &= out["given_label"] == f.given
    if f.suggested:
        keep &= out["suggested_label"] == f.suggested
    if f.status == "undecided":
        keep &= ~out["decided"]
    elif f.status == "decided":
        keep &= out["decided"]
    if f.novelty == "new":
        keep &= out["new"]
    elif f.novelty == "seen":
        keep &= ~out["new"]
    if f.query:
        needle = f.query.casefold()
        keep &= out["text"].fillna("").str.casefold().str.contains(needle, regex=False) | out[
            "id"
        ].str.casefold().str.contains(needle, regex=False)
    out = out[keep]
    out = out.sort_values(["flagged", "severity", "id"], ascending=[False, False, True], kind="mergesort")
    return out[ITEM_COLUMNS].reset_index(drop=True)


def run_annotator_labels(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, list[dict[str, str]]]:
    """Each item's usable labels by annotator, ``{item_id: [{"annotator", "label"}, ...]}`` in input order (empty for
    a run with one label per row)."""
    usable = store.usable_annotations(con, run_id)
    out: dict[str, list[dict[str, str]]] = {}
    for item, who, label in zip(usable["item_id"], usable["annotator"], usable["label"]):
        out.setdefault(str(item), []).append({"annotator": str(who), "label": str(label)})
    return out


def run_annotators(con: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    """The annotators of ``run_id`` with at least one usable label, sorted (empty for a single-label run)."""
    return sorted(set(store.usable_annotations(con, run_id)["annotator"].dropna().astype(str)))


def item_records(items: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready dicts of :func:`review_items` rows (NaN and NA become None)."""
    records = []
    for rec in items.to_dict(orient="records"):
        clean = {}
        for key, value in rec.items():
            if isinstance(value, (list, tuple, np.ndarray)):
                clean[key] = [dict(v) if isinstance(v, dict) else str(v) for v in value]
            elif value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
                clean[key] = None
            elif isinstance(value, np.generic):
                clean[key] = value.item()
            else:
                clean[key] = value
        if clean.get("source_line") is not None:
            clean["source_line"] = int(clean["source_line"])
        records.append(clean)
    return records


def related_rows(con: duckdb.DuckDBPyConnection, run_id: str, row_ids: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """What a reviewer needs to see of the rows other rows point at (duplicates, conflicts), by row id.

    Returns ``{row_id: {"id", "text", "given_label", "source_line", "decision_action", "decision_label"}}``
    for the ids that are valid rows of the run (a leaked test row is not one: it is absent). ``decision_*`` is
    the row's latest decision (None when nobody decided it).
    """
    ids = [str(i) for i in row_ids if isinstance(i, str) and i]
    if not ids:
        return {}
    rows = store.rows_by_id(con, run_id, ids)
    latest = store.latest_decisions(con, run_id).set_index("row_id")
    out: dict[str, dict[str, Any]] = {}
    for r in rows.itertuples(index=False):
        rid = str(r.row_id)
        action = label = None
        if rid in latest.index and not bool(latest.at[rid, "no_decision"]):
            action, label = latest.at[rid, "action"], latest.at[rid, "label"]
        line = r.source_line
        out[rid] = {
            "id": rid,
            "text": r.text,
            "given_label": r.label,
            "source_line": None if line is None or pd.isna(line) else int(line),
            "decision_action": action,
            "decision_label": None if label is None or pd.isna(label) else label,
            "decided": action is not None,
        }
    return out


#: run statuses after which nothing changes any more (the export is written, or the run stopped)
FINAL_STATUSES = ("completed", "failed", "crashed")


def outcome(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    """What became of ``run_id`` so far, for a page waiting on the export after "Finish review".

    Returns ``run_id``, ``status`` (the ``runs`` status), ``final`` (True once the status is one of
    :data:`FINAL_STATUSES`), ``message`` (the failure reason or warnings), ``exported_train`` / ``exported_val``
    (row counts, None before the export), ``files`` (paths written, the manifest last), ``decisions``
    (keep/relabel/exclude counts) and ``warnings`` (list of strings).
    """
    rec = store.run_record(con, run_id)
    m = RunMetrics.from_json(rec.get("metrics_json"))
    exported = m.export or ExportMetrics()
    status = str(rec["status"])
    return {
        "run_id": run_id,
        "status": status,
        "final": status in FINAL_STATUSES,
        "message": _none(rec.get("message")),
        "exported_train": exported.exported_train,
        "exported_val": exported.exported_val,
        "files": [str(f) for f in [*m.export_files, exported.manifest] if f],
        "decisions": m.decisions.decisions if m.decisions else None,
        "warnings": [str(w) for w in m.warnings],
    }


@dataclass(frozen=True)
class ReviewProgress:
    """How far the review of a run is (:func:`review_progress`).

    Attributes:
        run_id: the run; status: its ``runs.status`` (None: no such run).
        flagged: flagged rows; reviewed: flagged rows a person decided in this run; carried: flagged rows decided
            by a remembered decision of an earlier run (not to review again); remaining: flagged rows neither
            reviewed nor carried.
        by_action: keep / relabel / exclude counts of the human decisions on flagged rows.
        policy: flagged rows decided by the policy only; other_reviewed: unflagged rows a person decided.
        carried_total: rows of any kind carrying a remembered decision.
        new_flagged: flagged rows whose content no earlier completed run of the dataset had; remaining_new: those
            of them neither reviewed nor carried.
    """

    run_id: str
    status: str | None
    flagged: int
    reviewed: int
    carried: int
    remaining: int
    by_action: dict[str, int]
    policy: int
    other_reviewed: int
    carried_total: int
    new_flagged: int
    remaining_new: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the web API's ``/api/runs/{run}/progress`` (one key per field, in field order; also
        the ``progress`` of the issue list and of the decision and undo answers)."""
        return dataclasses.asdict(self)


def review_progress(con: duckdb.DuckDBPyConnection, run_id: str) -> ReviewProgress:
    """How far the review of ``run_id`` is (see :class:`ReviewProgress`)."""
    items = review_items(con, run_id, filters=ReviewFilters(scope="all"))
    is_flagged = items["flagged"]
    flagged = items[is_flagged]
    human = items["decided"] & (items["decision_source"] == "human")
    human_flagged = flagged[human[is_flagged]]
    carried = flagged["carried"]
    by_action = {a: int((human_flagged["decision_action"] == a).sum()) for a in ACTIONS}
    status = store.run_status(con, run_id=run_id)
    open_rows = ~human[is_flagged] & ~carried
    return ReviewProgress(
        run_id=run_id,
        status=status,
        flagged=len(flagged),
        reviewed=len(human_flagged),
        carried=int(carried.sum()),
        remaining=int(open_rows.sum()),
        by_action=by_action,
        policy=int((flagged["decided"] & (flagged["decision_source"] == "policy")).sum()),
        other_reviewed=int((human & ~is_flagged).sum()),
        carried_total=int(items["carried"].sum()),
        new_flagged=int(flagged["new"].sum()),
        remaining_new=int((open_rows & flagged["new"]).sum()),
    )


def decision_counts(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, int]:
    """keep/relabel/exclude counts of the latest real decisions of ``run_id`` (undo markers excluded)."""
    latest = store.latest_decisions(con, run_id)
    real = latest[~latest["no_decision"].fillna(False).astype(bool)]
    return {a: int((real["action"] == a).sum()) for a in ACTIONS}


# --- writing ---------------------------------------------------------------------------------------


def default_reviewer() -> str:
    """The OS user name, the reviewer when none is given."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover - no user name in the environment
        return "reviewer"


def clean_reviewer(reviewer: str | None) -> str:
    """A reviewer name: trimmed, one line, at most :data:`MAX_REVIEWER_CHARS` characters, not empty."""
    name = " ".join(str(reviewer or "").split())
    if not name:
        raise ReviewError("a reviewer name is required (who made this decision?)")
    if len(name) > MAX_REVIEWER_CHARS:
        raise ReviewError(f"reviewer name is longer than {MAX_REVIEWER_CHARS} characters: {name[:40]!r}…")
    return name


def _row_facts(con: duckdb.DuckDBPyConnection, run_id: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per wanted valid row of the run: given label, suggestion, flagged issue types with their scores
    (``flagged``), and its memory key (``text_sha256``, ``occurrence``)."""
    if not ids:
        return {}
    wanted = list(dict.fromkeys(str(i) for i in ids))
    keys = store.content_keys(con, run_id, wanted)
    issues = store.row_issues(con, run_id, wanted)
    facts: dict[str, dict[str, Any]] = {
        str(r.row_id): {
            "given": r.label,
            "suggested": None,
            "flagged": {},
            "text_sha256": r.text_sha256,
            "occurrence": int(r.occurrence),
        }
        for r in keys.itertuples()
    }
    for r in issues.itertuples():
        fact = facts.get(str(r.row_id))
        if fact is None:
            continue
        if r.issue_type == "label":
            fact["suggested"] = _none(r.suggested_label)
        if bool(r.is_issue):
            fact["flagged"][str(r.issue_type)] = _none(r.score)
    return facts


def _normalise(
    item: Mapping[str, Any], facts: Mapping[str, dict[str, Any]], classes: Sequence[str], run_id: str
) -> tuple[str, str, str | None]:
    """(row_id, action, label) to store for one requested decision; raises ReviewError."""
    if not isinstance(item, Mapping):
        raise ReviewError(f"a decision must be an object with id, action and label, got {item!r}")
    row_id = item.get("id", item.get("row_id"))
    if row_id is None or not str(row_id).strip():
        raise ReviewError("a decision needs the row 'id'")
    row_id = str(row_id)
    action = str(item.get("action") or "").strip().lower()
    if action not in INPUT_ACTIONS:
        raise ReviewError(f"action must be one of {', '.join(INPUT_ACTIONS)}, got {item.get('action')!r}")
    fact = facts.get(row_id)
    if fact is None:
        raise ReviewError(f"row {row_id!r} is not a valid row of run {run_id}")
    given = fact["given"]
    label = item.get("label")
    if action == "accept":
        proposal = accept_action(fact["flagged"], given=given, suggested=fact["suggested"])
        if proposal is None:
            raise ReviewError(f"row {row_id!r} has no suggestion to accept")
        action, label = proposal[0], proposal[1]
        if action != "relabel":
            return row_id, action, label
    if action == "exclude":
        return row_id, "exclude", None
    if action == "keep":
        return row_id, "keep", given
    if label is None or not str(label).strip():
        raise ReviewError(f"relabel of row {row_id!r} needs a 'label' (one of {', '.join(classes)})")
    label = str(label)
    if label not in classes:
        shown = ", ".join(repr(c) for c in classes[:20])
        raise ReviewError(f"label {label!r} for row {row_id!r} is not a class of run {run_id}; classes: {shown}")
    if label == given:
        return row_id, "keep", given
    return row_id, "relabel", label


def record_decisions(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    decisions: Iterable[Mapping[str, Any]],
    *,
    reviewer: str,
    note: str | None = None,
) -> list[dict[str, Any]]:
    """Validate and append human decisions for ``run_id`` in one transaction (all or none).

    Args:
        decisions: objects ``{"id": row id, "action": keep|relabel|exclude|accept, "label": class}``;
            ``label`` is needed for relabel only; ``accept`` takes the row's suggested label;
            relabelling to the given label is stored as ``keep``.
        reviewer: the person's name (stored with every decision).
        note: optional reason stored with the decisions.

    Returns:
        The stored decisions as dicts ``id, action, label, reviewer`` in request order.

    Raises:
        ReviewError: an unknown row, action or label (nothing is stored then).
    """
    name = clean_reviewer(reviewer)
    items = list(decisions)
    if not items:
        return []
    ids = [str(i.get("id", i.get("row_id"))) if isinstance(i, Mapping) else "" for i in items]
    facts = _row_facts(con, run_id, ids)
    classes = run_classes(con, run_id)
    rows = [_normalise(item, facts, classes, run_id) for item in items]
    if note is not None:
        note = " ".join(str(note).split())[:500] or None
    if note and note.startswith(UNDO_PREFIX):
        raise ReviewError(f"a note may not start with {UNDO_PREFIX!r}")
    dataset = store.run_dataset(con, run_id)
    with store.transaction(con):  # the decisions and their memory entries: both or neither
        entries = []
        for rid, action, label in rows:
            did = store.insert_decision(con, [run_id, rid, action, label, "human", name, note])
            entries.append(_memory_entry(dataset, facts[rid], action, label, "human", name, note, run_id, rid, did))
        store.remember(con, entries)
    return [{"id": rid, "action": action, "label": label, "reviewer": name} for rid, action, label in rows]


def _memory_entry(
    dataset: str,
    fact: Mapping[str, Any],
    action: str,
    label: str | None,
    source: str,
    reviewer: str | None,
    reason: str | None,
    run_id: str,
    row_id: str,
    decision_id: int | None,
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "text_sha256": fact["text_sha256"],
        "given_label": fact["given"],
        "occurrence": fact["occurrence"],
        "action": action,
        "label": label,
        "source": source,
        "reviewer": reviewer,
        "reason": reason,
        "run_id": run_id,
        "row_id": row_id,
        "decision_id": decision_id,
    }


def record_decision(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    *,
    row_id: str,
    action: str,
    label: str | None = None,
    reviewer: str,
    note: str | None = None,
) -> dict[str, Any]:
    """Append one human decision (see :func:`record_decisions`); return it."""
    return record_decisions(
        con, run_id, [{"id": row_id, "action": action, "label": label}], reviewer=reviewer, note=note
    )[0]


def decision_history(con: duckdb.DuckDBPyConnection, run_id: str) -> pd.DataFrame:
    """Every decision of ``run_id`` in the order made (the append-only log, undo entries included).

    Columns: decision_id, row_id, action, label, source, reviewer, reason, decided_at.
    """
    return store.decision_log(con, run_id=run_id)


def _none(value: Any) -> Any:
    """None for NaN/NA cells, else the value."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _undo_stack(history: pd.DataFrame) -> list[pd.DataFrame]:
    """Human decision batches (one transaction each) that are not undone yet, oldest first."""
    stack: list[pd.DataFrame] = []
    if history.empty:
        return stack
    is_undo = history["undoes"].notna()
    groups = history.assign(_undo=is_undo).groupby(["decided_at", "_undo"], sort=False)
    for (_, undo), batch in sorted(groups, key=lambda kv: int(kv[1]["decision_id"].min())):
        if undo:
            undone = {int(d) for d in batch["undoes"]}
            for i in range(len(stack) - 1, -1, -1):
                if undone & set(stack[i]["decision_id"].astype(int)):
                    del stack[i]
                    break
        elif (batch["source"] == "human").all():
            stack.append(batch)
    return stack


def undo_last(con: duckdb.DuckDBPyConnection, run_id: str, *, reviewer: str) -> list[dict[str, Any]]:
    """Undo the latest human decision batch of ``run_id`` that is not undone yet (one call = one step back).

    A batch is what one request recorded (one decision, or one bulk action). Each row of it gets its
    previous state appended again (see the module docstring). Returns the rows' restored state as dicts
    ``id, action, label, decided, undone_decision``; an empty list when there is nothing to undo.
    """
    name = clean_reviewer(reviewer)
    history = decision_history(con, run_id)
    stack = _undo_stack(history)
    if not stack:
        return []
    batch = stack[-1]
    facts = _row_facts(con, run_id, list(batch["row_id"].astype(str)))
    inserts: list[list[Any]] = []
    restored: list[dict[str, Any]] = []
    for rec in batch.itertuples(index=False):
        did = int(rec.decision_id)
        before = history[(history["row_id"] == rec.row_id) & (history["decision_id"] < did)]
        prev = before.iloc[-1] if not before.empty else None
        if prev is None or bool(prev["no_decision"]):
            given = facts.get(str(rec.row_id), {}).get("given")
            inserts.append([run_id, rec.row_id, "keep", given, "human", name, f"{UNDO_PREFIX}{did}: {NO_DECISION}"])
            restored.append({"id": rec.row_id, "action": None, "label": None, "decided": False, "undone_decision": did})
        else:
            inserts.append(
                [
                    run_id,
                    rec.row_id,
                    prev["action"],
                    _none(prev["label"]),
                    prev["source"],
                    _none(prev["reviewer"]),
                    f"{UNDO_PREFIX}{did}: back to #{int(prev['decision_id'])}",
                ]
            )
            restored.append(
                {
                    "id": rec.row_id,
                    "action": prev["action"],
                    "label": _none(prev["label"]),
                    "decided": True,
                    "undone_decision": did,
                }
            )
    undone = [int(d) for d in batch["decision_id"]]
    with store.transaction(con):  # the undo entries and the memory they restore: both or neither
        entries = []
        for values, did, back in zip(inserts, undone, restored):
            new_id = store.insert_decision(con, values, undoes=did, no_decision=not back["decided"])
            target = store.memory_undo_target(con, did)
            if target is None:
                continue
            prev = target["previous"]
            entry = {**target["key"], "run_id": run_id, "row_id": values[1], "decision_id": new_id}
            if prev is None or prev["action"] == "revoke":
                entry.update(action="revoke", label=None, source="human", reviewer=name)
                entry["reason"] = f"{UNDO_PREFIX}{did}: nothing remembered before"
            else:
                entry.update(
                    action=prev["action"],
                    label=_none(prev["label"]),
                    source=prev["source"],
                    reviewer=_none(prev["reviewer"]),
                )
                entry["reason"] = f"{UNDO_PREFIX}{did}: back to memory #{int(prev['memory_id'])}"
            entries.append(entry)
        store.remember(con, entries)
    return restored


def fill_with_policy(con: duckdb.DuckDBPyConnection, run_id: str, **policy: Any) -> dict[str, int]:
    """Let the auto policy decide the flagged rows (any issue type) nobody decided; human decisions stay.

    ``policy``: keyword arguments of :func:`labelgate.core.policy.auto_decisions` (``CurateParams.policy_settings()``).

    Returns keep/relabel/exclude counts of the policy decisions appended.
    """
    from labelgate.core.policy import auto_decisions

    issues, n_classes = store.flagged_issues(con, run_id)
    latest = store.latest_decisions(con, run_id)
    decided = set(latest.loc[~latest["no_decision"].fillna(False).astype(bool), "row_id"])
    todo = issues[~issues["row_id"].isin(decided)]
    decisions = auto_decisions(todo, **policy, n_classes=n_classes)
    if not decisions.empty:
        frame = decisions.assign(run_id=run_id, source="policy")[
            ["run_id", "row_id", "action", "label", "source", "reason"]
        ]
        with store.transaction(con):
            store.insert_frame(con, "decisions", frame)
    return {a: int((decisions["action"] == a).sum()) for a in ACTIONS}


# --- finishing -------------------------------------------------------------------------------------


def finish_review(db_path: str, run: str = "latest", *, reviewer: str, action: str = "finish") -> dict[str, Any]:
    """Finish the review of a run: resume its paused Prefect flow run, which then exports.

    Args:
        action: ``finish`` (export with the decisions made; undecided rows are kept as given) or
            ``auto`` (the auto policy decides the flagged rows nobody decided, then export).

    Returns:
        ``run_id``, ``resumed`` (True when a paused flow run was resumed), ``message`` for the person.
        A run that is not waiting for a review is not an error: the decisions are stored and
        ``labelgate export`` writes them (``resumed`` False, the message says so).

    Raises:
        ReviewError: the run waits for a review but its flow run cannot be resumed.
    """
    name = clean_reviewer(reviewer)
    if action not in ("finish", "auto"):
        raise ReviewError(f"finish action must be 'finish' or 'auto', got {action!r}")
    with store.connect(db_path, wait_s=10) as con:
        run_id = store.resolve_run(con, run)
        rec = store.run_record(con, run_id)
    if rec["status"] != AWAITING_REVIEW:
        return {
            "run_id": run_id,
            "resumed": False,
            "status": rec["status"],
            "message": f"run {run_id} is not waiting for a review (status {rec['status']}); its decisions are "
            f"stored, write the files again with: labelgate export --db {db_path} --run {run_id}",
        }
    flow_run_id = rec.get("prefect_flow_run_id")
    if not flow_run_id:
        raise ReviewError(f"run {run_id} waits for a review but has no Prefect flow run id to resume")
    resume_flow(str(flow_run_id), reviewer=name, action=action, run_id=run_id)
    return {
        "run_id": run_id,
        "resumed": True,
        "status": "resuming",
        "message": f"review of run {run_id} finished by {name}; the flow resumes and exports"
        + (" (the auto policy decides the rows nobody reviewed)" if action == "auto" else ""),
    }


def resume_flow(flow_run_id: str, *, reviewer: str, action: str, run_id: str = "") -> None:
    """Resume the paused Prefect flow run ``flow_run_id`` with the review's :class:`ReviewInput` answer."""
    from uuid import UUID

    from prefect.exceptions import FlowPauseTimeout, NotPausedError, ObjectNotFound
    from prefect.flow_runs import resume_flow_run

    what = f"Prefect flow run {flow_run_id}" + (f" of run {run_id}" if run_id else "")
    try:
        resume_flow_run(UUID(flow_run_id), run_input={"reviewer": reviewer, "action": action})
    except NotPausedError:
        raise ReviewError(
            f"{what} is not paused any more (resumed, timed out or crashed); its decisions are stored: "
            "`labelgate export` writes them"
        ) from None
    except FlowPauseTimeout:
        raise ReviewError(
            f"{what} timed out and can no longer be resumed; `labelgate export` writes the decisions"
        ) from None
    except ObjectNotFound:
        raise ReviewError(
            f"{what} is unknown to this Prefect API; set PREFECT_API_URL (or PREFECT_HOME) to the one the run uses"
        ) from None
    except ValueError as err:
        raise ReviewError(f"{what}: bad flow run id ({err})") from None
    except RuntimeError as err:
        raise ReviewError(f"{what} refused to resume: {err}") from None
    except Exception as err:  # connection refused, HTTP errors: name the API the call went to
        from prefect.settings import PREFECT_API_URL

        api = PREFECT_API_URL.value() or "the ephemeral API of PREFECT_HOME"
        raise ReviewError(
            f"cannot reach the Prefect API ({api}) to resume {what}: {type(err).__name__}: {err}"
        ) from None
