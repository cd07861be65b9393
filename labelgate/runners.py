"""Where the curate flow's shard tasks run: the default runner, or a Dask cluster (``--runner dask``).

``runner="default"`` (the default): every stage runs in the flow's process, as plain task calls.

``runner="dask"``: prefect-dask's ``DaskTaskRunner`` (``pip install 'labelgate[dask]'``), either connected
to a running scheduler (``dask_address``, e.g. ``tcp://10.0.0.5:8786``) or on a ``LocalCluster`` of
``dask_workers`` single-threaded worker processes started for the run. Two stages are sharded:

- embedding: the texts missing from the cache are cut into the usual committed chunks and each chunk's
  encode batches are split between the workers (``embed-shard`` tasks load the model in the worker);
- scoring: one ``oof-job`` task per (ensemble member, fold) of the out-of-fold probabilities.

Everything that reads or writes DuckDB stays in the flow's process (DuckDB allows one writing process
per file): shard tasks get their inputs as arguments and return arrays. Results are the default
runner's: the embedding batches are the same (bitwise the same vectors), the jobs are the same fits.

Entry points: :func:`task_runner` gives the flow's task runner (:func:`labelgate.flows.curate.curate_flow`
wraps the flow with it; ``labelgate run`` uses that); a run
of the plain flow with ``params.runner == "dask"`` (a deployment, a library call) opens the same runner
for its sharded stages by itself (:func:`shard_runner`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlparse

from labelgate.config import CurateParams
from labelgate.errors import ConfigError

#: how to install what ``--runner dask`` needs
INSTALL_HINT = "pip install 'labelgate[dask]'"
#: seconds to wait for a scheduler (and for its first worker) before the run fails with a clear message
CONNECT_TIMEOUT_S = 10


def require_dask() -> None:
    """Raise :class:`ConfigError` (one line, naming the fix) unless prefect-dask and distributed import."""
    try:
        import distributed  # noqa: F401
        import prefect_dask  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            f"--runner dask needs the optional Dask packages ({err.name} is not installed): {INSTALL_HINT}"
        ) from None


def local_cluster_kwargs(n_workers: int) -> dict[str, Any]:
    """``LocalCluster`` settings of ``--runner dask`` without an address: ``n_workers`` processes of one thread.

    The embedding backend of each worker uses as many compute threads as a default run on this machine
    (``LABELGATE_EMBED_THREADS``, else the usable CPUs); its BLAS and OpenMP pools are sized by
    :func:`worker_thread_env` when the cluster starts.
    """
    from labelgate.embedding import THREADS_ENV, compute_threads

    return {
        "n_workers": n_workers,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,  # no web dashboard port (two runs at once would fight over :8787)
        "env": {THREADS_ENV: str(compute_threads())},
    }


def worker_thread_env() -> dict[str, str]:
    """This process's OpenMP and BLAS thread counts, for the local workers' environment.

    A result's last bits depend on how many threads computed it (torch bf16 between 1 and 2 threads: up to
    6e-4 on 13 of 2048 politeness vectors; a row near a threshold can move across it). Dask's nannies pin
    every worker's pools to one thread (``distributed.nanny.pre-spawn-environ``); the local workers get this
    process's counts instead, so a shard computes what the default runner computes here, bit for bit (torch's
    count is also set by ``LABELGATE_EMBED_THREADS``, and the out-of-fold jobs use one BLAS thread anywhere).
    The price: with more than one worker the CPUs are oversubscribed while embedding.
    """
    from threadpoolctl import threadpool_info

    from labelgate.embedding import compute_threads

    fallback = str(compute_threads())
    blas = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    blas_threads = str(max(blas)) if blas else os.environ.get("OPENBLAS_NUM_THREADS") or fallback
    return {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or fallback,
        "OPENBLAS_NUM_THREADS": blas_threads,
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS") or blas_threads,
        "MALLOC_TRIM_THRESHOLD_": "65536",  # dask's default, kept
    }


@contextmanager
def _spawn_environment(env: dict[str, str]) -> Iterator[None]:
    """Nannies spawn their workers with ``env`` (numpy and torch read it at import). A nanny also writes those
    variables into *this* process's environment before spawning: they are put back afterwards, or a torch
    imported later by the flow (the ``layers`` features) would start with one thread and compute other bits."""
    import dask

    touched = [*env, "PYTHONHASHSEED"]
    saved = {k: os.environ.get(k) for k in touched}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": env}):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def task_runner(params: CurateParams) -> Any | None:
    """The Prefect task runner of ``params.runner``: None for ``default`` (the flow keeps its own), else a
    ``DaskTaskRunner`` (not started: its cluster or connection is made when the first shard is submitted).

    Raises:
        ConfigError: ``runner="dask"`` without the ``dask`` extra installed.
    """
    if params.runner != "dask":
        return None
    require_dask()
    from prefect_dask import DaskTaskRunner

    client_kwargs = {"timeout": f"{CONNECT_TIMEOUT_S}s"}
    if params.dask_address:
        return DaskTaskRunner(address=params.dask_address, client_kwargs=client_kwargs)
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(params.dask_workers), client_kwargs=client_kwargs)


def describe(runner: Any) -> dict[str, Any]:
    """The run's figures about a connected Dask runner: scheduler address, workers and their threads."""
    nthreads = runner.client.nthreads()
    return {
        "runner": "dask",
        "scheduler": str(runner.client.scheduler.address),
        "workers": sorted(nthreads),
        "threads": int(sum(nthreads.values())),
    }


