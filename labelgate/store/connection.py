"""Short-lived connections to the database file, the wait for a busy file and the owner file naming
who holds it (``<db>.owner.json``)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from labelgate.errors import ConfigError, DatabaseBusyError, LabelgateError, RunNotFoundError
from labelgate.store.schema import migrate


def _is_lock_error(err: Exception) -> bool:
    text = str(err).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text or "in use" in text)


#: environment variable: seconds :func:`connect` keeps retrying a busy database file (default 60)
WAIT_ENV = "LABELGATE_DB_WAIT_S"


DEFAULT_WAIT_S = 60.0


def default_wait_s() -> float:
    """The wait of :func:`connect` when none is given: ``$LABELGATE_DB_WAIT_S`` or 60 seconds."""
    value = os.environ.get(WAIT_ENV, "").strip()
    if not value:
        return DEFAULT_WAIT_S
    try:
        return max(0.0, float(value))
    except ValueError:
        raise ConfigError(f"{WAIT_ENV} must be a number of seconds, got {value!r}") from None


@contextlib.contextmanager
def connect(
    db_path: str | Path, *, read_only: bool = False, wait_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open ``db_path`` briefly, migrating the schema when writable, and close it on exit.

    While the connection is open, ``<db_path>.owner.json`` names this process (pid, host, the run it works
    on: :func:`set_process_run`, its command line), so that a process kept waiting can say who holds the file.

    Args:
        db_path: path of the DuckDB file (created when absent and ``read_only`` is false).
        read_only: open without write access. The file must exist.
        wait_s: how long to keep retrying while another process holds the file (default
            :func:`default_wait_s`). After a second of waiting, a one-line notice goes to stderr when
            progress output is on (a terminal, or ``LABELGATE_PROGRESS=1``).

    Raises:
        DatabaseBusyError: the file stayed locked for ``wait_s`` seconds; the message names the holder's
            run id and PID when known.
        RunNotFoundError: ``read_only`` and the file does not exist.
    """
    path = Path(db_path)
    wait_s = default_wait_s() if wait_s is None else wait_s
    if read_only and not path.exists():
        raise RunNotFoundError(f"database {str(path)!r} does not exist; run `labelgate run` first or pass --db")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + wait_s
    delay = 0.05
    announced = False
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as err:
            if not _is_lock_error(err):
                raise LabelgateError(f"cannot open database {str(path)!r}: {err}") from err
            now = time.monotonic()
            if now >= deadline:
                raise DatabaseBusyError(
                    f"database {str(path)!r} is in use by {_lock_holder(err, path)}; waited {wait_s:.0f}s. "
                    "Wait for it to finish or use another --db."
                ) from err
            if not announced and now - started >= 1.0 and _notices_enabled():
                sys.stderr.write(
                    f"labelgate: database {str(path)!r} is in use by {_lock_holder(err, path)}; "
                    f"waiting up to {wait_s:.0f}s\n"
                )
                sys.stderr.flush()
                announced = True
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)
        except duckdb.Error as err:
            raise LabelgateError(f"cannot open database {str(path)!r}: {err}") from err
    _write_owner(path, read_only=read_only)
    try:
        if not read_only:
            migrate(con)
        yield con
    finally:
        con.close()
        _remove_owner(path)
        release_arrow_memory()


def release_arrow_memory() -> None:
    """Give the memory Arrow's pool holds free back to the OS (what query results in Arrow form used and no longer
    use: the pool keeps it otherwise, 0.43 GiB after reading 300,000 vectors); nothing when Arrow was never loaded."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()


#: the run this process works on (set by the start-run task), named in other processes' busy messages
_process_run: dict[str, str | None] = {"run_id": None}


def set_process_run(run_id: str | None) -> None:
    """Record the run this process works on (``None``: none); :func:`connect` writes it to the owner file."""
    _process_run["run_id"] = run_id


def owner_path(db_path: str | Path) -> Path:
    """``<db_path>.owner.json``: who holds the database file while a connection is open."""
    path = Path(db_path)
    return path.with_name(path.name + ".owner.json")


def _command() -> str:
    argv = list(sys.argv) or ["python"]
    first = "labelgate" if Path(argv[0]).name in ("labelgate", "cli.py", "__main__.py") else Path(argv[0]).name
    return " ".join([first, *argv[1:3]])[:120]


def _write_owner(path: Path, *, read_only: bool) -> None:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "run_id": _process_run["run_id"],
        "command": _command(),
        "mode": "read" if read_only else "write",
    }
    with contextlib.suppress(OSError):  # best effort: a read-only folder only loses the nicer busy message
        owner_path(path).write_text(json.dumps(info), encoding="utf-8")


def _read_owner(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(owner_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _remove_owner(path: Path) -> None:
    if _read_owner(path).get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            owner_path(path).unlink()


def _notices_enabled() -> bool:
    env = os.environ.get("LABELGATE_PROGRESS")
    if env is not None:
        return env not in ("0", "false", "no", "")
    return sys.stderr.isatty()


def _lock_holder(err: Exception, path: Path) -> str:
    """Who holds ``path``: ``run R (PID n, command)`` from the owner file, else ``another process (PID n)``."""
    text = str(err)
    pid: int | None = None
    if "PID " in text:
        digits = text.split("PID ", 1)[1].split(")", 1)[0].split(" ", 1)[0]
        pid = int(digits) if digits.isdigit() else None
    owner = _read_owner(path)
    same_process = owner.get("pid") == pid if pid is not None else _pid_alive(owner.get("pid"))
    if owner and same_process and owner.get("host") == socket.gethostname():
        what = f"run {owner['run_id']}" if owner.get("run_id") else "another labelgate process"
        return f"{what} (PID {owner['pid']}, {owner.get('command') or '?'})"
    return "another process" + (f" (PID {pid})" if pid is not None else "")


def _pid_alive(pid: Any) -> bool:
    """True when process ``pid`` of this host exists and is not a zombie (False for a non-positive or odd pid)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")
