"""The review page's data and the review API's issue list, as plain data.

What ``GET /runs/{run}`` renders (:func:`review_page_data`) and ``GET /api/runs/{run}/issues`` returns
(:func:`issues_data`), assembled from :mod:`labelgate.services.review` over the request's connection; the web
layer (:mod:`labelgate.web.review_routes`) parses the request, calls these and renders.

Every function taking ``con`` expects a short-lived connection from :func:`labelgate.store.connect`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import duckdb

from labelgate import store
from labelgate.config import stored_default
from labelgate.core import explain
from labelgate.core.ambiguity import kind_counts
from labelgate.core.metrics import RunMetrics
from labelgate.services import review

#: rows one page shows by default (narrow the filters to see others)
PAGE_LIMIT = 500
#: most rows one page may ask for
MAX_PAGE_LIMIT = 5000


def review_page_data(
    con: duckdb.DuckDBPyConnection, run: str, *, filters: review.ReviewFilters | None = None
) -> dict[str, Any]:
    """Everything the review page shows for ``run``, its rows filtered by ``filters`` as
    :func:`labelgate.services.review.review_items` filters them (default: the flagged rows).

    Args:
        run: a run id, unique prefix or ``latest``.
        filters: ``novelty`` None opens on ``new`` when earlier runs of the dataset saw some of the run's rows, else
            on ``all``; ``limit`` (None: :data:`PAGE_LIMIT`) is clamped to 1..:data:`MAX_PAGE_LIMIT`.

    Returns:
        ``run_id``; ``run`` {run_id, dataset, status, message}; ``awaiting`` (the run waits for review);
        ``detected`` (the detectors ran); ``classes`` (the run's labels); ``items`` (the first ``limit`` matching
        items of :func:`labelgate.services.review.item_records`, each with ``related``, the related row or None,
        and ``basis``, :func:`labelgate.core.explain.label_basis` under the run's thresholds); ``matching`` (how
        many items match); ``limit`` (the clamped limit); ``filters`` (:func:`page_filters`, novelty resolved);
        ``issue_types`` (every issue type of the scope, sorted); ``label_kinds`` (how many label issues of the scope
        are of each kind, ``{"mislabelled": n, "ambiguous": n}``, kinds with none left out); ``annotators`` (names,
        empty for a single-annotator run); ``progress`` (:class:`labelgate.services.review.ReviewProgress`: its
        :meth:`~labelgate.services.review.ReviewProgress.to_dict` where the page sends it as JSON). Everything
        but ``progress`` is plain data.

    Raises:
        RunNotFoundError: ``run`` names no run (or is ambiguous).
        ReviewError: a filter value is not allowed.
    """
    f = review.ReviewFilters() if filters is None else filters
    run_id = store.resolve_run(con, run)
    if f.novelty is None:  # the page opens on what is new when earlier runs of the dataset saw some rows
        f = dataclasses.replace(f, novelty="new" if store.seen_rows(con, run_id) else "all")
    record = store.run_record(con, run_id)
    everything = review.review_items(con, run_id, filters=review.ReviewFilters(scope=f.scope))
    items = review.review_items(con, run_id, filters=f)
    limit = max(1, min(int(PAGE_LIMIT if f.limit is None else f.limit), MAX_PAGE_LIMIT))
    shown = review.item_records(items.head(limit))
    related = review.related_rows(con, run_id, [it["related_row_id"] for it in shown])
    thresholds = policy_thresholds(record["params_json"])
    for it in shown:
        it["related"] = related.get(it["related_row_id"] or "")
        it["basis"] = explain.label_basis(
            given_label=it["given_label"],
            suggested_label=it["suggested_label"],
            suggested_prob=it["suggested_prob"],
            model_prob=it["model_prob"],
            **thresholds,
        )
    return {
        "run_id": run_id,
        "run": {key: record.get(key) for key in ("run_id", "dataset", "status", "message")},
        "awaiting": record["status"] == review.AWAITING_REVIEW,
        "detected": RunMetrics.from_json(record["metrics_json"]).detected,
        "classes": review.run_classes(con, run_id),
        "items": shown,
        "matching": len(items),
        "limit": limit,
        "filters": page_filters(f),
        "issue_types": sorted({t for ts in everything["issue_types"] for t in ts}),
        "label_kinds": label_kind_counts(everything),
        "annotators": review.run_annotators(con, run_id),
        "progress": review.review_progress(con, run_id),
    }


def label_kind_counts(items: Any) -> dict[str, int]:
    """How many of ``items`` (:func:`labelgate.services.review.review_items`) are flagged label issues of each kind
    (:data:`labelgate.core.ambiguity.LABEL_KINDS` order; kinds with no row left out)."""
    is_label = items["issue_types"].map(lambda ts: "label" in ts).astype(bool)  # bool even when items is empty
    flagged = items.loc[is_label]
    return kind_counts(kinds=flagged["label_kind"])


def page_filters(filters: review.ReviewFilters) -> dict[str, str]:
    """The review page's filter values, named as its form's fields: ``{scope, issue_type, given, suggested, status,
    q, novelty, annotator, label_kind}``, each a string (None becomes ``""``; ``status`` None becomes ``all``)."""
    f = filters
    return {
        "scope": f.scope,
        "issue_type": f.issue_type or "",
        "given": f.given or "",
        "suggested": f.suggested or "",
        "status": "all" if f.status is None else f.status,
        "q": f.query or "",
        "novelty": f.novelty or "",
        "annotator": f.annotator or "",
        "label_kind": f.label_kind or "",
    }


def issues_data(
    con: duckdb.DuckDBPyConnection, run: str, *, filters: review.ReviewFilters | None = None
) -> dict[str, Any]:
    """The rows to review of ``run`` as the review API returns them (JSON-ready): those ``filters`` keep, as
    :func:`labelgate.services.review.review_items` filters them (default: the flagged rows).

    Args:
        run: a run id, unique prefix or ``latest``.
        filters: ``limit`` is the most rows in ``items`` (None or 0: every matching row).

    Returns:
        ``run_id``, ``classes``, ``progress`` (:meth:`labelgate.services.review.ReviewProgress.to_dict`), ``count``
        (how many rows match) and ``items`` (:func:`labelgate.services.review.item_records`).

    Raises:
        RunNotFoundError: ``run`` names no run (or is ambiguous).
        ReviewError: a filter value is not allowed.
    """
    f = review.ReviewFilters() if filters is None else filters
    run_id = store.resolve_run(con, run)
    items = review.review_items(con, run_id, filters=f)
    classes = review.run_classes(con, run_id)
    prog = review.review_progress(con, run_id).to_dict()
    shown = items.head(f.limit) if f.limit else items
    return {
        "run_id": run_id,
        "classes": classes,
        "progress": prog,
        "count": len(items),
        "items": review.item_records(shown),
    }


def policy_thresholds(params: dict[str, Any]) -> dict[str, float | None]:
    """The run's auto-policy thresholds (the defaults where its parameters lack them): ``relabel_threshold``
    (float), ``model_threshold`` and ``exclude_doubtful`` (float or None; a run stored before ``exclude_doubtful``
    existed had it off)."""
    relabel = params.get("relabel_threshold", stored_default("relabel_threshold"))
    model = params.get("relabel_model_threshold", stored_default("relabel_model_threshold"))
    doubtful = params.get("exclude_doubtful", stored_default("exclude_doubtful"))
    return {
        "relabel_threshold": float(relabel),
        "model_threshold": None if model is None else float(model),
        "exclude_doubtful": None if doubtful is None else float(doubtful),
    }
