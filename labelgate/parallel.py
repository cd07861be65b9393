"""The detector's out-of-fold fits on every core of this machine: a pool of worker processes.

:func:`labelgate.core.probs.ensemble_oof_probs` takes a ``map_jobs(function, jobs)`` that runs its (member, fold)
jobs; every job is deterministic and independent, so *where* it runs cannot change a result. By default they run
one after another in the calling process: one core. :func:`pool_runner` runs them in ``workers`` processes
(``spawn``: a run's process holds Prefect's threads, and forking a threaded process can deadlock), each fitting
one job at a time on one BLAS thread, which is how :func:`labelgate.core.probs.run_oof_job` runs any job. The
function (and the plan it closes over: features, n-gram counts, folds) is sent to each worker once, when the
worker starts; a job sends only its name.

The plan's large arrays do not travel inside that message: each array of at least :data:`SHARE_MIN_BYTES` is
written once to a temporary ``.npy`` file, and every worker maps that file (copy-on-write) instead of holding a
private copy of every array. A worker's memory then holds the pages its current job reads (a ``chars`` job reads the
character n-gram counts, never the embeddings): after each job the worker gives the pages it read back
(:func:`_release_maps`), so they do not pile up job after job; the OS keeps one copy of those pages for all workers
in its file cache, and can drop them under pressure. Measured on 100,000 generated texts of 150 classes: see
``docs/benchmarks.md``.

A job's large result array comes back the same way (saved by its worker, mapped by the run's process), not pickled
through the pool's pipe.

An array that already is a read-only mapping of a whole ``.npy`` file (:func:`map_to_files`: the detect task maps
its embeddings and layer features so, before the fits start) travels as a reference to that file, not as a copy:
then the run's own process, which does not read those arrays while the fits run, does not hold them either.

Starting a worker costs about a second or two of importing numpy, scipy and scikit-learn, so small inputs stay in
one process (:func:`detect_workers`). ``$LABELGATE_DETECT_WORKERS`` sets the number of worker processes (``1``:
no pool).
"""

from __future__ import annotations

import contextlib
import io
import logging
import mmap
import multiprocessing
import os
import pickle
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.core.detect import serial_jobs
from labelgate.errors import ConfigError
from labelgate.heap import trim_heap

#: environment variable: worker processes of the detector's out-of-fold fits (default: the usable CPUs, at most 2
#: per :data:`MAX_DEFAULT_WORKERS`; ``1`` runs every fit in the run's own process)
WORKERS_ENV = "LABELGATE_DETECT_WORKERS"
#: the default number of workers is the usable CPUs, at most this many
MAX_DEFAULT_WORKERS = 4
#: below this many rows the fits stay in the run's process (a worker's start-up would cost more than it saves)
POOL_MIN_ROWS = 2_000
#: arrays of at least this many bytes reach the workers as memory-mapped files, not inside the pickled function
SHARE_MIN_BYTES = 4 * 2**20

_function: Callable[[Any], Any] | None = None
#: in a worker: the pool's folder, where a job's large result is saved (None: results travel pickled)
_results_folder: str | None = None
_saved_count = 0
_result_min_bytes = SHARE_MIN_BYTES
#: in a worker: the maps of the function's shared arrays, whose read pages :func:`_release_maps` gives back after a job
_input_maps: list[mmap.mmap] = []
#: id of each array :func:`map_to_files` returned -> (a weak reference to it, its ``.npy`` file)
_mapped_files: dict[int, tuple[weakref.ref, str]] = {}
_log = logging.getLogger("labelgate.parallel")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def detect_workers(n_rows: int, n_jobs: int, environ: dict[str, str] | None = None) -> int:
    """How many processes fit ``n_jobs`` out-of-fold jobs over ``n_rows`` rows: ``$LABELGATE_DETECT_WORKERS`` when
    set, else the usable CPUs (at most :data:`MAX_DEFAULT_WORKERS`), never more than the jobs; ``1`` (no pool) below
    :data:`POOL_MIN_ROWS` rows.

    Raises:
        ConfigError: ``$LABELGATE_DETECT_WORKERS`` is not a whole number of at least 1 (the message quotes it).
    """
    env = os.environ if environ is None else environ
    raw = env.get(WORKERS_ENV, "").strip()
    if raw:
        try:
            wanted = int(raw)
        except ValueError:
            wanted = 0
        if wanted < 1:
            raise ConfigError(f"{WORKERS_ENV}={raw!r} is not a whole number of at least 1")
    else:
        if n_rows < POOL_MIN_ROWS:
            return 1
        wanted = min(usable_cpus(), MAX_DEFAULT_WORKERS)
    return max(1, min(wanted, n_jobs))


