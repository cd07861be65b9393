"""Pre-flight checks of ``labelgate run``: the file, its columns and classes, before Prefect or a model starts.

A wrong column name used to take ~10 s to report (Prefect's API and the model load first), and a second wrong
column only on the next try. :func:`check_run_input` reads the header (and, for files up to
:data:`WHOLE_FILE_BYTES`, the label column) with the standard library and raises one error listing every problem
found. Anything it cannot decide is left to the run. Keep this module's imports light (no pandas, no Prefect).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labelgate.core.sniff import Sniffed, detect_format, input_problems, sniff_jsonl, sniff_text_table
from labelgate.errors import InputError, ValidationError

#: files up to this size are read whole for the class check; larger ones only for their header
WHOLE_FILE_BYTES = 64 << 20
#: bytes read for the header of a larger file
HEAD_BYTES = 1 << 20


class PreflightError(InputError):
    """Problems found before the run started, every one of them (``problems``), in one line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + " | ".join(problems))


class ClassPreflightError(PreflightError, ValidationError):
    """A file with fewer than 2 classes: a pre-flight problem and a table-level validation failure."""


def check_run_input(input_path: str, params: Any) -> None:
    """Raise :class:`PreflightError` naming every problem of the run's input and test files that is certain.

    Args:
        input_path: the INPUT argument as typed.
        params: the run's :class:`labelgate.config.CurateParams`.

    Raises:
        PreflightError: missing files, an extension of no known format, missing columns, fewer than 2 classes.
            A file with one class only raises it as a :class:`ValidationError` too (it is both).
    """
    problems: list[str] = []
    class_problem = False
    for path_text, option in ((input_path, "INPUT"), (params.test_path, "--test")):
        if path_text is None:
            continue
        path = Path(path_text)
        what = "input file" if option == "INPUT" else "test file (--test)"
        if not path.exists():
            problems.append(f"{what} {path_text!r} does not exist")
            continue
        if path.is_dir():
            problems.append(f"{what} {path_text!r} is a directory, not a file")
            continue
        if option != "INPUT":
            continue
        found = _file_problems(path, path_text, params)
        class_problem = any(p.startswith("only ") for p in found)
        problems += found
    if problems:
        raise (ClassPreflightError if class_problem and len(problems) == 1 else PreflightError)(problems)


def _file_problems(path: Path, name: str, params: Any) -> list[str]:
    size = path.stat().st_size
    complete = size <= WHOLE_FILE_BYTES
    with path.open("rb") as fh:
        data = fh.read(size if complete else HEAD_BYTES)
    if not data.strip():
        return [f"input file {name!r} is empty"]
    fmt = params.input_format
    if fmt == "auto":
        try:
            fmt = detect_format(path, data[:65536])
        except InputError as err:
            return [str(err)]
    cols = {"text_col": params.text_col, "label_col": params.label_columns[0]}
    if fmt in ("csv", "tsv", "jsonl"):
        text = _decode(data, params.encoding, complete=complete)
        if text is None:
            return []
        if fmt == "jsonl":
            sniffed = sniff_jsonl(text, complete=complete, label_case=params.label_case, **cols)
        else:
            sep = params.delimiter or ("\t" if fmt == "tsv" else ",")
            sniffed = sniff_text_table(text, delimiter=sep, complete=complete, label_case=params.label_case, **cols)
    elif fmt == "parquet":
        sniffed = _sniff_parquet(path)
    else:  # chat JSONL: text and label are the messages
        return []
    delimiter = (params.delimiter or ("\t" if fmt == "tsv" else ",")) if fmt in ("csv", "tsv") else None
    return input_problems(name, sniffed, id_col=params.id_col, delimiter=delimiter, **cols)


def _decode(data: bytes, encoding: str, *, complete: bool) -> str | None:
    """``data`` decoded (BOM skipped); None when it does not decode (the run reports that with the line)."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode(encoding, errors="strict" if complete else "ignore")
    except (LookupError, UnicodeDecodeError):
        return None


def _sniff_parquet(path: Path) -> Sniffed:
    try:
        import pyarrow.parquet as pq

        return Sniffed(columns=list(pq.read_schema(path).names))
    except Exception:  # a corrupt file: the run says so with its own message
        return Sniffed()
