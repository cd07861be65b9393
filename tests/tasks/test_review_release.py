"""Issue 15, item 8: the human gate's review server outlives the review until a watching page has the outcome."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from labelgate.services import review_gate as review_task

pytestmark = pytest.mark.flow


class FakeServer:
    def __init__(self, watch: dict | None) -> None:
        self.app = SimpleNamespace(state=SimpleNamespace(outcome_watch={} if watch is None else {"r1": watch}))
        self.stopped_at: float | None = None

    def stop(self) -> None:
        self.stopped_at = time.monotonic()


def test_no_page_watching_stops_at_once() -> None:
    server = FakeServer(None)
    review_task._SERVING["r1"] = server
    started = time.monotonic()
    assert review_task.release_review_server("r1") is True
    assert server.stopped_at is not None and server.stopped_at - started < 0.5
    assert review_task.release_review_server("r1") is False  # released once


def _released_after_the_page_has_the_outcome(watch: dict, page) -> bool:
    """Release the server of run r1 while ``page(watch)`` runs in a thread (it sets ``served_at`` and ``final_served``
    when it gets the final outcome): whether the server stopped only after that."""
    server = FakeServer(watch)
    review_task._SERVING["r1"] = server
    thread = threading.Thread(target=page, args=(watch,))
    thread.start()
    review_task.release_review_server("r1", linger_s=5)
    thread.join()
    return server.stopped_at is not None and server.stopped_at >= watch["served_at"]


def _final(watch: dict) -> None:
    watch["served_at"] = time.monotonic()
    watch["final_served"] = True


def test_a_watching_page_gets_the_final_outcome_before_the_server_stops() -> None:
    def page(watch: dict) -> None:  # polls every 0.3 s; the third poll gets the final outcome
        for _ in range(3):
            time.sleep(0.3)
            watch["polled_at"] = time.monotonic()
        _final(watch)

    assert _released_after_the_page_has_the_outcome({"polled_at": time.monotonic(), "final_served": False}, page)


def test_a_page_the_busy_process_has_not_answered_for_seconds_still_gets_the_outcome() -> None:
    """Under load the export can keep the process from answering the page's polls for several seconds (CI,
    2026-12-03: a 3 s window let the server stop under a watching page); the page still counts as watching."""

    def page(watch: dict) -> None:  # the process answers again: the page's next poll gets the final outcome
        time.sleep(0.5)
        _final(watch)

    assert _released_after_the_page_has_the_outcome({"polled_at": time.monotonic() - 8, "final_served": False}, page)


def test_a_page_gone_quiet_does_not_hold_the_process() -> None:
    watch = {"polled_at": time.monotonic() - 60, "final_served": False}
    server = FakeServer(watch)
    review_task._SERVING["r1"] = server
    started = time.monotonic()
    review_task.release_review_server("r1", linger_s=5)
    assert server.stopped_at - started < 0.5
