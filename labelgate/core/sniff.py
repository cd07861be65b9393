"""A quick look at an input file's content, before any run starts: format, columns, classes (standard library only).

``labelgate run`` calls :func:`input_problems` (through :mod:`labelgate.preflight`, which reads the file) so that a
wrong column name or a one-class file is reported in well under a second, all problems at once, before Prefect
starts or a model loads. It reports only what the full ingest + validation would certainly reject; anything it
cannot decide (an undecodable file, a malformed CSV, a file too large to read whole) is left to the run, which
reports it with its own message.

This module must stay light to import: no pandas, no pyarrow.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from labelgate.errors import InputError

__all__ = ["EXTENSIONS", "Sniffed", "delimiter_hint", "detect_format", "input_problems"]

#: file extension -> input format of ``--input-format auto``
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

_OPTIONS = {"text": "--text-col", "label": "--label-col", "id": "--id-col"}


def detect_format(path: Path, head: bytes) -> str:
    """Return the format of ``path`` from its extension, peeking at ``head`` (its first bytes) for chat JSONL.

    Raises:
        InputError: the extension is not one of :data:`EXTENSIONS`.
    """
    suffix = path.suffix.lower()
    fmt = EXTENSIONS.get(suffix)
    if fmt is None:
        raise InputError(
            f"cannot tell the format of {str(path)!r} from its extension {suffix!r}; "
            "pass --input-format csv|tsv|jsonl|chat-jsonl|parquet"
        )
    if fmt == "jsonl":
        first = head.lstrip(b"\xef\xbb\xbf").lstrip().split(b"\n", 1)[0]
        try:
            obj = json.loads(first)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and "messages" in obj:
            return "chat-jsonl"
    return fmt


def delimiter_hint(columns: list[str], delimiter: str) -> str:
    """A hint when a one-column header looks separated by another delimiter ('' when it does not)."""
    if len(columns) != 1:
        return ""
    for candidate, option in ((";", "--delimiter ';'"), ("\t", "--input-format tsv"), ("|", "--delimiter '|'")):
        if candidate != delimiter and candidate in columns[0]:
            return f"The header looks {candidate!r}-separated: pass {option}."
    if delimiter != "," and "," in columns[0]:
        return "The header looks comma-separated: leave out --delimiter."
    return ""


@dataclass(frozen=True)
class Sniffed:
    """What a quick read of the content found.

    Attributes:
        columns: the header's column names (CSV/TSV/Parquet) or the keys of the JSON objects; None: unknown.
        labels: label -> rows with a non-blank text and a non-empty label (trimmed, case-folded with
            ``label_case='lower'``); None when the content was not read whole or could not be parsed.
    """

    columns: list[str] | None = None
    labels: Counter[str] | None = field(default=None)


def sniff_text_table(
    text: str, *, delimiter: str, text_col: str, label_col: str, complete: bool, label_case: str = "keep"
) -> Sniffed:
    """Header (and, when ``complete``, the label counts) of CSV/TSV ``text`` (decoded, without its BOM)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error):
        return Sniffed()
    if not complete or text_col not in header or label_col not in header:
        return Sniffed(columns=header)
    t, lab, width = header.index(text_col), header.index(label_col), len(header)
    labels: Counter[str] = Counter()
    try:
        for fields in reader:
            if len(fields) != width:
                continue
            _count(labels, fields[t], fields[lab], label_case)
    except csv.Error:
        return Sniffed(columns=header)
    return Sniffed(columns=header, labels=labels)


def sniff_jsonl(text: str, *, text_col: str, label_col: str, complete: bool, label_case: str = "keep") -> Sniffed:
    """Keys and label counts of JSON Lines ``text``; only when ``complete`` (a key may first appear late)."""
    if not complete:
        return Sniffed()
    keys: set[str] = set()
    labels: Counter[str] = Counter()
    for line in text.split("\n"):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        keys.update(obj)
        value, label = obj.get(text_col), obj.get(label_col)
        if value is not None and not isinstance(value, (dict, list)) and isinstance(label, (str, int, float, bool)):
            _count(labels, str(value), str(label), label_case)
    if not keys:
        return Sniffed()
    return Sniffed(columns=sorted(keys), labels=labels)


def _count(labels: Counter[str], text: str, label: str, label_case: str) -> None:
    label = label.strip()
    if label_case == "lower":
        label = label.lower()
    if text.strip() and label:
        labels[label] += 1


def input_problems(
    name: str,
    sniffed: Sniffed,
    *,
    text_col: str,
    label_col: str,
    id_col: str | None,
    delimiter: str | None = None,
) -> list[str]:
    """Every problem the run would certainly stop on, as one sentence each (empty: none found).

    Args:
        name: the file as the user named it (for the messages).
        sniffed: what :func:`sniff_text_table` / :func:`sniff_jsonl` (or a Parquet schema read) found.
        text_col / label_col / id_col: the columns the run reads (``id_col`` None: optional ``id``).
        delimiter: the CSV delimiter, for the hint when the header looks separated by another one.
    """
    problems: list[str] = []
    columns = sniffed.columns
    if columns is not None:
        wanted = [("text", text_col), ("label", label_col)] + ([("id", id_col)] if id_col is not None else [])
        missing = [(role, col) for role, col in wanted if col not in columns]
        if missing:
            shown = ", ".join(repr(c) for c in columns[:20]) or "(none)"
            if len(columns) > 20:
                shown += f", … ({len(columns)} columns)"
            what = "; ".join(f"{role} column {col!r} not found" for role, col in missing)
            options = " and ".join(f"{_OPTIONS[role]} NAME" for role, _ in missing)
            message = f"{what}; columns found in {name!r}: {shown}. Pass {options} to choose "
            message += "another column." if len(missing) == 1 else "other columns."
            hint = delimiter_hint(columns, delimiter) if delimiter else ""
            problems.append(message + (f" {hint}" if hint else ""))
    if sniffed.labels is not None and len(sniffed.labels) < 2 and not problems:
        rows = sum(sniffed.labels.values())
        found = ", ".join(f"{k!r}: {v}" for k, v in sniffed.labels.most_common(3))
        problems.append(
            f"only {len(sniffed.labels)} class remains among the {rows} rows of {name!r} with a text and a label"
            + (f" ({found})" if found else "")
            + "; at least 2 classes are needed to detect label errors: add labelled examples of another class "
            "or check --label-col"
        )
    return problems
