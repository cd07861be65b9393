"""Running the review app: host checks, a blocking server (``labelgate serve``) and an embedded one.

The embedded server runs uvicorn in a daemon thread of the process that runs the curate flow, so
``labelgate run INPUT --gate human`` is one command: the flow pauses, the same process serves the
review page, "Finish review" resumes the flow through the Prefect API.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labelgate.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_host(host: str, token: str | None) -> None:
    """Refuse a non-loopback ``host`` without a token (anyone on the network could change labels).

    Raises:
        ConfigError: naming the host and the fix.
    """
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"refusing to serve the review app on non-loopback host {host!r} without a token; "
            "pass --token (or set LABELGATE_TOKEN), or bind 127.0.0.1"
        )


def base_url(host: str, port: int) -> str:
    """The URL a person opens for ``host:port`` (a wildcard bind is shown as 127.0.0.1)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _uvicorn_server(app: Any) -> Any:
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
    return uvicorn.Server(config)


def serve(
    app: Any,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until interrupted (blocking).

    ``announce`` is called with the base URL once the port is bound (port 0 picks a free one).

    Raises:
        ConfigError: non-loopback host without token, or the port is taken.
    """
    check_host(host, token)
    try:
        sock = _bind(host, port)
    except OSError as err:
        raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror or err}; choose another --port") from None
    server = _uvicorn_server(app)
    if announce is not None:
        announce(base_url(host, int(sock.getsockname()[1])))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@dataclass
class ReviewServerSettings:
    """Where the flow's embedded review server listens; read from the environment.

    - ``LABELGATE_REVIEW_SERVE``: ``auto`` (default: start it when the port is free; when it is taken,
      assume a ``labelgate serve`` already listens there) or ``off`` (never; e.g. a worker whose
      reviewers use a separate ``labelgate serve``)
    - ``LABELGATE_REVIEW_HOST`` / ``LABELGATE_REVIEW_PORT``: default 127.0.0.1 / 8765 (port 0: any free port)
    - ``LABELGATE_TOKEN``: the access token (needed for a non-loopback host)
    - ``LABELGATE_REVIEW_URL``: the base URL to announce instead (e.g. behind a proxy)
    """

    serve: str = "auto"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    public_url: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ReviewServerSettings:
        env = os.environ if environ is None else environ
        serve = env.get("LABELGATE_REVIEW_SERVE", "auto").strip().lower() or "auto"
        if serve not in ("auto", "off"):
            raise ConfigError(f"LABELGATE_REVIEW_SERVE must be 'auto' or 'off', got {serve!r}")
        port_text = env.get("LABELGATE_REVIEW_PORT", str(DEFAULT_PORT)).strip()
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(f"LABELGATE_REVIEW_PORT must be a port number, got {port_text!r}") from None
        if not 0 <= port <= 65535:
            raise ConfigError(f"LABELGATE_REVIEW_PORT must be in 0..65535, got {port}")
        return cls(
            serve=serve,
            host=env.get("LABELGATE_REVIEW_HOST", DEFAULT_HOST).strip() or DEFAULT_HOST,
            port=port,
            token=env.get("LABELGATE_TOKEN") or None,
            public_url=(env.get("LABELGATE_REVIEW_URL") or "").rstrip("/") or None,
        )


class EmbeddedServer:
    """The review app served from a daemon thread of this process; :meth:`stop` ends it."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        self.app = app
        self._sock = sock
        self._server = _uvicorn_server(app)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="labelgate-review-server", daemon=True
        )
        host, port = sock.getsockname()[:2]
        self.host = str(host)
        self.port = int(port)

    @classmethod
    def start(cls, app: Any, *, host: str, port: int, token: str | None, wait_s: float = 10.0) -> EmbeddedServer:
        """Bind ``host:port`` and serve ``app`` in a thread; return once it accepts connections.

        Raises:
            ConfigError: non-loopback host without token.
            OSError: the port is taken.
        """
        check_host(host, token)
        server = cls(app, _bind(host, port))
        server._thread.start()
        deadline = time.monotonic() + wait_s
        while not server._server.started and server._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        return server

    @property
    def url(self) -> str:
        return base_url(self.host, self.port)

    def stop(self, wait_s: float = 5.0) -> None:
        """Ask the server to exit and wait for its thread (at most ``wait_s`` seconds)."""
        self._server.should_exit = True
        self._thread.join(wait_s)
        try:
            self._sock.close()
        except OSError:  # pragma: no cover - already closed
            pass
