"""INPUT as a folder or a glob of batch files: which files, the dataset name, and whether their columns agree.

``labelgate run incoming/`` or ``labelgate run 'incoming/*.csv'`` reads every matching file (sorted by path) as
one input. A folder means its data files: not hidden, with an extension of :data:`labelgate.core.sniff.EXTENSIONS`
(use a glob for other names). A pattern is expanded with :func:`glob.glob` (``*``, ``?``, ``[…]``, and ``**``
across folders); an existing file whose name holds such characters is read as that one file.

Like :mod:`labelgate.core.sniff`, this module only lists files and stays light to import (standard library only):
the pre-flight check (:mod:`labelgate.preflight`) and the reader (:mod:`labelgate.readers`) both use it.
It lists files, so it lives outside ``core``.
"""

from __future__ import annotations

import glob
from pathlib import Path

from labelgate.core.sniff import EXTENSIONS
from labelgate.errors import InputError

__all__ = ["batch_dataset_name", "columns_disagree", "formats_disagree", "input_files", "is_batch_input"]

#: characters that make INPUT a glob pattern (when no file has that exact name)
GLOB_CHARS = frozenset("*?[")


def is_batch_input(path: str | Path) -> bool:
    """True when ``path`` names batch files: an existing folder, or a glob pattern that is not an existing file."""
    text = str(path)
    p = Path(text)
    if p.is_dir():
        return True
    return not p.exists() and any(c in text for c in GLOB_CHARS)


def input_files(path: str | Path, *, option: str = "INPUT") -> list[Path]:
    """The files ``path`` names, sorted by path: the file itself, a folder's data files, or a pattern's matches.

    Args:
        path: a file, a folder or a glob pattern, as typed.
        option: how the user typed it, for the messages (``INPUT``).

    Raises:
        InputError: a missing file, a folder without data files, a pattern matching no file.
    """
    text = str(path)
    p = Path(text)
    if p.is_dir():
        found = [
            f for f in p.iterdir() if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in EXTENSIONS
        ]
        if not found:
            known = " ".join(sorted(EXTENSIONS))
            raise InputError(
                f"{option} folder {text!r} holds no data file (extensions {known}); "
                f"name other files with a glob, e.g. '{text.rstrip('/')}/*.txt' with --input-format"
            )
        return sorted(found, key=str)
    if p.exists() or not any(c in text for c in GLOB_CHARS):
        if not p.exists():
            raise InputError(f"input file {text!r} does not exist")
        return [p]
    found = [Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file()]
    if not found:
        raise InputError(f"{option} pattern {text!r} matches no file")
    return sorted(found, key=str)


def batch_dataset_name(path: str | Path) -> str:
    """The default dataset name of INPUT: a file's stem, a folder's name, or the name of a glob's folder (the
    part of the pattern before its first wildcard)."""
    text = str(path)
    p = Path(text)
    if not is_batch_input(text):
        return p.stem
    if not p.is_dir():
        parts = Path(text).parts
        cut = next(i for i, part in enumerate(parts) if any(c in part for c in GLOB_CHARS))
        p = Path(*parts[:cut]) if cut else Path(".")
    return p.resolve().name or "input"


def formats_disagree(pattern: str, formats: list[tuple[Path, str]], *, option: str = "INPUT") -> str | None:
    """The problem when the batch files are of several formats (None when they agree).

    Args:
        pattern: INPUT as typed.
        formats: (file, format) of every file, in reading order.
    """
    first_file, first = formats[0]
    for f, fmt in formats[1:]:
        if fmt != first:
            return (
                f"the files of {option} {pattern!r} are of different formats: {f.name!r} is {fmt}, "
                f"{first_file.name!r} is {first}; read one format per run (e.g. a glob such as '*.{_ext(first_file)}')"
            )
    return None


def columns_disagree(pattern: str, columns: list[tuple[Path, list[str]]], *, option: str = "INPUT") -> str | None:
    """The problem when the batch files do not have the same columns (None when they agree; order may differ).

    Args:
        pattern: INPUT as typed.
        columns: (file, header column names) of every file, in reading order.
    """
    first_file, first = columns[0]
    for f, cols in columns[1:]:
        missing = [c for c in first if c not in cols]
        extra = [c for c in cols if c not in first]
        if missing or extra:
            what = "; ".join(
                part
                for part in (
                    f"it lacks {', '.join(repr(c) for c in missing)}" if missing else "",
                    f"it has {', '.join(repr(c) for c in extra)} too" if extra else "",
                )
                if part
            )
            return (
                f"the files of {option} {pattern!r} do not have the same columns: {f.name!r} differs from "
                f"{first_file.name!r} ({what}); every batch file needs the same header"
            )
    return None


def _ext(path: Path) -> str:
    return path.suffix.lstrip(".") or "csv"
