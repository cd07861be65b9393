"""How the detector's plan reaches its worker processes: large arrays as memory-mapped files, the rest pickled
(:func:`labelgate.parallel.share` / :func:`~labelgate.parallel.unshare`; the pool itself: test_parallel_pool.py)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from labelgate.parallel import share, unshare

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