def worker_threads(runner: Any) -> int:
    """Threads over every worker of the connected cluster (how many shards run at once)."""
    return max(1, int(sum(runner.client.nthreads().values())))


@contextmanager
def shard_runner(params: CurateParams) -> Iterator[Any]:
    """Inside the flow: the connected ``DaskTaskRunner`` to submit shard tasks to.

    The flow's own task runner when it is a ``DaskTaskRunner`` (``labelgate run --runner dask``), else one
    built from ``params`` for the duration of the block (a deployment or library run of the plain flow).
    When this process talks to an ephemeral Prefect API (no ``PREFECT_API_URL``), the workers are told
    its address, so their task runs are recorded in the same place instead of each starting its own.

    Raises:
        ConfigError: the extra is missing, the scheduler cannot be reached or has no worker, or remote
            workers would have to report to a Prefect API on this machine's loopback address.
    """
    require_dask()
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_dask import DaskTaskRunner

    ctx = FlowRunContext.get()
    with ExitStack() as stack:
        runner = ctx.task_runner if ctx is not None and isinstance(ctx.task_runner, DaskTaskRunner) else None
        if runner is None:
            runner = stack.enter_context(task_runner(params))
        client = _connect(runner, params)
        api_url = PREFECT_API_URL.value() or (str(ctx.client.api_url) if ctx is not None else "")
        if api_url and not PREFECT_API_URL.value():
            stack.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))
        check_api_reachable(list(client.nthreads()), api_url)
        yield runner


def _where(params: CurateParams) -> str:
    return f"the Dask scheduler at {params.dask_address}" if params.dask_address else "the local Dask cluster"


def _connect(runner: Any, params: CurateParams) -> Any:
    local = runner.address is None and getattr(runner, "_cluster", None) is None
    try:
        with _spawn_environment(worker_thread_env()) if local else contextlib.nullcontext():
            client = runner.client  # starts the LocalCluster, or connects to the address
    except OSError as err:  # refused, timed out, unknown host (TimeoutError and socket.gaierror are OSErrors)
        hint = (
            "start it with `dask scheduler` and `dask worker ADDRESS` on each machine, or leave --dask-address out"
            " to run a local cluster"
            if params.dask_address
            else "check --dask-workers"
        )
        raise ConfigError(f"cannot reach {_where(params)}: {_first_line(err)}; {hint}") from None
    except RuntimeError as err:  # "Nanny failed to start": the worker processes could not be spawned
        if params.dask_address:
            raise
        raise ConfigError(
            f"cannot start the local Dask cluster: {_first_line(err)} (a script that runs the flow with "
            "runner 'dask' must do so under `if __name__ == '__main__':`, as multiprocessing requires)"
        ) from None
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except TimeoutError:
        raise ConfigError(
            f"{_where(params)} has no worker after {CONNECT_TIMEOUT_S} s; start `dask worker "
            f"{params.dask_address or 'ADDRESS'}` on each machine with labelgate installed"
        ) from None
    return client


def check_api_reachable(worker_addresses: list[str], api_url: str) -> None:
    """Raise :class:`ConfigError` when a worker on another machine would have to report its task runs to a
    Prefect API on this machine's loopback address (an ephemeral API, or PREFECT_API_URL on 127.0.0.1).

    ``worker_addresses``: the workers' Dask addresses (``tcp://HOST:PORT``).
    """
    api_host = urlparse(api_url).hostname or ""
    if not _is_loopback(api_host):
        return
    remote = sorted({urlparse(addr).hostname or "" for addr in worker_addresses} - {""})
    remote = [host for host in remote if not _is_local(host)]
    if remote:
        raise ConfigError(
            f"Dask workers on {', '.join(remote)} cannot reach this run's Prefect API at {api_url}: run a Prefect "
            "server they can reach (`prefect server start --host 0.0.0.0`) and set PREFECT_API_URL to it"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_local(host: str) -> bool:
    """Whether ``host`` (a worker's address) is this machine."""
    if _is_loopback(host) or host in (socket.gethostname(), socket.getfqdn()):
        return True
    try:
        import psutil  # a dependency of distributed

        mine = {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs}
    except Exception:  # pragma: no cover - psutil missing or refusing: treat as remote (the safe answer)
        return False
    return host in mine


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


__all__ = [
    "CONNECT_TIMEOUT_S",
    "INSTALL_HINT",
    "check_api_reachable",
    "describe",
    "local_cluster_kwargs",
    "require_dask",
    "shard_runner",
    "task_runner",
    "worker_thread_env",
    "worker_threads",
]
