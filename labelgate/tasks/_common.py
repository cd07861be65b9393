"""What every labelgate task shares: retry only on a busy database, never cache in Prefect.

Results live in DuckDB (the embedding cache is keyed by content hash there), so Prefect's own
result caching is off: tasks pass run ids and small summaries, not data.
"""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import NO_CACHE

from labelgate.errors import DatabaseBusyError


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
