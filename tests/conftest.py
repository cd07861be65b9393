"""Shared fixtures: an isolated Prefect home and test harness, the bundled sample, a warmed database."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Prefect reads its settings at import: isolate it before anything imports prefect.
_PREFECT_HOME = tempfile.mkdtemp(prefix="labelgate-test-prefect-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
os.environ.setdefault("LABELGATE_PROGRESS", "0")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "politeness-wikipedia"

#: Debian's Chromium, driven by Playwright in the browser tests (tests/web)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_SKIP = f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install -y chromium)"
_CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(playwright):  # -> playwright Browser
    """Headless Debian Chromium with the flags every browser test uses (no sandbox, no network chatter)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=_CHROMIUM_ARGS)


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    """The bundled sample (400 support tickets, 40 injected label errors)."""
    return REPO / "data" / "sample.csv"


@pytest.fixture(scope="session")
def sample_truth() -> Path:
    return REPO / "data" / "sample_truth.csv"


@pytest.fixture(scope="session")
def politeness_dir() -> Path:
    """The shared politeness-wikipedia data (slow tests only); skips when absent."""
    if not (SHARED / "train.csv").exists():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test harness (temporary database, ephemeral API) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def warm_run(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None, sample_csv: Path) -> dict:
    """One real curate run of the sample with the real embedding model; later runs reuse its embedding cache.

    Returns the flow's metrics plus ``db_path`` and ``out_dir``. Treat the database as read-only:
    copy it with :func:`copy_db` before writing.
    """
    from labelgate.config import CurateParams
    from labelgate.flows.curate import curate

    base = tmp_path_factory.mktemp("warm")
    db = base / "warm.duckdb"
    out = base / "exports"
    metrics = curate(str(sample_csv), db_path=str(db), out_dir=str(out), params=CurateParams())
    return {**metrics, "db_path": str(db), "out_dir": str(out)}


def copy_db(warm: dict, dest: Path) -> str:
    """Copy the warmed database to ``dest`` (a folder) and return the new path."""
    target = dest / "copy.duckdb"
    shutil.copyfile(warm["db_path"], target)
    return str(target)
