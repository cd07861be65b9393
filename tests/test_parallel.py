"""How many worker processes the detector's out-of-fold jobs get (the pool itself: tests/test_parallel_pool.py)."""

from __future__ import annotations

import pytest

from labelgate.errors import ConfigError
from labelgate.parallel import POOL_MIN_ROWS, WORKERS_ENV, detect_workers

pytestmark = pytest.mark.unit


def test_small_inputs_stay_in_one_process_and_large_ones_use_the_cores(monkeypatch):
    monkeypatch.setattr("labelgate.parallel.usable_cpus", lambda: 2)
    assert detect_workers(POOL_MIN_ROWS - 1, 80, environ={}) == 1
    assert detect_workers(POOL_MIN_ROWS, 80, environ={}) == 2
    assert detect_workers(10**6, 1, environ={}) == 1  # never more workers than jobs
    monkeypatch.setattr("labelgate.parallel.usable_cpus", lambda: 64)
    assert detect_workers(10**6, 80, environ={}) == 4


def test_the_environment_sets_the_workers_and_a_bad_value_is_quoted():
    assert detect_workers(10, 80, environ={WORKERS_ENV: "3"}) == 3
    assert detect_workers(10**6, 80, environ={WORKERS_ENV: "1"}) == 1
    for bad in ("0", "two", "-1", "1.5"):
        with pytest.raises(ConfigError, match=rf"{WORKERS_ENV}='{bad}'"):
            detect_workers(10**6, 80, environ={WORKERS_ENV: bad})
