"""Ingest task: read the input file into ``rows`` and unparseable records into ``quarantine``."""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import task

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.annotators import KIND_EMPTY_LABEL, LongInput, collapse_long
from labelgate.core.metrics import IngestMetrics
from labelgate.errors import ConfigError
from labelgate.services.inputs import read_input
from labelgate.tasks._common import TASK_OPTIONS


@task(name="ingest", **TASK_OPTIONS)
def ingest(db_path: str, run_id: str, input_path: str, params: CurateParams) -> IngestMetrics:
    """Read ``input_path`` (a file, or a folder or glob of batch files read as one input); store every record;
    return counts and notes. A batch input's files (path, rows, first_seq) go to the run's metrics as
    ``input_files``."""
    result = read_input(input_path, params.ingest_settings(), annotator_col=params.annotator_col)
    rows = result.rows.assign(run_id=run_id)
    quarantine = result.quarantine.assign(run_id=run_id, stage="ingest")
    extra: dict[str, Any] = {}
    annotations = None
    long = None
    if params.annotator_col is not None and result.annotators is not None:
        if result.id_source == "content-hash":
            raise ConfigError(
                f"--annotator-col {params.annotator_col} needs an item id column to group the labels of one item; "
                "the input has no 'id' column: pass --id-col NAME"
            )
        long = collapse_long(result.rows, result.annotators, broken_seqs=list(result.quarantine["seq"]))
        labels_in, unparsed = len(result.rows), len(result.quarantine)
    elif len(params.label_columns) > 1:
        long, labels_in, unparsed = _wide(input_path, params, result)
    if long is not None:
        rows = long.items.assign(run_id=run_id)
        quarantine = quarantine.iloc[0:0]  # unparseable records are not items; they are counted below
        annotations = long.annotations.assign(run_id=run_id)
        left_out = long.annotations["reason"].dropna()
        extra = {
            "labels_in": labels_in,
            "labels_unparsed": unparsed,
            "labels_left_out": len(left_out),
            "labels_left_out_reasons": long.annotations["reason_kind"].dropna().value_counts().to_dict(),
            "annotators": int(long.usable["annotator"].nunique()),
        }
    with store.connect(db_path) as con, store.transaction(con):
        store.replace_run_rows(con, "rows", run_id, rows)
        store.replace_run_rows(con, "quarantine", run_id, quarantine)
        store.replace_run_rows(con, "annotations", run_id, annotations)
        store.update_run(
            con,
            run_id,
            input_sha256=result.input_sha256,
            input_format=result.input_format,
            dataset_version=result.dataset_version,
        )
        figures = IngestMetrics(
            rows_in=len(rows),
            quarantined_ingest=len(quarantine),
            input_sha256=result.input_sha256,
            dataset_version=result.dataset_version,
            input_format=result.input_format,
            id_source=result.id_source,
            labels_normalised=result.labels_normalised,
            notes=result.notes,
            quarantine_reasons_ingest=result.reason_counts,
            input_files=result.input_files or None,
            **extra,
        )
        # until validate runs, the run's quarantine reasons are ingest's (a table-level failure keeps them)
        store.merge_metrics(con, run_id, {**figures.to_json(), "quarantine_reasons": dict(result.reason_counts)})
    return figures


def _wide(input_path: str, params: CurateParams, first: Any) -> tuple[LongInput, int, int]:
    """The wide format (one label column per annotator, named by the column) as long-format annotations.

    Returns the collapsed input, the number of labels (non-empty cells) and of unparseable records. Empty cells
    are labels nobody gave: they are dropped, not counted as left out.
    """
    columns = params.label_columns
    n = len(columns)
    parts, annotators, broken = [], [], []
    for j, column in enumerate(columns):
        read = first if j == 0 else read_input(input_path, params.ingest_settings(), label_col=column)
        part = read.rows.assign(row_id=first.rows["row_id"].to_numpy(), seq=read.rows["seq"] * n + j)
        parts.append(part)
        annotators.append(pd.Series([column] * len(part), dtype="object"))
        broken += [int(s) * n + j for s in read.quarantine["seq"]]
    rows = pd.concat(parts, ignore_index=True).sort_values("seq", kind="stable")
    who = pd.concat(annotators, ignore_index=True).loc[rows.index]
    long = collapse_long(rows.reset_index(drop=True), who.reset_index(drop=True), broken_seqs=broken)
    blank = (long.annotations["reason_kind"] == KIND_EMPTY_LABEL).to_numpy()
    annotations = long.annotations[~blank].reset_index(drop=True)
    return LongInput(items=long.items, annotations=annotations), len(annotations), len(first.quarantine)
