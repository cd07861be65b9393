"""The file edge of ingest: read an input file, folder or glob pattern and parse it with :mod:`labelgate.core.ingest`.

``core.ingest`` parses bytes; this module opens the files (each once), lists batch files
(:mod:`labelgate.batches`) and checks that they agree before :func:`labelgate.core.ingest.combine_batches` joins them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from labelgate.batches import columns_disagree, formats_disagree, input_files, is_batch_input
from labelgate.core.ingest import IngestResult, IngestSettings, combine_batches, parse_dataset
from labelgate.core.settings import settings_or_options
from labelgate.core.sniff import detect_format
from labelgate.errors import InputError

__all__ = ["read_dataset", "sha256_file"]


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_dataset(path: str | Path, *, settings: IngestSettings | None = None, **options: Any) -> IngestResult:
    """Read ``path`` into the canonical row table (:mod:`labelgate.core.ingest` describes it).

    Args:
        path: the input file, or a folder or glob pattern of batch files read as one input (see the module).
        settings: how to read it (:class:`labelgate.core.ingest.IngestSettings`: ``fmt``, ``text_col``,
            ``label_col``, ``id_col``, ``encoding``, ``delimiter``, ``label_case``, ``annotator_col``; its
            ``label_col`` is one column here); default ``IngestSettings()``.
        **options: instead of ``settings``, fields of IngestSettings as keyword arguments (``fmt="jsonl"``,
            ``label_case="lower"``; the rest keep their defaults). Kept because many tests read that way.
            ``annotator_col``: its values come back in :attr:`IngestResult.annotators` (the rows stay one per
            record).

    Raises:
        InputError: the file is missing, empty, undecodable or not of the format; a folder without data files,
            a pattern matching no file, batch files of different formats or columns.
        MissingColumnError: the text, label, id or annotator column is absent.
        SettingsError: a setting has a value that cannot be used.
        TypeError: both ``settings`` and keyword options, or a keyword that is no field of IngestSettings.
    """
    names = sorted(f.name for f in dataclasses.fields(IngestSettings))
    s = settings_or_options(IngestSettings, settings, options, caller="read_dataset", fields=names)
    values = dataclasses.asdict(s)
    fmt = values.pop("fmt")
    if is_batch_input(path):
        return _read_batches(str(path), fmt=fmt, **values)
    return _read_file(Path(path), fmt=fmt, **values)[0]


def _read_file(p: Path, *, fmt: str, **settings: Any) -> tuple[IngestResult, list[str]]:
    """One file's bytes parsed by :func:`labelgate.core.ingest.parse_dataset`; also its columns."""
    if not p.exists():
        raise InputError(f"input file {str(p)!r} does not exist")
    if p.is_dir():
        raise InputError(f"input {str(p)!r} is a directory, not a file")
    return parse_dataset(p.read_bytes(), source=str(p), fmt=fmt, **settings)


def _read_batches(pattern: str, *, fmt: str, **settings: Any) -> IngestResult:
    """Every file of the folder or glob ``pattern`` read by :func:`_read_file`, checked to agree, and combined."""
    files = input_files(pattern)
    if fmt == "auto":
        formats = []
        for f in files:
            with f.open("rb") as fh:
                formats.append((f, detect_format(f, fh.read(65536))))
        problem = formats_disagree(pattern, formats)
        if problem:
            raise InputError(problem)
    parts: list[tuple[Path, IngestResult, list[str]]] = []
    for f in files:
        result, columns = _read_file(f, fmt=fmt, **settings)
        parts.append((f, result, columns))
        problem = None
        if result.input_format in ("csv", "tsv", "parquet"):  # JSON lines may leave out optional keys
            problem = columns_disagree(pattern, [(g, cols) for g, _, cols in parts])
        if problem is None and result.id_source != parts[0][1].id_source:
            problem = (
                f"the files of INPUT {pattern!r} do not name their rows alike: {f.name!r} takes ids from "
                f"{result.id_source!r}, {parts[0][0].name!r} from {parts[0][1].id_source!r}; pass --id-col NAME"
            )
        if problem:
            raise InputError(problem)
    return combine_batches(pattern, parts)
