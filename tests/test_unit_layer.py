"""The unit layer's own rules (tests/conftest.py): the import guard, which modules are unit, pure unit sessions."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from conftest import _GUARD, FORBIDDEN, UnitLayerImportError, _selects_only_unit, declares_unit

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("package", FORBIDDEN)
def test_a_unit_test_cannot_import_prefect_or_the_model(package: str) -> None:
    # a submodule that does not exist: refused by the guard whether or not an earlier flow test loaded the package
    with pytest.raises(UnitLayerImportError, match=rf"imported '{package}"):
        importlib.import_module(f"{package}.labelgate_guard_probe")
    assert _GUARD.violations and package in _GUARD.violations[-1]
    _GUARD.violations.clear()  # recorded violations fail the test at teardown: this one was on purpose


def test_the_guard_leaves_other_packages_alone() -> None:
    assert importlib.import_module("labelgate.services.review").__name__ == "labelgate.services.review"
    assert not _GUARD.violations


def test_a_pure_unit_session_never_loaded_them(request: pytest.FixtureRequest) -> None:
    if not _selects_only_unit(request.config.option.markexpr or ""):
        pytest.skip("only meaningful in a pure unit session (pytest -m unit); a mixed one may have run flow tests")
    assert not [m for m in sys.modules if m.split(".")[0] in FORBIDDEN]


@pytest.mark.parametrize(
    ("expression", "pure"),
    [
        ("unit", True),
        ("unit and not slow", True),
        ("not flow and unit", True),
        ("unit or flow", False),
        ("not flow", False),
        ("slow", False),
        ("", False),
    ],
)
def test_which_mark_expressions_make_a_pure_unit_session(expression: str, pure: bool) -> None:
    assert _selects_only_unit(expression) is pure


def test_a_module_declares_unit_only_with_a_module_level_pytestmark(tmp_path: Path) -> None:
    cases = {
        "plain.py": ("import pytest\npytestmark = pytest.mark.unit\n", True),
        "listed.py": ("import pytest\npytestmark = [pytest.mark.slow, pytest.mark.unit]\n", True),
        "flow.py": ("import pytest\npytestmark = pytest.mark.flow\n", False),
        "per_test.py": ("import pytest\n@pytest.mark.unit\ndef test_x():\n    pytestmark = pytest.mark.unit\n", False),
        "broken.py": ("pytestmark = (", False),
    }
    for name, (source, expected) in cases.items():
        (tmp_path / name).write_text(source)
        assert declares_unit(tmp_path / name) is expected, name
    assert declares_unit(Path(__file__))
