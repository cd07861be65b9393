"""The pre-flight check takes the ingest layer's typed settings (IngestSettings) and the test file, and stays free
of pandas (it runs before Prefect or a model starts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from labelgate.config import CurateParams
from labelgate.core.ingest_settings import IngestSettings
from labelgate.errors import ClassPreflightError, PreflightError
from labelgate.preflight import check_run_input

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_settings_name_the_columns_checked(tmp_path: Path) -> None:
    data = _write(tmp_path / "in.csv", "body,a,b\nhello there,x,y\nhow are you,y,x\n")
    check_run_input(data, settings=IngestSettings(text_col="body", label_col="a,b"))  # wide: the first label column
    with pytest.raises(PreflightError, match="text column 'text' not found") as err:
        check_run_input(data, settings=IngestSettings())
    assert len(err.value.problems) == 1


def test_the_run_parameters_settings_and_a_missing_test_file(tmp_path: Path) -> None:
    data = _write(tmp_path / "in.tsv", "txt\tlab\nhello\ta\nthere\ta\n")
    settings = CurateParams(text_col="txt", label_col="lab", label_case="lower").ingest_settings()
    with pytest.raises(ClassPreflightError, match="only 1 class"):
        check_run_input(data, settings=settings)
    with pytest.raises(PreflightError) as err:
        check_run_input(data, settings=settings, test_path=str(tmp_path / "nope.csv"))
    assert any("test file (--test)" in p and "does not exist" in p for p in err.value.problems)
    assert len(err.value.problems) == 2  # the class problem too: every certain problem at once


def test_the_check_imports_no_pandas(tmp_path: Path) -> None:
    data = _write(tmp_path / "in.csv", "text,label\nhello,a\nthere,b\n")
    code = (
        "import sys\n"
        "from labelgate.config import CurateParams\n"
        "from labelgate.preflight import check_run_input\n"
        f"check_run_input({data!r}, settings=CurateParams().ingest_settings())\n"
        "print(sorted(m for m in ('pandas', 'prefect', 'torch') if m in sys.modules))\n"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "[]", res.stdout + res.stderr
