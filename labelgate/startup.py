"""The start-up clock of a command's flow run: seconds from process start to the flow's first stage.

``labelgate run`` and ``labelgate demo`` run the flow in their own process inside :func:`command_run`; the flow
then records :func:`startup_seconds` in the run's metrics (``startup_seconds``, shown by ``labelgate runs --json``):
interpreter and imports, the pre-flight check, Prefect's ephemeral API, the warm-up of :mod:`labelgate.warmup` and
the flow run's creation (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

#: set inside :func:`command_run`: the flow runs in the process of a ``labelgate`` command
_STATE: dict[str, bool] = {"command": False}
#: fallback start time where /proc is not available: when this module was imported
_IMPORTED_AT = time.time()


def process_start_time() -> float:
    """When this process started (epoch seconds): from ``/proc/self/stat`` on Linux, else when this module was
    imported (a little later than the interpreter's start)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return time.time() - (uptime - started_after_boot)
    except (OSError, ValueError, IndexError, AttributeError):  # not Linux, or /proc unreadable
        return _IMPORTED_AT


@contextlib.contextmanager
def command_run() -> Iterator[None]:
    """Inside the block, the flow runs as the one run of a command's process (``labelgate run`` / ``demo``): its
    metrics record :func:`startup_seconds`. (A test session invoking commands in-process leaves the block, so its
    later flow runs record none.)"""
    before = _STATE["command"]
    _STATE["command"] = True
    try:
        yield
    finally:
        _STATE["command"] = before


def startup_seconds() -> float | None:
    """Seconds from process start to now (rounded to ms) in a command's process; None in any other process (a
    deployment's worker, a library call, a test session), where process start says nothing about this run."""
    if not _STATE["command"]:
        return None
    return round(max(time.time() - process_start_time(), 0.0), 3)


__all__ = ["command_run", "process_start_time", "startup_seconds"]
