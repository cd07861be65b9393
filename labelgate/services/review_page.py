"""The review page's data and the review API's issue list, as plain data.

What ``GET /runs/{run}`` renders (:func:`review_page_data`) and ``GET /api/runs/{run}/issues`` returns
(:func:`issues_data`), assembled from :mod:`labelgate.services.review` over the request's connection; the web
layer (:mod:`labelgate.web.review_routes`) parses the request, calls these and renders.

Every function taking ``con`` expects a short-lived connection from :func:`labelgate.store.connect`.
"""

from __future__ import annotations

from typing import Any

import duckdb

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core import explain
from labelgate.core.metrics import RunMetrics
from labelgate.services import review

#: rows one page shows by default (narrow the filters to see others)
PAGE_LIMIT = 500
#: most rows one page may ask for
MAX_PAGE_LIMIT = 5000


def review_page_data(
    con: duckdb.DuckDBPyConnection,
    run: str,
    *,
    scope: str = "flagged",
    issue_type: str = "",
    given: str = "",
    suggested: str = "",
    status: str = "all",
    query: str = "",
    limit: int = PAGE_LIMIT,
    novelty: str | None = None,
    annotator: str = "",
) -> dict[str, Any]:
    """Everything the review page shows for ``run``, filtered as :func:`labelgate.services.review.review_items`
    filters (an empty string: no such filter).

    Args:
        run: a run id, unique prefix or ``latest``.
        scope: ``flagged`` or ``all``; status: ``all``, ``decided`` or ``undecided``; novelty: ``new``, ``seen``,
            ``all`` or None (``new`` when earlier runs of the dataset saw some of the run's rows, else ``all``).
        limit: most rows in ``items``, clamped to 1..:data:`MAX_PAGE_LIMIT`.

    Returns:
        ``run_id``; ``run`` {run_id, dataset, status, message}; ``awaiting`` (the run waits for review);
        ``detected`` (the detectors ran); ``classes`` (the run's labels); ``items`` (the first ``limit`` matching
        items of :func:`labelgate.services.review.item_records`, each with ``related``, the related row or None,
        and ``basis``, :func:`labelgate.core.explain.label_basis` under the run's thresholds); ``matching`` (how
        many items match); ``limit`` (the clamped limit); ``filters`` {scope, issue_type, given, suggested,
        status, q, novelty, annotator} (novelty resolved); ``issue_types`` (every issue type of the scope,
        sorted); ``annotators`` (names, empty for a single-annotator run); ``progress``
        (:func:`labelgate.services.review.progress`).

    Raises:
        RunNotFoundError: ``run`` names no run (or is ambiguous).
        ReviewError: a filter value is not allowed.
    """
    run_id = store.resolve_run(con, run)
    if novelty is None:  # the page opens on what is new when earlier runs of the dataset saw some rows
        novelty = "new" if store.seen_rows(con, run_id) else "all"
    filters = {
        "scope": scope,
        "issue_type": issue_type,
        "given": given,
        "suggested": suggested,
        "status": status,
        "q": query,
        "novelty": novelty,
        "annotator": annotator,
    }
    record = store.run_record(con, run_id)
    everything = review.review_items(con, run_id, scope=scope)
    items = review.review_items(
        con,
        run_id,
        scope=scope,
        issue_type=issue_type or None,
        given=given or None,
        suggested=suggested or None,
        status=status,
        query=query or None,
        novelty=novelty,
        annotator=annotator or None,
    )
    limit = max(1, min(int(limit), MAX_PAGE_LIMIT))
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
        "filters": filters,
        "issue_types": sorted({t for ts in everything["issue_types"] for t in ts}),
        "annotators": review.run_annotators(con, run_id),
        "progress": review.progress(con, run_id),
    }


def issues_data(
    con: duckdb.DuckDBPyConnection,
    run: str,
    *,
    scope: str = "flagged",
    issue_type: str | None = None,
    given: str | None = None,
    suggested: str | None = None,
    status: str | None = None,
    query: str | None = None,
    limit: int | None = None,
    novelty: str | None = None,
    annotator: str | None = None,
) -> dict[str, Any]:
    """The rows to review of ``run`` as the review API returns them; the filters are those of
    :func:`labelgate.services.review.review_items` (None: no such filter).

    Args:
        run: a run id, unique prefix or ``latest``.
        limit: most rows in ``items`` (None or 0: every matching row).

    Returns:
        ``run_id``, ``classes``, ``progress`` (:func:`labelgate.services.review.progress`), ``count`` (how many
        rows match) and ``items`` (:func:`labelgate.services.review.item_records`).

    Raises:
        RunNotFoundError: ``run`` names no run (or is ambiguous).
        ReviewError: a filter value is not allowed.
    """
    run_id = store.resolve_run(con, run)
    items = review.review_items(
        con,
        run_id,
        scope=scope,
        issue_type=issue_type,
        given=given,
        suggested=suggested,
        status=status,
        query=query,
        novelty=novelty,
        annotator=annotator,
    )
    classes = review.run_classes(con, run_id)
    prog = review.progress(con, run_id)
    shown = items.head(limit) if limit else items
    return {
        "run_id": run_id,
        "classes": classes,
        "progress": prog,
        "count": len(items),
        "items": review.item_records(shown),
    }


def policy_thresholds(params: dict[str, Any]) -> dict[str, float | None]:
    """The run's auto-policy thresholds (the defaults where its parameters lack them): ``relabel_threshold``
    (float) and ``model_threshold`` (float or None)."""
    defaults = CurateParams.model_fields
    relabel = params.get("relabel_threshold", defaults["relabel_threshold"].default)
    model = params.get("relabel_model_threshold", defaults["relabel_model_threshold"].default)
    return {
        "relabel_threshold": float(relabel),
        "model_threshold": None if model is None else float(model),
    }
