"""trim_heap gives freed heap pages back to the OS (glibc) and is harmless elsewhere."""

from __future__ import annotations

import sys

import psutil
import pytest

from labelgate.heap import trim_heap

pytestmark = pytest.mark.unit


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_memory_below_a_live_object_goes_back_to_the_os() -> None:
    process = psutil.Process()
    blocks = [bytearray(32 * 1024) for _ in range(6000)]  # 192 MB on the heap (below glibc's mmap threshold)
    pinned = bytearray(32 * 1024)  # allocated after them: the heap's top stays in use, so free() keeps their pages
    del blocks
    before = process.memory_info().rss
    trim_heap()
    after = process.memory_info().rss
    assert before - after > 100 * 2**20, (before, after)
    assert len(pinned) == 32 * 1024
