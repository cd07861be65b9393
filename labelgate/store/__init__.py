"""The DuckDB store: one schema, created and migrated here (:mod:`labelgate.store.schema`), and short-lived
connections.

DuckDB lets only one process open a database file while any connection in it
writes, so labelgate never holds a connection across a long step or a pause:
each stage opens the file, does its reads or its writes in one transaction and
closes it (:func:`connect`). A second process that finds the file locked waits
with a bounded back-off and then raises :class:`~labelgate.errors.DatabaseBusyError`.

Tables (every one keyed by ``run_id`` or by content hash; nothing is overwritten
across runs; a stage that is re-run inside the same run replaces only its own rows):

- ``runs``: one row per flow run (input, parameters, status, metrics)
- ``rows``: every ingested record verbatim, ``seq`` is its position in the input
- ``quarantine``: rows that failed a row-level check, with the reason
- ``validations``: the Great Expectations result per run
- ``embeddings``: the vector cache shared by all runs, keyed by (model, text sha256)
- ``detections``: per run, the probability model and its classes
- ``predictions``: out-of-fold predicted probabilities per row
- ``issues``: one row per (run, row, issue type) for every detector
- ``decisions``: append-only gate decisions; the latest per row wins
- ``exports``: every file written
- ``evaluations``: before/after proxy-classifier scores on a held-out test file
- ``quality``: the quality gate's verdict per run (checks, reasons, the previous version compared with)
- ``memory``: append-only log of the decisions remembered per dataset and row content (curation memory)
- ``annotations``, ``consensus``, ``annotator_quality``: several annotators per item

Every SQL statement of labelgate lives in this package (``tests/test_architecture.py`` checks it), one module per
concern: :mod:`~labelgate.store.schema` (the tables and their migrations, the one place the schema changes),
:mod:`~labelgate.store.connection` (opening the file, waiting for a busy one, the owner file),
:mod:`~labelgate.store.base` and :mod:`~labelgate.store.tables` (transactions, query helpers, writes by table
name), then one module per table family: :mod:`~labelgate.store.runs`, :mod:`~labelgate.store.rows`,
:mod:`~labelgate.store.embeddings`, :mod:`~labelgate.store.detections`, :mod:`~labelgate.store.decisions`,
:mod:`~labelgate.store.memory`, :mod:`~labelgate.store.exports`, :mod:`~labelgate.store.evaluation`,
:mod:`~labelgate.store.annotators`, :mod:`~labelgate.store.quality`. Callers use the names re-exported here:
``from labelgate import store; store.valid_rows(con, run_id)``.
"""

from __future__ import annotations

from labelgate.store.annotators import (
    annotator_table,
    label_pairs,
    relabel_queue,
    set_item_labels,
    usable_annotations,
)
from labelgate.store.base import has_table, query_df, scalar, transaction
from labelgate.store.connection import DEFAULT_WAIT_S, WAIT_ENV, connect, default_wait_s, owner_path, set_process_run
from labelgate.store.decisions import count_decisions, decision_log, held_rows, insert_decision, latest_decisions
from labelgate.store.detections import (
    copy_detection,
    count_label_issues,
    count_label_issues_by_kind,
    detection_classes,
    flagged_issues,
    flagged_row_ids,
    issue_rows,
    predictions_with_labels,
    replace_issues_of_type,
    replace_label_issues,
    reusable_detection,
    row_issues,
    run_predictions,
    save_detection,
    set_detection_key,
    top_label_issues,
)
from labelgate.store.embeddings import cached_hashes, get_embeddings, put_embeddings, vectors_to_arrow
from labelgate.store.evaluation import evaluations, latest_evaluations, save_evaluation
from labelgate.store.exports import export_folders, record_export
from labelgate.store.memory import (
    content_decisions,
    content_keys,
    current_memory,
    memory_entries,
    memory_for_run,
    memory_undo_target,
    remember,
    remember_policy_decisions,
    replace_memory_decisions,
    seen_rows,
)
from labelgate.store.quality import quality_row, save_quality
from labelgate.store.rows import (
    class_counts,
    count_quarantined,
    count_rows,
    count_valid_rows,
    counts_after_decisions,
    given_labels,
    quarantine_kinds,
    rows_by_id,
    save_validation,
    valid_rows,
)
from labelgate.store.runs import (
    close_run,
    datasets,
    ended_runs,
    insert_run,
    mark_crashed_runs,
    merge_metrics,
    previous_version,
    resolve_run,
    run_dataset,
    run_history_rows,
    run_of_flow_run,
    run_record,
    run_status,
    runs_table,
    stored_metrics,
    update_run,
)
from labelgate.store.schema import SCHEMA_VERSION, migrate
from labelgate.store.tables import insert_frame, replace_run_rows

__all__ = [
    "DEFAULT_WAIT_S",
    "SCHEMA_VERSION",
    "WAIT_ENV",
    "annotator_table",
    "cached_hashes",
    "class_counts",
    "close_run",
    "connect",
    "content_decisions",
    "content_keys",
    "copy_detection",
    "count_decisions",
    "count_label_issues",
    "count_label_issues_by_kind",
    "count_quarantined",
    "count_rows",
    "count_valid_rows",
    "counts_after_decisions",
    "current_memory",
    "datasets",
    "decision_log",
    "default_wait_s",
    "detection_classes",
    "ended_runs",
    "evaluations",
    "export_folders",
    "flagged_issues",
    "flagged_row_ids",
    "get_embeddings",
    "given_labels",
    "has_table",
    "held_rows",
    "insert_decision",
    "insert_frame",
    "insert_run",
    "issue_rows",
    "label_pairs",
    "latest_decisions",
    "latest_evaluations",
    "mark_crashed_runs",
    "memory_entries",
    "memory_for_run",
    "memory_undo_target",
    "merge_metrics",
    "migrate",
    "owner_path",
    "predictions_with_labels",
    "previous_version",
    "put_embeddings",
    "quality_row",
    "quarantine_kinds",
    "query_df",
    "record_export",
    "relabel_queue",
    "remember",
    "remember_policy_decisions",
    "replace_issues_of_type",
    "replace_label_issues",
    "replace_memory_decisions",
    "replace_run_rows",
    "resolve_run",
    "reusable_detection",
    "row_issues",
    "rows_by_id",
    "run_dataset",
    "run_history_rows",
    "run_of_flow_run",
    "run_predictions",
    "run_record",
    "run_status",
    "runs_table",
    "save_detection",
    "save_evaluation",
    "save_quality",
    "save_validation",
    "scalar",
    "seen_rows",
    "set_detection_key",
    "set_item_labels",
    "set_process_run",
    "stored_metrics",
    "top_label_issues",
    "transaction",
    "update_run",
    "usable_annotations",
    "valid_rows",
    "vectors_to_arrow",
]
