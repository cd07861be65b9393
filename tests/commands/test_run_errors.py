"""`labelgate run`: option errors name the option the user typed, and every problem is reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from labelgate.cli import main


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("labelgate: error:")]


@pytest.mark.parametrize(
    ("args", "typed", "field"),
    [
        (["--folds", "1"], "--folds", "--n-folds"),
        (["--review-timeout", "0"], "--review-timeout", "--review-timeout-s"),
        (["--format", "nope"], "--format", "--export-formats"),
        (["--min-text-chars", "9", "--max-text-chars", "3"], "--min-text-chars", "min_text_chars"),
    ],
)
def test_option_errors_name_the_option_typed(
    sample_csv: Path, tmp_path: Path, args: list[str], typed: str, field: str
) -> None:
    res = CliRunner().invoke(main, ["run", str(sample_csv), "--db", str(tmp_path / "x.duckdb"), *args])
    assert res.exit_code == 2, res.output
    (line,) = _error_lines(res.output)
    assert typed in line and field not in line, line


def test_every_bad_option_is_reported_in_one_error(sample_csv: Path, tmp_path: Path) -> None:
    args = ["--folds", "1", "--val-fraction", "2", "--relabel-threshold", "-1"]
    res = CliRunner().invoke(main, ["run", str(sample_csv), "--db", str(tmp_path / "x.duckdb"), *args])
    assert res.exit_code == 2, res.output
    (line,) = _error_lines(res.output)
    for option in ("--folds", "--val-fraction", "--relabel-threshold"):
        assert option in line, line