class _SharingPickler(pickle.Pickler):
    """Pickles like :mod:`pickle`, except that every numeric numpy array of at least ``min_bytes`` is saved to a
    ``.npy`` file in ``folder`` and pickled as a reference to it (one file per array, however often it occurs)."""

    def __init__(self, file: io.BytesIO, folder: Path, min_bytes: int) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.folder = folder
        self.min_bytes = min_bytes
        self.saved: dict[int, tuple[np.ndarray, str]] = {}  # id -> (the array, kept alive while pickling; its file)

    def persistent_id(self, obj: Any) -> str | None:
        if not isinstance(obj, np.ndarray) or obj.dtype.hasobject or obj.nbytes < self.min_bytes:
            return None
        mapped = _mapped_file(obj)
        if mapped is not None:
            return mapped
        if type(obj) is not np.ndarray and not isinstance(obj, np.memmap):  # (a map whose file is gone: saved again)
            return None
        return self._save(obj)

    def _save(self, obj: np.ndarray) -> str:
        if id(obj) not in self.saved:
            path = self.folder / f"array-{len(self.saved)}.npy"
            np.save(path, obj, allow_pickle=False)
            self.saved[id(obj)] = (obj, str(path))
        return self.saved[id(obj)][1]

    def reducer_override(self, obj: Any) -> Any:
        """A scipy CSR/CSC matrix's large arrays are saved first and the matrix is pointed at read-only maps of their
        files (the same values): the process that shares it then holds its pages only while it reads them, not a copy
        beside the workers' (the text members' n-gram counts of a million texts are 2 GB). Then pickled as usual."""
        if getattr(obj, "format", None) in ("csr", "csc") and type(obj).__module__.startswith("scipy.sparse"):
            for name in ("data", "indices", "indptr"):
                array = getattr(obj, name)
                if (
                    type(array) is np.ndarray
                    and not array.dtype.hasobject
                    and array.nbytes >= self.min_bytes
                    and _mapped_file(array) is None
                ):
                    setattr(obj, name, _map_file(self._save(array)))
        return NotImplemented


