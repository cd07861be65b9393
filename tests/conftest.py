"""Shared fixtures (an isolated Prefect home and test harness, the bundled sample, a warmed database) and the
test layers.

Test layers (markers in pyproject.toml; every test module names its layer in a module-level ``pytestmark``):

- ``unit``: the fast layer, no model and no Prefect: ``python -m pytest -m unit`` (≤ 90 s on 2 cores). A run in
  the database comes from :mod:`unit_support` (built through store and core functions with a deterministic fake
  encoder), never from ``warm_run``. The mark is module-level only: a module is unit or it is not.
- ``flow``: runs Prefect flows or tasks (``warm_run``, ``labelgate run`` in a subprocess, ``task.fn``).
- ``browser``: drives Chromium (the pages of the web app).
- ``bench``: runs a benchmark script.
- ``slow``: needs ../shared data or takes more than a few seconds (any layer but unit).
Modules that load the embedding model without a flow (tests/test_embedding*.py) carry no layer mark: they are not
unit tests.

How the unit layer is enforced (:class:`_UnitImportGuard`, a ``sys.meta_path`` finder installed at configure):

1. While a unit module is imported and while a unit test runs (setup, call, teardown), importing ``prefect``,
   ``sentence_transformers``, ``torch`` or ``transformers`` (or any submodule) raises :class:`UnitLayerImportError`;
   the violation is also recorded and fails the test at teardown even when the code caught the error.
2. In a pure unit session (a ``-m`` expression that no test without the ``unit`` mark can satisfy, such as
   ``-m unit``) the guard is on from the start, test modules that do not declare ``unit`` are not even
   collected, and the session refuses to start if one of those packages is already imported. So
   ``python -m pytest -m unit`` proves that nothing in the layer imports them, not even indirectly through
   ``labelgate.tasks`` / ``labelgate.flows`` / ``labelgate.embedding``.
   In a mixed session (``pytest tests/x.py``) an earlier flow test may have imported them already; the guard
   then only sees fresh imports, which is why scripts run the layer with ``-m unit``.
3. At collection, a ``unit`` test that uses ``warm_run`` or ``prefect_harness``, also carries ``flow``,
   ``browser`` or ``bench``, or has the mark on the function or class instead of the module is a usage error.
"""

from __future__ import annotations

import ast
import importlib.abc
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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
from _pytest.mark.expression import Expression  # noqa: E402

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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tiny run of :mod:`unit_support` (no model, no Prefect) after the auto policy: a ``TinyRun``.

    Treat its database as read-only: copy it (``tiny_run.copy(tmp_path)`` or the ``tiny_db`` fixture) before writing.
    """
    from unit_support import build_tiny_run

    return build_tiny_run(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_run_undecided(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The same tiny run without any decision (nobody reviewed it, no policy ran)."""
    from unit_support import build_tiny_run

    return build_tiny_run(tmp_path_factory.mktemp("tiny-undecided"), policy=False)


@pytest.fixture
def tiny_db(tiny_run: Any, tmp_path: Path) -> str:
    """A writable copy of the tiny run's database."""
    return tiny_run.copy(tmp_path)


@pytest.fixture
def undecided_db(tiny_run_undecided: Any, tmp_path: Path) -> str:
    """A writable copy of the undecided tiny run's database."""
    return tiny_run_undecided.copy(tmp_path)


# --- test layers: the unit layer's import guard ----------------------------------------------------------------

#: packages a unit test must not import (the model and Prefect)
FORBIDDEN = ("prefect", "sentence_transformers", "torch", "transformers")
#: fixtures that run a flow (or start Prefect): a unit test must not use them
FLOW_FIXTURES = ("warm_run", "prefect_harness")
_OTHER_LAYERS = ("flow", "browser", "bench")


class UnitLayerImportError(ImportError):
    """A unit test (or a unit test module) imported a package of :data:`FORBIDDEN`."""


