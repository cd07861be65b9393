"""Give a process's freed heap memory back to the operating system.

glibc keeps the memory of freed objects in its heap for reuse instead of returning it, and numpy's mid-sized arrays
(below glibc's mmap threshold, which grows with use) live there: after a stage that made and dropped many of them the
process still holds their pages. :func:`trim_heap` asks glibc to return the free pages (``malloc_trim(0)``); a few
milliseconds, and nothing changes for the program but its resident memory.
"""

from __future__ import annotations

import ctypes


def trim_heap() -> None:
    """glibc's ``malloc_trim(0)``: return the free pages of this process's heap to the OS (a no-op elsewhere)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim this way
        pass
