"""The detector's out-of-fold jobs on worker processes: same results as one process, in the jobs' order.

Not in the unit layer: each test starts worker processes (a second or more each)."""

from __future__ import annotations

import functools
import logging
import operator
import tempfile
from pathlib import Path

import numpy as np
import pytest
from test_parallel_share import mapped_kib

from labelgate.core import probs
from labelgate.core.detect import _reporting_jobs, serial_jobs
from labelgate.parallel import pool_runner


def test_a_pool_returns_results_in_the_jobs_order_and_reports_every_job():
    done = []
    function = functools.partial(operator.mul, 3)
    got = pool_runner(workers=2)(function, list(range(7)), lambda job, s, d, t: done.append((job, d, t)))
    assert got == [3 * j for j in range(7)]
    assert sorted(job for job, _, _ in done) == list(range(7))
    assert [d for _, d, _ in done] == list(range(1, 8)) and {t for _, _, t in done} == {7}


def test_a_failing_job_raises_its_own_error_here():
    with pytest.raises(ZeroDivisionError):
        pool_runner(workers=2)(functools.partial(operator.truediv, 1), [1, 0, 2], lambda *a: None)


def _backing(array: np.ndarray, job: int) -> tuple[str, str | None, float]:
    return type(array.base).__name__, getattr(array.base, "filename", None), float(array[job])


def test_workers_map_the_functions_large_arrays_from_files_removed_when_the_pool_is_done():
    array = np.arange(600_000, dtype=np.float64)  # 4.8 MB: above SHARE_MIN_BYTES
    got = pool_runner(workers=2)(functools.partial(_backing, array), [0, 5, 599_999], lambda *a: None)
    assert [value for _, _, value in got] == [0.0, 5.0, 599_999.0]
    assert {kind for kind, _, _ in got} == {"memmap"}
    files = {Path(name) for _, name, _ in got}
    assert len(files) == 1 and not next(iter(files)).exists()


def _resident_then_read(array: np.ndarray, job: int) -> tuple[int, float]:
    """KiB of ``array``'s file resident in this worker when the job starts, then the job reads all of it."""
    before = mapped_kib(Path(array.base.filename))
    return before, float(array.sum())


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads /proc/self/smaps (Linux)")
def test_a_worker_gives_back_the_shared_pages_its_last_job_read_before_the_next_job():
    array = np.arange(4_000_000, dtype=np.float64)  # 32 MB, read whole by every job
    # 5 jobs on 2 workers: some worker runs a job after one of its own
    got = pool_runner(workers=2)(functools.partial(_resident_then_read, array), list(range(5)), lambda *a: None)
    assert [total for _, total in got] == [float(array.sum())] * 5
    assert max(before for before, _ in got) < 1_000  # without the release, 31,250 KiB after a first job


def test_without_a_writable_temporary_folder_each_worker_gets_a_copy_and_the_same_results(monkeypatch, caplog):
    monkeypatch.setattr(tempfile, "tempdir", "/nonexistent/labelgate-tmp")
    array = np.arange(600_000, dtype=np.float64)
    with caplog.at_level(logging.WARNING, logger="labelgate.parallel"):
        got = pool_runner(workers=2)(functools.partial(_backing, array), [0, 5, 599_999], lambda *a: None)
    assert [value for _, _, value in got] == [0.0, 5.0, 599_999.0]
    assert "memmap" not in {kind for kind, _, _ in got}
    assert "their own copies of the plan" in caplog.text and "/nonexistent/labelgate-tmp" in caplog.text


def test_ensemble_probabilities_do_not_depend_on_where_the_jobs_ran(monkeypatch):
    # every array of the plan reaches the workers as a file, and every job's result comes back as one
    monkeypatch.setattr("labelgate.parallel.SHARE_MIN_BYTES", 1)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    X = (rng.normal(size=(3, 8))[y] + rng.normal(size=(120, 8))).astype(np.float32)
    texts = [f"w{v} t{i % 5} {'?' if i % 2 else '!'}" for i, v in enumerate(y)]
    labels = [f"c{v}" for v in y]
    kw = {"texts": texts, "layer_features": X, "n_folds": 3}
    one = probs.ensemble_oof_probs(X, labels, map_jobs=_reporting_jobs(lambda *a: None, None, serial_jobs), **kw)
    seconds: dict[str, float] = {}
    reports: list[tuple] = []
    returned: list[np.ndarray] = []

    def pool(function, jobs, on_done):  # the pool's results, kept to look at
        results = pool_runner(workers=2)(function, jobs, on_done)
        returned.extend(results)
        return results

    pooled = probs.ensemble_oof_probs(
        X, labels, map_jobs=_reporting_jobs(lambda *a: reports.append(a), seconds, pool), **kw
    )
    assert pooled.probs.tobytes() == one.probs.tobytes()
    assert len(returned) == 12 and all(isinstance(r.base, np.memmap) for r in returned)
    assert set(seconds) == {"embedding", "words", "chars", "layers"}
    assert reports[0] == ("out-of-fold fits", 0, 12) and reports[-1] == ("out-of-fold fits", 12, 12)


def _block(n: int, job: int) -> np.ndarray:
    return np.full(n, float(job))


def test_large_results_come_back_as_files_mapped_here_and_small_ones_pickled():
    big = 600_000  # 4.8 MB of float64: above SHARE_MIN_BYTES
    got = pool_runner(workers=2)(functools.partial(_block, big), [0, 1, 2], lambda *a: None)
    assert [float(r[0]) for r in got] == [0.0, 1.0, 2.0] and all(len(r) == big and r.sum() == big * r[0] for r in got)
    assert all(type(r) is np.ndarray and isinstance(r.base, np.memmap) for r in got)
    files = {Path(r.base.filename) for r in got}
    assert len(files) == 3 and not any(f.exists() for f in files)  # the pool's folder is gone; the maps still read
    got[0][:3] = 9.0  # copy-on-write: writable, as a pickled result was
    assert got[0][:4].tolist() == [9.0, 9.0, 9.0, 0.0]
    small = pool_runner(workers=2)(functools.partial(_block, 10), [4, 5], lambda *a: None)
    assert [r.tolist() for r in small] == [[4.0] * 10, [5.0] * 10] and all(r.base is None for r in small)


def test_without_a_writable_temporary_folder_large_results_come_back_pickled(monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", "/nonexistent/labelgate-tmp")
    got = pool_runner(workers=2)(functools.partial(_block, 600_000), [0, 1], lambda *a: None)
    assert [float(r[-1]) for r in got] == [0.0, 1.0] and not any(isinstance(r.base, np.memmap) for r in got)
