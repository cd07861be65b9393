"""Tasks that open and close a run's record in the ``runs`` table."""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

import labelgate
from labelgate import store
from labelgate.batches import batch_dataset_name
from labelgate.config import CurateParams
from labelgate.tasks._common import TASK_OPTIONS


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable, unique run id such as ``20261121T181530-3fa9c2``."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


@task(name="start-run", **TASK_OPTIONS)
def start_run(db_path: str, input_path: str, params: CurateParams, flow_run_id: str | None = None) -> str:
    """Insert the ``runs`` row (status ``running``, with this process's pid and host) and return the new run id.

    Runs left ``running`` by a process that is gone (killed) are marked ``crashed`` in the same transaction.
    """
    run_id = new_run_id()
    dataset = params.dataset or batch_dataset_name(input_path)  # a file's stem, a folder's or a glob's folder name
    store.set_process_run(run_id)
    with store.connect(db_path) as con, store.transaction(con):
        store.insert_run(
            con,
            run_id=run_id,
            dataset=dataset,
            input_path=str(Path(input_path).resolve()),
            params_json=params.model_dump_json(),
            flow_run_id=flow_run_id,
            labelgate_version=labelgate.__version__,
            pid=os.getpid(),
            host=socket.gethostname(),
        )
        crashed = store.mark_crashed_runs(con, except_run=run_id)
    if crashed:
        _log().warning("marked %d run(s) whose process is gone as crashed: %s", len(crashed), ", ".join(crashed))
    return run_id


def _log() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except Exception:  # outside a Prefect run (a direct call of .fn)
        return logging.getLogger("labelgate")


@task(name="finish-run", **TASK_OPTIONS)
def finish_run(db_path: str, run_id: str, status: str, message: str | None, metrics: dict[str, Any]) -> dict[str, Any]:
    """Close the run with ``status`` (completed or failed) and merge ``metrics``; return all metrics."""
    with store.connect(db_path) as con, store.transaction(con):
        merged = store.merge_metrics(con, run_id, metrics)
        store.close_run(con, run_id=run_id, status=status, message=message)
    store.set_process_run(None)
    return merged
