"""Start-up cost (issue 16): the commands that run no flow stay free of Prefect, the model and GX; the start-up
clock of a command's run; warm start switched off does nothing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from labelgate import startup, warmup

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
#: what a command without a flow must not import (each costs seconds at start)
HEAVY = ("prefect", "torch", "sentence_transformers", "transformers", "great_expectations")


def test_commands_without_a_flow_import_no_prefect_model_or_gx(tiny_run: Any, tmp_path: Path) -> None:
    db = tiny_run.copy(tmp_path)
    run = tiny_run.run_id
    commands = [
        ["--help"],
        ["runs", "--db", db],
        ["runs", "--db", db, "--json"],
        ["issues", "--db", db, "--run", run, "--format", "table"],
        ["export", "--db", db, "--run", run, "--out", str(tmp_path / "out")],
        ["serve", "--help"],
        ["run", "--help"],
    ]
    code = (
        "import sys\n"
        "from labelgate.cli import main\n"
        "codes = []\n"
        f"for args in {commands!r}:\n"
        "    try:\n"
        "        main(args, standalone_mode=False)\n"
        "        codes.append(0)\n"
        "    except SystemExit as err:\n"
        "        codes.append(err.code or 0)\n"
        f"print('RESULT', codes, sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    last = [line for line in res.stdout.splitlines() if line.startswith("RESULT")]
    assert last, res.stdout[-2000:] + res.stderr[-2000:]
    assert last[0] == f"RESULT {[0] * len(commands)} []", res.stderr[-2000:]
    assert (tmp_path / "out").is_dir()  # the export really ran


def test_startup_seconds_only_in_a_command_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(startup._STATE, "command", False)
    assert startup.startup_seconds() is None  # a library call or a deployment: process start says nothing
    with startup.command_run():
        seconds = startup.startup_seconds()
    assert startup.startup_seconds() is None  # only inside the block
    assert seconds is not None and seconds > 0
    # the process started before this module was imported, and before now
    assert startup.process_start_time() <= startup._IMPORTED_AT <= time.time()
    assert seconds >= round(time.time() - startup._IMPORTED_AT, 3) - 0.01


def test_a_process_start_time_without_proc_falls_back_to_the_import(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_proc(*args: Any, **kwargs: Any) -> Any:
        raise OSError("no /proc")

    monkeypatch.setattr(startup, "open", no_proc, raising=False)  # the module's open() only
    assert startup.process_start_time() == startup._IMPORTED_AT


def test_a_fresh_process_starts_well_under_a_second_before_its_first_statement() -> None:
    code = "from labelgate import startup; import time; print(time.time() - startup.process_start_time())"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert 0 <= float(res.stdout) < 5  # interpreter start and one small import, read from /proc


@pytest.mark.parametrize("value", ["0", "false", "off"])
def test_warm_start_switched_off_starts_nothing(monkeypatch: pytest.MonkeyPatch, value: str, tmp_path: Path) -> None:
    monkeypatch.setenv(warmup.ENABLE_ENV, value)
    result = warmup.warm_start(model="all-MiniLM-L6-v2", runner="default", db_path=str(tmp_path / "new.duckdb"))
    assert result == warmup.WarmStart()  # and no Prefect import: the unit layer's guard would fail the test