class _UnitImportGuard(importlib.abc.MetaPathFinder):
    """Refuses imports of :data:`FORBIDDEN` packages while ``active`` names what is running (a test id, a module)."""

    def __init__(self) -> None:
        self.active: str | None = None
        self.violations: list[str] = []

    def find_spec(self, fullname: str, path: Sequence[str] | None = None, target: Any = None) -> None:
        if self.active is not None and fullname.split(".")[0] in FORBIDDEN:
            message = (
                f"unit layer: {self.active} imported {fullname!r}; unit tests need no model and no Prefect "
                "(build the run with tests/unit_support.py, or move the test to the flow layer)"
            )
            self.violations.append(message)
            raise UnitLayerImportError(message)
        return None


_GUARD = _UnitImportGuard()
_STATE: dict[str, bool] = {"pure_unit": False}


def _selects_only_unit(markexpr: str) -> bool:
    """True when no test without the ``unit`` mark can match ``markexpr`` (tried with every other mark on and off)."""
    if not markexpr.strip():
        return False
    expr = Expression.compile(markexpr)
    return not any(expr.evaluate(lambda name, other=other, **_: name != "unit" and other) for other in (True, False))


def declares_unit(path: Path) -> bool:
    """Whether the test module at ``path`` has a module-level ``pytestmark`` naming ``unit`` (read, not imported)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        names = any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets)
        if names and any(isinstance(n, ast.Attribute) and n.attr == "unit" for n in ast.walk(value)):
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    if _GUARD not in sys.meta_path:
        sys.meta_path.insert(0, _GUARD)
    _STATE["pure_unit"] = _selects_only_unit(config.option.markexpr or "")
    if _STATE["pure_unit"]:
        loaded = sorted(m for m in FORBIDDEN if m in sys.modules)
        if loaded:
            raise pytest.UsageError(f"unit layer: {', '.join(loaded)} already imported before the tests started")
        _GUARD.active = "the unit session"


def pytest_unconfigure(config: pytest.Config) -> None:
    _GUARD.active = None
    if _GUARD in sys.meta_path:
        sys.meta_path.remove(_GUARD)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A pure unit session does not import the other layers' modules (they may import Prefect at the top)."""
    name = collection_path.name
    if _STATE["pure_unit"] and name.startswith("test_") and name.endswith(".py") and collection_path.is_file():
        return not declares_unit(collection_path) or None
    return None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """Import a unit module under the guard."""
    if not (isinstance(collector, pytest.Module) and declares_unit(collector.path)):
        return (yield)
    before, _GUARD.active = _GUARD.active, f"test module {collector.nodeid}"
    try:
        return (yield)
    finally:
        _GUARD.active = before


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = []
    for item in items:
        if item.get_closest_marker("unit") is None:
            continue
        where = [n for n in item.listchain() if any(m.name == "unit" for m in n.own_markers)]
        if not all(isinstance(n, pytest.Module) for n in where):
            problems.append(f"{item.nodeid}: mark the module unit (pytestmark), not the test or class")
        if not isinstance(item, pytest.Function):
            continue
        used = sorted(set(item.fixturenames) & set(FLOW_FIXTURES))
        if used:
            problems.append(f"{item.nodeid}: a unit test uses {', '.join(used)}")
        both = [m for m in _OTHER_LAYERS if item.get_closest_marker(m) is not None]
        if both:
            problems.append(f"{item.nodeid}: marked unit and {', '.join(both)}")
    if problems:
        raise pytest.UsageError("unit layer:\n  " + "\n  ".join(problems))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """Run a unit test under the guard (setup, call and teardown)."""
    if item.get_closest_marker("unit") is None:
        return (yield)
    before, _GUARD.active = _GUARD.active, item.nodeid
    try:
        return (yield)
    finally:
        _GUARD.active = before


_FAILED_KEY = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        item.stash[_FAILED_KEY] = True
    return report


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Fail a unit test whose code caught the guard's error (an ``except ImportError`` fallback)."""
    if item.get_closest_marker("unit") is None:
        return
    mine = [v for v in _GUARD.violations if item.nodeid in v]
    _GUARD.violations.clear()
    if mine and not item.stash.get(_FAILED_KEY, False):
        pytest.fail(mine[0], pytrace=False)
