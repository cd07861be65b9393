"""Start-up of a flow run in a command's process (``labelgate run`` / ``labelgate demo``).

Without a ``PREFECT_API_URL``, Prefect starts its ephemeral API as a server subprocess at the flow's first API
call and waits for it (about 10 s on 2 cores with an existing ``PREFECT_HOME``, about 20 s on a fresh one, where
its database is created), this process idle meanwhile; before that, this process imports Prefect's server module
(~4 s) only to start it; then the validate stage imports Great Expectations and creates its context, and the
embed stage imports sentence-transformers (torch) and loads the model. On a cold run of the bundled sample those
were ~30 s of a ~70 s command outside the stages' own work (docs/benchmarks.md).

:func:`warm_start` overlaps them:

1. it spawns the ephemeral server first, before Prefect is imported here: the same command and environment
   Prefect's ``SubprocessASGIServer`` uses (uvicorn on ``prefect.server.api.server:create_app`` with
   ``PREFECT__SERVER_EPHEMERAL=1`` on a free port of 8000-8999; the server reads the same settings, profile and
   ``PREFECT_HOME``), and a thread waits for its health check;
2. while the server comes up, this process imports the flow's modules (Prefect and its server module among them),
   creates the GX context and loads the embedding model, the first work of the stages (each step only while the
   server is still starting), so the second core is used;
3. it hands the running server to Prefect's ``SubprocessASGIServer`` (the instance every Prefect client of the
   process asks for), which then only connects, and stops it at exit as its own.

Nothing changes in what a run computes: the stages get the same cached GX engine and model they would have
created themselves (:func:`labelgate.gx.default_engine`, :func:`labelgate.embedding.prepare`). Where anything
of this fails (a configured ``PREFECT_API_URL``, also one from a Prefect profile; a server that does not come up;
another Prefect version), the early server is stopped and the flow starts its API itself, as it always did, with
Prefect's own errors. ``LABELGATE_WARM_START=0`` turns it all off.

The wall from process start to the flow's first stage is recorded in each such run's metrics
(``startup_seconds``, :mod:`labelgate.startup`).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import importlib.util
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``LABELGATE_WARM_START=0`` (or false/no/off): no early server, no warm-up (the flow starts its API itself)
ENABLE_ENV = "LABELGATE_WARM_START"
#: the ports Prefect's ephemeral server picks from (``SubprocessASGIServer._port_range``)
PORTS = range(8000, 9000)
#: the uvicorn exit code of a port taken in the meantime: pick another (as Prefect does)
PORT_IN_USE_EXIT = 3


@dataclass
class WarmStart:
    """What :func:`warm_start` did.

    Attributes:
        server: whether the ephemeral API was started here and handed to Prefect (False: ``PREFECT_API_URL`` is
            set, warm start is off, or the early server failed; the flow then starts its API itself).
        server_seconds: wall seconds from spawning the server to its first healthy answer (None: not started here).
        warmed: warm-up step -> its wall seconds, in the order they ran (``flow modules``, ``prefect client``,
            ``gx context``, ``embedding model``).
        skipped: warm-up steps not run: the server was up first, or the run may not need them.
        errors: step (or ``server``) -> the error it raised; a step's error is left for its stage to raise again
            with its own message.
    """

    server: bool = False
    server_seconds: float | None = None
    warmed: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def enabled() -> bool:
    """Whether warm start is on (``$LABELGATE_WARM_START`` is not 0/false/no/off)."""
    return os.environ.get(ENABLE_ENV, "").strip().lower() not in ("0", "false", "no", "off")


def warm_start(*, model: str, runner: str, db_path: str, backend: str = "auto") -> WarmStart:
    """Start the ephemeral Prefect API early and, while it comes up, do the stages' first slow work here.

    Returns once the server answers and is handed to Prefect (or failed and was stopped: the flow's own start
    then reports the problem as before). Call it before the flow runs, in the process that runs it.

    Args:
        model: the run's embedding model (``CurateParams.model``); loaded ahead only with ``runner="default"``
            (with ``dask`` the workers load it) and when ``db_path`` does not exist yet (a new database has no
            cached vectors, so the embed stage loads the model for certain; an existing one may hold them all).
        runner: ``default`` or ``dask`` (``CurateParams.runner``).
        db_path: the run's DuckDB file.
        backend: the run's embedding backend (``CurateParams.embed_backend``): resolved here, and what encoding on
            it needs is loaded (:func:`labelgate.embedding.prepare`: on ONNX with a standalone tokenizer, the ONNX
            session alone, no torch).
    """
    result = WarmStart()
    if not enabled():
        return result
    server = EarlyServer.spawn(result) if not os.environ.get("PREFECT_API_URL") else None
    _step(result, "flow modules", _import_flow_modules)  # needed anyway; imports Prefect and its settings
    if server is not None and _configured_api():  # a PREFECT_API_URL from a profile: no ephemeral API
        server.stop()
        server = None
    if server is None:
        return result
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("prefect client", _import_server_module),
        ("gx context", _gx_context),
    ]
    if runner == "default" and not Path(db_path).exists():
        steps.append(("embedding model", lambda: _prepare_embedding(model, backend)))
    else:
        result.skipped.append("embedding model")
    for name, step in steps:
        if server.ready.is_set():
            result.skipped.append(name)
        else:
            _step(result, name, step)
    server.hand_over(result)
    return result


def _step(result: WarmStart, name: str, step: Callable[[], Any]) -> None:
    began = time.perf_counter()
    try:
        step()
    except Exception as err:  # the stage runs the same code again and reports the error itself
        result.errors[name] = f"{type(err).__name__}: {err}"
    result.warmed[name] = round(time.perf_counter() - began, 3)


class EarlyServer:
    """Prefect's ephemeral API server, spawned before Prefect is imported here; :meth:`hand_over` gives it to
    Prefect's ``SubprocessASGIServer``. A thread polls its health check until it answers (``ready``) or fails."""

    def __init__(self, result: WarmStart) -> None:
        self.result = result
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.healthy = False
        self.ready = threading.Event()  # set when the server answers or has failed
        self._began = time.perf_counter()

    @classmethod
    def spawn(cls, result: WarmStart) -> EarlyServer | None:
        """Spawn the server and start waiting for it; None where it cannot be spawned (the flow starts its own)."""
        server = cls(result)
        try:
            server._popen()
        except Exception as err:  # no uvicorn, no Prefect, no free port: leave it to Prefect
            result.errors["server"] = f"{type(err).__name__}: {err}"
            return None
        threading.Thread(target=server._wait, name="labelgate-prefect-api", daemon=True).start()
        return server

    def _popen(self) -> None:
        spec = importlib.util.find_spec("prefect")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("prefect is not installed")
        app_dir = str(Path(next(iter(spec.submodule_search_locations))).parent)
        self.port = _free_port()
        # what SubprocessASGIServer._run_uvicorn_command runs (prefect 3.8)
        args = [
            sys.executable, "-m", "uvicorn", "--app-dir", app_dir, "--factory",
            "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "error", "--lifespan", "on",
        ]  # fmt: skip
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        self.process = subprocess.Popen(args, env=env)

    def _wait(self) -> None:
        limit = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") or 20)
        try:
            while time.perf_counter() - self._began < limit:
                process = self.process
                if process is None:  # stopped meanwhile
                    return
                code = process.poll()
                if code == PORT_IN_USE_EXIT:
                    self._popen()
                    continue
                if code is not None:
                    raise RuntimeError(f"the ephemeral Prefect API exited with code {code}")
                if _healthy(self.port):
                    self.healthy = True
                    self.result.server_seconds = round(time.perf_counter() - self._began, 3)
                    return
                time.sleep(0.1)
            raise TimeoutError(f"the ephemeral Prefect API did not answer within {limit:.0f} s")
        except Exception as err:
            self.result.errors["server"] = f"{type(err).__name__}: {err}"
        finally:
            self.ready.set()

    def hand_over(self, result: WarmStart) -> None:
        """Wait for the server, then make it Prefect's ephemeral server of this process (stopped at exit like one
        Prefect started); a server that failed, or a Prefect without those internals, is stopped instead."""
        self.ready.wait()
        if not self.healthy:
            self.stop()
            return
        try:
            from prefect.server.api.server import SubprocessASGIServer

            prefect_server = SubprocessASGIServer()  # the instance get_client() and the event clients ask for
            if prefect_server.running:  # started meanwhile by Prefect itself: keep that one
                self.stop()
                return
            prefect_server.port = self.port
            prefect_server.server_process = self.process
            prefect_server.running = True
        except Exception as err:  # another Prefect version: its own start is the safe path
            result.errors["server"] = f"hand-over: {type(err).__name__}: {err}"
            self.stop()
            return
        atexit.register(prefect_server.stop)  # as SubprocessASGIServer.start registers it
        result.server = True

    def stop(self) -> None:
        """Terminate the server (and wait for it briefly)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def _free_port() -> int:
    """A random port of :data:`PORTS` that binds on 127.0.0.1 (as Prefect picks its ephemeral server's port)."""
    for _ in range(10):
        port = random.choice(PORTS)
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port for the ephemeral Prefect API")


def _healthy(port: int | None) -> bool:
    """Whether the server on ``port`` answers ``GET /api/health`` with 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port or 0, timeout=2)
    try:
        conn.request("GET", "/api/health")
        return conn.getresponse().status == 200
    except OSError:  # refused while starting, reset, timed out
        return False
    finally:
        conn.close()


def _configured_api() -> bool:
    """Whether Prefect's settings (environment, profile, .env, prefect.toml) name an API URL."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def _import_flow_modules() -> None:
    import labelgate.flows.curate  # noqa: F401  (the flow and every task module: prefect, pandas, duckdb…)


def _import_server_module() -> None:
    import prefect.server.api.server  # noqa: F401  (every Prefect client of an ephemeral API imports it first)


def _gx_context() -> None:
    from labelgate.gx import default_engine

    default_engine()


def _prepare_embedding(model: str, backend: str) -> None:
    from labelgate.embedding import prepare

    prepare(model, backend)


__all__ = ["ENABLE_ENV", "EarlyServer", "WarmStart", "enabled", "warm_start"]
