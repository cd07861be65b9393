"""Notifications against a real HTTP server on 127.0.0.1 started by the test: the webhook client, and the
curate flow's on-failure hook posting when the quality gate blocks a run."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from labelgate.errors import ConfigError
from labelgate.services import notify

pytestmark = pytest.mark.unit


class Hook:
    """A webhook receiver: records every POST and answers with the queued status codes (then 200)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"nope")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/labelgate?token=s3cret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_post_webhook_sends_the_payload_as_json(hook: Hook) -> None:
    assert notify.post_webhook(hook.url, {"text": "hello", "n": 1}) == 200
    (req,) = hook.received
    assert req["path"] == "/hooks/labelgate?token=s3cret"
    assert req["headers"]["Content-Type"] == "application/json"
    assert json.loads(req["body"]) == {"text": "hello", "n": 1}


def test_a_5xx_answer_is_retried_once(hook: Hook) -> None:
    hook.statuses = [503]
    assert notify.post_webhook(hook.url, {"text": "x"}) == 200
    assert len(hook.received) == 2


def test_a_4xx_answer_raises_without_retry_and_hides_the_query(hook: Hook) -> None:
    hook.statuses = [404]
    with pytest.raises(notify.NotifyError) as err:
        notify.post_webhook(hook.url, {"text": "x"})
    assert len(hook.received) == 1
    assert "HTTP 404" in str(err.value) and "s3cret" not in str(err.value)


def test_an_unreachable_webhook_raises() -> None:
    with pytest.raises(notify.NotifyError, match="did not take the notification"):
        notify.post_webhook(f"http://127.0.0.1:{_closed_port()}/x", {"text": "x"}, timeout_s=2)


@pytest.mark.parametrize("url", ["ftp://example.org/x", "hooks.example.org/x", "http://"])
def test_only_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(ConfigError, match="LABELGATE_NOTIFY_URL must be an http"):
        notify.check_url(url)


def test_nothing_is_sent_without_a_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(notify.URL_ENV, raising=False)
    assert notify.notify_failed_run(str(tmp_path / "none.duckdb"), "0000") is None
    with pytest.raises(ConfigError, match="LABELGATE_NOTIFY_ON"):
        notify.notify_failed_run(str(tmp_path / "none.duckdb"), "0000", url="http://127.0.0.1:9/x", on="sometimes")
