"""What every labelgate task shares: retry only on a busy database, never cache in Prefect.

Results live in DuckDB (the embedding cache is keyed by content hash there), so Prefect's own
result caching is off: tasks pass run ids and small summaries, not data.
"""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

from labelgate.config import CurateParams
from labelgate.core.ingest import IngestResult
from labelgate.errors import DatabaseBusyError
from labelgate.readers import read_dataset


def retry_if_busy(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a failed task only when the database was busy."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # pragma: no cover - result retrieval failed: do not retry blindly
        return False
    return isinstance(exc, DatabaseBusyError)


#: keyword arguments of every labelgate @task
TASK_OPTIONS: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "retries": 2,
    "retry_delay_seconds": 5,
    "retry_condition_fn": retry_if_busy,
    "persist_result": False,
}


def read_input(
    path: str, params: CurateParams, *, annotator_col: str | None = None, label_col: str | None = None
) -> IngestResult:
    """Read ``path`` with the run's format, column, encoding and label settings (input and test files alike).

    ``annotator_col``: the long format's annotator column (the input file only; a test file has one label per row).
    ``label_col``: the label column to read (default: the run's first label column).
    """
    return read_dataset(
        path,
        fmt=params.input_format,
        text_col=params.text_col,
        label_col=label_col or params.label_columns[0],
        id_col=params.id_col,
        encoding=params.encoding,
        delimiter=params.delimiter,
        label_case=params.label_case,
        annotator_col=annotator_col,
    )
