"""How the detector's plan reaches its worker processes: large arrays as memory-mapped files, the rest pickled
(:func:`labelgate.parallel.share` / :func:`~labelgate.parallel.unshare`; arrays already mapped from files by
:func:`~labelgate.parallel.map_to_files`; the pool itself: test_parallel_pool.py)."""

from __future__ import annotations

import contextlib
import functools
import logging
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from labelgate.parallel import _release_maps, _unshare_with_maps, map_to_files, share, unshare

pytestmark = pytest.mark.unit


def _mapped(array: np.ndarray) -> bool:
    return isinstance(array.base, np.memmap)


def test_large_arrays_travel_as_files_and_small_ones_inside_the_pickle(tmp_path):
    big = np.arange(300_000, dtype=np.float64).reshape(1000, 300)  # 2.4 MB
    small = np.arange(10, dtype=np.int64)
    counts = sp.random(2000, 1000, density=0.2, format="csr", random_state=0, dtype=np.float64)
    texts = np.array(["a", "b"], dtype=object)
    obj = {"plan": functools.partial(np.add, big), "small": small, "counts": counts, "texts": texts, "again": big}

    payload = share(obj, tmp_path, min_bytes=1_000_000)

    assert len(payload) < 100_000  # the big array and the counts' data are not inside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["array-0.npy", "array-1.npy", "array-2.npy"]
    got = unshare(payload)
    assert np.array_equal(got["plan"].args[0], big) and _mapped(got["plan"].args[0])
    assert got["again"] is got["plan"].args[0]  # one array, one file, one mapping
    assert np.array_equal(got["small"], small) and not _mapped(got["small"])
    assert (got["counts"] != counts).nnz == 0 and _mapped(got["counts"].data) and _mapped(got["counts"].indices)
    assert list(got["texts"]) == ["a", "b"]


def test_a_job_that_writes_into_a_shared_array_changes_only_its_own_copy(tmp_path):
    payload = share({"x": np.zeros(1000)}, tmp_path, min_bytes=1)
    first = unshare(payload)["x"]
    first[:10] = 7.0
    assert unshare(payload)["x"].sum() == 0.0  # the file, and any other worker's mapping, are unchanged
    assert first.sum() == 70.0


def mapped_kib(path: Path) -> int:
    """Resident KiB of this process's maps of the file ``path`` (``/proc/self/smaps``)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if "-" in line.split(" ", 1)[0]:  # a mapping's header line: "start-end perms offset dev inode path"
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads /proc/self/smaps (Linux)")
def test_released_maps_give_back_the_pages_a_job_read_and_the_next_job_sees_the_files_values(tmp_path):
    big = np.arange(4_000_000, dtype=np.float64)  # 32 MB
    payload = share({"x": big}, tmp_path, min_bytes=1)
    got, maps = _unshare_with_maps(payload)
    (path,) = tmp_path.iterdir()
    assert len(maps) == 1
    assert got["x"].sum() == big.sum()  # a job reads every page
    got["x"][:10] = -1.0  # and writes into its copy of some
    assert mapped_kib(path) > 30_000
    _release_maps(maps)
    assert mapped_kib(path) < 1_000  # given back: without the release all 32 MB stay resident
    assert np.array_equal(got["x"][:20], big[:20])  # read again from the file: the write is gone
    assert got["x"].sum() == big.sum()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    array=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.bool_, np.uint8]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=8),
    ),
    min_bytes=st.sampled_from([0, 1, 64, 10**9]),
)
def test_any_numeric_array_comes_back_with_its_dtype_shape_and_values(tmp_path_factory, array, min_bytes):
    folder = tmp_path_factory.mktemp("share")
    got = unshare(share([array, array[::2]], folder, min_bytes=min_bytes))
    for want, back in zip([array, array[::2]], got):
        assert back.dtype == want.dtype and back.shape == want.shape
        assert np.array_equal(back, want, equal_nan=True)


def test_an_array_mapped_from_its_own_file_travels_as_that_file_and_is_not_written_again(tmp_path):
    vectors = np.arange(12_000, dtype=np.float32).reshape(1000, 12)
    with contextlib.ExitStack() as files:
        mapped, none = map_to_files([vectors, None], files)
        assert none is None and isinstance(mapped, np.memmap) and not mapped.flags.writeable
        source = Path(mapped.filename)
        assert source.exists() and np.array_equal(mapped, vectors)
        view = np.asarray(mapped, dtype=np.float32)  # what plan_oof keeps of float32 features: a view of all of it
        payload = share({"features": view, "half": view[::2], "copy": np.array(view)}, tmp_path, min_bytes=1)
        # the whole array is referenced by its own file; a part of it, or a copy, is saved as before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["array-0.npy", "array-1.npy"]
        got = unshare(payload)
        assert got["features"].base.filename == str(source) and np.array_equal(got["features"], vectors)
        assert np.array_equal(got["half"], vectors[::2]) and np.array_equal(got["copy"], vectors)
        got["features"][0, 0] = -1.0  # a worker's write stays in its own copy-on-write pages
        assert mapped[0, 0] == 0.0
    assert not source.exists()  # the folder goes with the stack
    assert mapped[999, 11] == 11_999.0  # and what is still mapped stays readable


def test_without_a_writable_temporary_folder_the_arrays_stay_as_they_are(monkeypatch, caplog):
    monkeypatch.setattr(tempfile, "tempdir", "/nonexistent/labelgate-tmp")
    vectors = np.ones((10, 3), dtype=np.float32)
    with caplog.at_level(logging.WARNING, logger="labelgate.parallel"), contextlib.ExitStack() as files:
        (got,) = map_to_files([vectors], files)
    assert got is vectors
    assert "stay in this process's memory" in caplog.text and "/nonexistent/labelgate-tmp" in caplog.text


def test_the_sharing_process_keeps_maps_of_its_sparse_matrices_and_can_share_them_again(tmp_path):
    """After share(), the caller's own CSR matrix reads its large arrays from the files the workers map (the same
    values; it holds no copy beside theirs), and once that folder is gone (its pool shut down) sharing the matrix
    again saves them anew."""
    counts = sp.random(2000, 1000, density=0.2, format="csr", random_state=0, dtype=np.float64)
    before = counts.copy()
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    got = unshare(share({"counts": counts}, first, min_bytes=1_000_000))["counts"]
    assert isinstance(counts.data, np.memmap) and isinstance(counts.indices, np.memmap)
    assert not isinstance(counts.indptr, np.memmap)  # 8 KB: pickled
    assert not counts.data.flags.writeable
    assert (counts != before).nnz == 0 and (got != before).nnz == 0
    for path in first.iterdir():
        path.unlink()
    first.rmdir()
    again = unshare(share({"counts": counts}, second, min_bytes=1_000_000))["counts"]
    assert (again != before).nnz == 0
    assert sorted(p.name for p in second.iterdir()) == ["array-0.npy", "array-1.npy"]
