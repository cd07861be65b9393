"""Pre-flight checks of ``labelgate run``: the file, its columns and classes, before Prefect or a model starts.

A wrong column name used to take ~10 s to report (Prefect's API and the model load first), and a second wrong
column only on the next try. :func:`check_run_input` reads the header (and, for files up to
:data:`WHOLE_FILE_BYTES`, the label column) with the standard library and raises one error listing every problem
found. Anything it cannot decide is left to the run. Keep this module's imports light (no pandas, no Prefect).
"""

from __future__ import annotations

from pathlib import Path

from labelgate.batches import columns_disagree, formats_disagree, input_files, is_batch_input
from labelgate.core.ingest_settings import IngestSettings
from labelgate.core.sniff import Sniffed, detect_format, input_problems, sniff_jsonl, sniff_text_table
from labelgate.errors import ClassPreflightError, InputError, PreflightError

#: files up to this size are read whole for the class check; larger ones only for their header
WHOLE_FILE_BYTES = 64 << 20
#: bytes read for the header of a larger file
HEAD_BYTES = 1 << 20


def check_run_input(input_path: str, *, settings: IngestSettings, test_path: str | None = None) -> None:
    """Raise :class:`PreflightError` naming every problem of the run's input and test files that is certain.

    Args:
        input_path: the INPUT argument as typed: a file, or a folder or glob pattern of batch files (each is
            checked; they must be of one format with the same columns; the class check is per file).
        settings: how the run reads its input (``CurateParams.ingest_settings()``): format, text and label
            columns (the first of several label columns is checked), id column, encoding, delimiter, label case.
        test_path: the held-out test file (``--test``), checked to exist; None: none.

    Raises:
        PreflightError: missing files, an extension of no known format, missing columns, fewer than 2 classes,
            a folder or pattern with no file, batch files of different formats or columns. A file with one class
            only raises it as a :class:`ValidationError` too (it is both).
    """
    if is_batch_input(input_path):
        _check_batches(input_path, settings)
        input_path = None
    problems: list[str] = []
    class_problem = False
    for path_text, option in ((input_path, "INPUT"), (test_path, "--test")):
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
        found = _file_problems(path, path_text, settings)
        class_problem = any(p.startswith("only ") for p in found)
        problems += found
    if problems:
        raise (ClassPreflightError if class_problem and len(problems) == 1 else PreflightError)(problems)


def _check_batches(pattern: str, settings: IngestSettings) -> None:
    """The pre-flight check of a folder or glob INPUT: every file's certain problems, except a one-class file
    (a batch may hold one class; the run checks the classes of all of them together), then format and column
    agreement."""
    try:
        files = input_files(pattern)
    except InputError as err:
        raise PreflightError([str(err)]) from None
    problems: list[str] = []
    formats: list[tuple[Path, str]] = []
    headers: list[tuple[Path, list[str]]] = []
    for f in files:
        found, sniffed, fmt = _sniff_file(f, str(f), settings)
        problems += [p for p in found if not p.startswith("only ")]
        if fmt is not None:
            formats.append((f, fmt))
        if sniffed is not None and sniffed.columns is not None and fmt in ("csv", "tsv", "parquet"):
            headers.append((f, sniffed.columns))
    if not problems and settings.fmt == "auto" and formats:
        problems += [p for p in [formats_disagree(pattern, formats)] if p]
    if not problems and headers:
        problems += [p for p in [columns_disagree(pattern, headers)] if p]
    if problems:
        raise PreflightError(problems)


def _file_problems(path: Path, name: str, settings: IngestSettings) -> list[str]:
    return _sniff_file(path, name, settings)[0]


def _sniff_file(path: Path, name: str, settings: IngestSettings) -> tuple[list[str], Sniffed | None, str | None]:
    """The certain problems of one input file, what the quick read found, and its format (None: unknown)."""
    size = path.stat().st_size
    complete = size <= WHOLE_FILE_BYTES
    with path.open("rb") as fh:
        data = fh.read(size if complete else HEAD_BYTES)
    if not data.strip():
        return [f"input file {name!r} is empty"], None, None
    fmt = settings.fmt
    if fmt == "auto":
        try:
            fmt = detect_format(path, data[:65536])
        except InputError as err:
            return [str(err)], None, None
    cols = {"text_col": settings.text_col, "label_col": settings.label_columns[0]}
    if fmt in ("csv", "tsv", "jsonl") and b"\x00" in data:
        return [], None, fmt  # NUL bytes: the reader quarantines such records or names the binary file exactly
    if fmt in ("csv", "tsv", "jsonl"):
        text = _decode(data, settings.encoding, complete=complete)
        if text is None:
            return [], None, fmt
        if fmt == "jsonl":
            sniffed = sniff_jsonl(text, complete=complete, label_case=settings.label_case, **cols)
        else:
            sep = settings.delimiter or ("\t" if fmt == "tsv" else ",")
            sniffed = sniff_text_table(text, delimiter=sep, complete=complete, label_case=settings.label_case, **cols)
    elif fmt == "parquet":
        sniffed = _sniff_parquet(path)
    else:  # chat JSONL: text and label are the messages
        return [], None, fmt
    delimiter = (settings.delimiter or ("\t" if fmt == "tsv" else ",")) if fmt in ("csv", "tsv") else None
    return input_problems(name, sniffed, id_col=settings.id_col, delimiter=delimiter, **cols), sniffed, fmt


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