class _SharingUnpickler(pickle.Unpickler):
    """Loads what :class:`_SharingPickler` wrote: each referenced array is mapped from its file, copy-on-write (a
    job that writes into it writes into its own copy of the pages it changes), once however often it occurs."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.mapped: dict[str, np.ndarray] = {}
        #: the ``mmap`` of each mapped file (for :func:`_release_maps`)
        self.maps: list[mmap.mmap] = []

    def persistent_load(self, pid: Any) -> np.ndarray:
        path = str(pid)
        if path not in self.mapped:
            mapped = np.load(path, mmap_mode="c")
            if isinstance(getattr(mapped, "_mmap", None), mmap.mmap):
                self.maps.append(mapped._mmap)
            self.mapped[path] = mapped.view(np.ndarray)
        return self.mapped[path]


def _release_maps(maps: Sequence[mmap.mmap]) -> None:
    """Drop the pages of ``maps`` (copy-on-write maps of shared files) from this process: the pages it read stay in
    the OS's file cache and are read again from there (a minor fault) when next touched, and any page a job wrote
    into is discarded, so the next job sees the file's values again. Without this, a worker's resident memory grows
    with every page of every shared input its jobs have ever read (at a million rows, 1.5 GB each of the embeddings
    and the layer features, in each worker beside its job's own arrays). Where ``madvise`` is missing (or refused),
    nothing changes."""
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None:
        return
    for mapped in maps:
        with contextlib.suppress(ValueError, OSError):  # closed, or the OS refuses: the pages stay, as before
            mapped.madvise(advice)


def map_to_files(arrays: Sequence[np.ndarray | None], stack: contextlib.ExitStack) -> list[np.ndarray | None]:
    """Each array saved as a ``.npy`` file in a temporary folder that ``stack`` removes when it closes, and returned as
    a read-only memory map of that file (None stays None).

    :func:`share` sends such an array as a reference to its file, so the caller can let go of the original: the
    mapped pages are the OS's file cache, in no process's memory until a process reads them. Close ``stack`` only
    after the pools that use the arrays (on Linux and macOS a removed file stays readable while it is mapped).
    Where no folder or file can be written (e.g. a full ``$TMPDIR``) the arrays are returned as they are, with a
    warning.
    """
    try:
        folder = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="labelgate-inputs-", ignore_cleanup_errors=True))
        )
        out: list[np.ndarray | None] = []
        for i, array in enumerate(arrays):
            if array is None:
                out.append(None)
                continue
            path = folder / f"input-{i}.npy"
            np.save(path, np.ascontiguousarray(array), allow_pickle=False)
            out.append(_map_file(str(path)))
        return out
    except OSError as err:
        _log.warning(
            "the detect inputs stay in this process's memory: cannot write them under %s (%s)",
            tempfile.gettempdir(),
            err,
        )
        return list(arrays)


def _map_file(path: str) -> np.ndarray:
    """A read-only memory map of the ``.npy`` file ``path``, which :func:`share` then sends as a reference to it."""
    mapped = np.load(path, mmap_mode="r")
    key = id(mapped)
    _mapped_files[key] = (weakref.ref(mapped, lambda _, key=key: _mapped_files.pop(key, None)), path)
    return mapped


def _mapped_file(obj: np.ndarray) -> str | None:
    """The ``.npy`` file of a :func:`map_to_files` array when ``obj`` is that whole array (itself or a view of all of
    it, e.g. ``np.asarray(mapped, dtype=its dtype)``), else None."""
    current: Any = obj
    while isinstance(current, np.ndarray):
        entry = _mapped_files.get(id(current))
        if entry is not None and entry[0]() is current:
            whole = (
                obj.shape == current.shape
                and obj.dtype == current.dtype
                and obj.strides == current.strides
                and obj.__array_interface__["data"][0] == current.__array_interface__["data"][0]
            )
            # a map of a pool's folder outlives the folder (removed with its pool): its file may be gone
            return entry[1] if whole and os.path.exists(entry[1]) else None
        current = current.base
    return None


def share(obj: Any, folder: Path, *, min_bytes: int | None = None) -> bytes:
    """``obj`` pickled, its numeric numpy arrays of at least ``min_bytes`` (default :data:`SHARE_MIN_BYTES`) saved as
    ``.npy`` files in ``folder`` (which must outlive every :func:`unshare` of the result) and referenced by path; a
    :func:`map_to_files` array is referenced by its own file (whose folder must outlive them too), not saved again."""
    buffer = io.BytesIO()
    _SharingPickler(buffer, folder, SHARE_MIN_BYTES if min_bytes is None else min_bytes).dump(obj)
    return buffer.getvalue()


def unshare(payload: bytes) -> Any:
    """The object :func:`share` pickled, its saved arrays memory-mapped from their files (copy-on-write)."""
    return _unshare_with_maps(payload)[0]


def _unshare_with_maps(payload: bytes) -> tuple[Any, list[mmap.mmap]]:
    """:func:`unshare`, and the maps of the files it mapped."""
    unpickler = _SharingUnpickler(io.BytesIO(payload))
    return unpickler.load(), unpickler.maps


def _payload(function: Callable[[Any], Any], stack: contextlib.ExitStack) -> tuple[bytes, str | None]:
    """``function`` :func:`share`-d into a temporary folder that ``stack`` removes when it closes, and that folder; the
    plain pickle (every worker then unpickles a copy of every array, as before there were files) and None when no
    folder or file can be written there, e.g. a full ``$TMPDIR``."""
    try:
        folder = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="labelgate-detect-", ignore_cleanup_errors=True))
        )
        return share(function, folder), str(folder)
    except OSError as err:
        _log.warning(
            "the detect workers get their own copies of the plan: cannot write it under %s (%s)",
            tempfile.gettempdir(),
            err,
        )
        return pickle.dumps(function, protocol=pickle.HIGHEST_PROTOCOL), None


@dataclass(frozen=True)
class _Saved:
    """A job's result array, saved by its worker to ``path`` (a ``.npy`` file) instead of being sent back pickled."""

    path: str


def _start_worker(payload: bytes, folder: str | None = None, min_bytes: int = SHARE_MIN_BYTES) -> None:
    global _function, _results_folder, _result_min_bytes, _input_maps
    _function, _input_maps = _unshare_with_maps(payload)
    _results_folder = folder
    _result_min_bytes = min_bytes


def _run(job: Any) -> tuple[Any, float]:
    assert _function is not None, "worker started without a function"
    began = time.perf_counter()
    result = _save_result(_function(job))
    seconds = time.perf_counter() - began
    _release_maps(_input_maps)  # the shared inputs' pages this job read: not held beside the next job's
    trim_heap()  # what the job made and dropped goes back to the OS, not held beside the next job's arrays
    return result, seconds


def _save_result(result: Any) -> Any:
    """A numeric array of at least :data:`SHARE_MIN_BYTES` saved in the pool's folder (:class:`_Saved`): the run's
    process then maps it instead of receiving a pickled copy (which needs the array, its pickle and, there, the bytes
    and the array again: 2.4 GB at once for one fold of a million rows x 150 classes). Anything else, or where the
    file cannot be written, is returned as it is."""
    if (
        _results_folder is None
        or type(result) is not np.ndarray
        or result.dtype.hasobject
        or result.nbytes < _result_min_bytes
    ):
        return result
    global _saved_count
    _saved_count += 1
    path = Path(_results_folder) / f"result-{os.getpid()}-{_saved_count}.npy"
    try:
        np.save(path, result, allow_pickle=False)
    except OSError:
        path.unlink(missing_ok=True)
        return result
    return _Saved(str(path))


def _load_result(result: Any) -> Any:
    """The array a worker saved (:func:`_save_result`), mapped copy-on-write from its file (which may be removed
    while mapped: the pool's folder goes when the pool is done); anything else as it is."""
    if isinstance(result, _Saved):
        return np.load(result.path, mmap_mode="c").view(np.ndarray)
    return result


def pool_runner(*, workers: int) -> Callable[..., list[Any]]:
    """A :data:`labelgate.core.detect.JobRunner` ``run_jobs(function, jobs, on_done)`` that runs the jobs in up to
    ``workers`` processes (never more than the jobs) and returns their results in the jobs' order.

    ``on_done(job, seconds, done, total)`` is called in this process as each job finishes (``seconds``: the job's own
    wall time in its worker), in the order they finish. With ``workers`` 1 (or one job) the jobs run in this
    process, one after another. A job that fails raises its exception here, once the pool has shut down.

    The function reaches the workers through :func:`share`: its large arrays are memory-mapped files in a temporary
    folder (``$TMPDIR``), removed when the pool has shut down (where no file can be written there, each worker gets
    its own copy, with a warning). A job's large result array comes back the same way: saved there by its worker and
    mapped here (copy-on-write; readable after the folder is removed, on Linux and macOS), so this process holds only
    the pages it reads and lets go of them with the array.
    """

    def run(
        function: Callable[[Any], Any], jobs: Sequence[Any], on_done: Callable[[Any, float, int, int], None]
    ) -> list[Any]:
        jobs = list(jobs)
        if workers <= 1 or len(jobs) <= 1:
            return serial_jobs(function, jobs, on_done)
        results: list[Any] = [None] * len(jobs)
        context = multiprocessing.get_context("spawn")
        trim_heap()  # this process's freed memory back to the OS before the workers start beside it
        with contextlib.ExitStack() as stack:
            pool = stack.enter_context(
                ProcessPoolExecutor(
                    max_workers=min(workers, len(jobs)),
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(*_payload(function, stack), SHARE_MIN_BYTES),
                )
            )
            pending = {pool.submit(_run, job): i for i, job in enumerate(jobs)}
            done = 0
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    i = pending.pop(future)
                    result, seconds = future.result()
                    results[i] = _load_result(result)
                    done += 1
                    on_done(jobs[i], seconds, done, len(jobs))
        return results

    return run
