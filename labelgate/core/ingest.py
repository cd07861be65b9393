"""Read a labelled text file into labelgate's canonical row table.

Supported formats (``fmt``):

- ``csv`` / ``tsv``: a header row; text, label and (optional) id columns named by the caller.
- ``jsonl``: one JSON object per line with the text and label keys (``{"text": …, "label": …}``).
- ``chat-jsonl``: OpenAI chat fine-tuning lines ``{"messages": [...]}``; the last user message is the
  text, the last assistant message the label.
- ``parquet``: columns as for CSV.
- ``auto``: by extension (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``/``.json``, ``.parquet``/``.pq``);
  JSONL whose first object has a ``messages`` key is read as chat JSONL.

This module parses bytes (:func:`parse_dataset`); :func:`labelgate.readers.read_dataset` reads the files. A folder
or a glob pattern of batch files (:mod:`labelgate.batches`) is read file by file, in path order, and
:func:`combine_batches` concatenates the rows into one input (one format, the same columns; ``seq``
continues across files, ``source_line`` is the line in the row's own file, and
:attr:`IngestResult.input_files` says which rows came from which file).

The result is a :class:`IngestResult` whose ``rows`` frame has the columns

``seq`` (int, 0-based position), ``row_id`` (str), ``text`` (str | None), ``label`` (str | None, trimmed),
``label_raw`` (str | None, as in the file), ``text_sha256`` (str | None), ``source_line`` (int, 1-based
line where the record starts).

Records that cannot be parsed at all (a broken JSON line, a chat line without an assistant message)
stay in ``rows`` with null text/label and are listed in ``quarantine`` with the reason, so that every
record of the input is accounted for: ``rows_in == len(rows)``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from labelgate.core.ingest_settings import INPUT_FORMATS as INPUT_FORMATS
from labelgate.core.ingest_settings import LABEL_CASES as LABEL_CASES
from labelgate.core.ingest_settings import IngestSettings as IngestSettings
from labelgate.core.sniff import delimiter_hint, detect_format
from labelgate.errors import InputError, MissingColumnError

#: largest CSV field read (characters); Python's csv default of 131072 would reject a long text outright
_MAX_FIELD = 1 << 30

ROW_COLUMNS = ["seq", "row_id", "text", "label", "label_raw", "text_sha256", "source_line"]
QUARANTINE_COLUMNS = ["seq", "row_id", "source_line", "reason", "raw_json"]

# Quarantine reason kinds of ingest: the reason of a record without its details (line, column, values), the key of
# ``IngestResult.reason_counts``.
KIND_INVALID_JSON = "invalid JSON"
KIND_NOT_OBJECT = "line is not a JSON object"
KIND_NO_MESSAGES = "chat line without messages"
KIND_NO_ASSISTANT = "chat example without an assistant message"
KIND_NO_USER = "chat example without a user message"
KIND_MISSING_KEY = "missing key"
KIND_NESTED = "text or label is a JSON object or list"
KIND_SURROGATE = "unpaired surrogate escape"
KIND_FIELD_COUNT = "wrong number of fields"
KIND_REPEATED_HEADER = "repeated header line"
KIND_NUL = "NUL byte in the record"

#: a record that cannot be used: (line, reason kind, reason, raw text of the record)
Broken = tuple[int, str, str, str]


@dataclass(frozen=True)
class IngestResult:
    """What :func:`labelgate.readers.read_dataset` returns.

    Attributes:
        rows: one row per input record (columns :data:`ROW_COLUMNS`).
        quarantine: records that could not be parsed (columns :data:`QUARANTINE_COLUMNS`).
        input_sha256: sha256 of the input file's bytes.
        input_format: the format actually read (never ``auto``).
        dataset_version: sha256 (first 16 hex) of the canonical (row_id, text, label) content: the same data
            in another file format or row order has the same version.
        id_source: the id column used, or ``"content-hash"``.
        labels_normalised: number of labels changed by trimming (or case folding).
        notes: human-readable remarks for the run summary.
        reason_counts: quarantine reason kind (the reason without its per-record details, e.g.
            ``"invalid JSON"``) -> number of quarantined records; sums to ``len(quarantine)``.
        annotators: with ``annotator_col``: the annotator of each row (aligned with ``rows``; ``None`` where a
            record has none); else ``None``.
        input_files: for a folder or glob INPUT, one entry per file read, in order: ``path``, ``rows`` (records
            read from it) and ``first_seq`` (the ``seq`` of its first row); empty for a single file.
    """

    rows: pd.DataFrame
    quarantine: pd.DataFrame
    input_sha256: str
    input_format: str
    dataset_version: str
    id_source: str
    labels_normalised: int = 0
    notes: list[str] = field(default_factory=list)
    reason_counts: dict[str, int] = field(default_factory=dict)
    annotators: pd.Series | None = None
    input_files: list[dict[str, Any]] = field(default_factory=list)


def sha256_text(text: str) -> str:
    """Hex sha256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_dataset(
    data: bytes,
    *,
    source: str,
    fmt: str = "auto",
    text_col: str = "text",
    label_col: str = "label",
    id_col: str | None = None,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    label_case: str = "keep",
    annotator_col: str | None = None,
) -> tuple[IngestResult, list[str]]:
    """Parse one input file's bytes into the canonical row table; also its columns (header, or JSON keys).

    Args:
        data: the file's bytes.
        source: the file's path as the user named it: its extension picks the format when ``fmt`` is ``auto``,
            and messages quote it (nothing is read from it).
        fmt / text_col / label_col / id_col / encoding / delimiter / label_case / annotator_col: as
            :func:`labelgate.readers.read_dataset` documents them.

    Raises:
        InputError: empty, undecodable or not of the format.
        MissingColumnError: the text, label, id or annotator column is absent.
    """
    p = Path(source)
    if label_case not in ("keep", "lower"):
        raise InputError(f"label_case must be 'keep' or 'lower', got {label_case!r}")
    digest = hashlib.sha256(data).hexdigest()
    if not data.strip():
        raise InputError(f"input file {str(p)!r} is empty")
    if fmt == "auto":
        fmt = detect_format(p, data[:65536])
    if fmt in ("csv", "tsv"):
        delimiter = delimiter or ("\t" if fmt == "tsv" else ",")
        records, columns = _read_csv(data, p, encoding=encoding, delimiter=delimiter)
        _check_unique_columns(columns, p, (text_col, label_col, id_col or "id"))
        try:
            rows, bad = _from_records(
                records, columns, text_col, label_col, id_col, table=True, annotator_col=annotator_col
            )
        except MissingColumnError as err:
            hint = delimiter_hint(columns, delimiter)
            if hint:
                err.args = (f"{err.args[0]} {hint}",)
            raise
    elif fmt == "parquet":
        records, columns = _read_parquet(data, p)
        _check_unique_columns(columns, p, (text_col, label_col, id_col or "id"))
        rows, bad = _from_records(
            records, columns, text_col, label_col, id_col, table=True, annotator_col=annotator_col
        )
    elif fmt == "jsonl":
        records, bad_lines = _read_jsonl(data, p, encoding=encoding)
        columns = sorted({k for _, rec in records for k in rec})
        rows, bad = _from_records(
            records, columns, text_col, label_col, id_col, table=False, broken=bad_lines, annotator_col=annotator_col
        )
    elif fmt == "chat-jsonl":
        records, bad_lines = _read_jsonl(data, p, encoding=encoding)
        records, more_bad = _chat_to_records(records)
        columns = ["text", "label", *(["id"] if any("id" in r for _, r in records) else [])]
        rows, bad = _from_records(records, columns, "text", "label", id_col, table=False, broken=bad_lines + more_bad)
    else:
        raise InputError(f"unknown input format {fmt!r}; use csv, tsv, jsonl, chat-jsonl or parquet")

    if rows.empty:
        only = " (only a header line)" if fmt in ("csv", "tsv") else ""
        raise InputError(f"input file {str(p)!r} has no data rows{only}; nothing to curate")
    if len(bad) == len(rows):
        raise InputError(_nothing_readable(p, data, bad, fmt))

    normalised = _normalise_labels(rows, label_case)
    notes: list[str] = []
    if normalised:
        what = "trimmed of whitespace" + (" and lower-cased" if label_case == "lower" else "")
        notes.append(f"{normalised} labels were {what} before comparison")
    variants = _case_variants(rows["label"])
    if variants and label_case == "keep":
        shown = "; ".join(" / ".join(repr(v) for v in group) for group in variants[:3])
        notes.append(f"labels differing only by case are kept apart: {shown} (pass --label-case lower to merge)")
    annotators = rows.attrs.pop("annotators", None)
    id_source = str(rows.attrs.pop("id_source"))
    reason_counts = dict(rows.attrs.pop("reason_counts"))
    return IngestResult(
        rows=rows[ROW_COLUMNS],
        quarantine=bad,
        input_sha256=digest,
        input_format=fmt,
        dataset_version=_dataset_version(rows),
        id_source=id_source,
        labels_normalised=normalised,
        notes=notes,
        reason_counts=reason_counts,
        annotators=annotators,
    ), columns


def combine_batches(pattern: str, parts: list[tuple[Path, IngestResult, list[str]]]) -> IngestResult:
    """The batch files of ``pattern`` (each parsed by :func:`parse_dataset`, in path order) as one input.

    ``seq`` continues across files, quarantine reasons name their file, content-hash ids count repeats over all
    files, and :attr:`IngestResult.input_files` says which rows came from which file.
    """
    rows, quarantine, annotators, listed = [], [], [], []
    offset = 0
    for f, result, _ in parts:
        rows.append(result.rows.assign(seq=result.rows["seq"] + offset))
        q = result.quarantine.assign(seq=result.quarantine["seq"] + offset)
        quarantine.append(q.assign(reason=f"{f.name}: " + q["reason"].astype(str)))
        if result.annotators is not None:
            annotators.append(result.annotators)
        listed.append({"path": str(f), "rows": len(result.rows), "first_seq": offset})
        offset += len(result.rows)
    first = parts[0][1]
    all_rows = pd.concat(rows, ignore_index=True)
    all_bad = pd.concat(quarantine, ignore_index=True)
    if first.id_source == "content-hash":  # a text repeated in two files: `~N` counts over all of them
        base = all_rows["row_id"].str.split("~", n=1).str[0]
        n = base.groupby(base).cumcount() + 1
        all_rows["row_id"] = base.where(n == 1, base + "~" + n.astype(str))
        all_bad["row_id"] = all_bad["seq"].map(dict(zip(all_rows["seq"], all_rows["row_id"])))
    reasons: dict[str, int] = {}
    for _, result, _ in parts:
        for kind, count in result.reason_counts.items():
            reasons[kind] = reasons.get(kind, 0) + count
    shown = ", ".join(f"{f.name} ({len(r.rows)})" for f, r, _ in parts[:5]) + (", …" if len(parts) > 5 else "")
    notes = [f"read {len(parts)} file{'s' * (len(parts) != 1)} of {pattern!r} as one input: {shown}"]
    notes += list(dict.fromkeys(n for _, r, _ in parts for n in r.notes))
    digest = hashlib.sha256("".join(f"{f.name}\x1f{r.input_sha256}\n" for f, r, _ in parts).encode()).hexdigest()
    return IngestResult(
        rows=all_rows[ROW_COLUMNS],
        quarantine=all_bad[QUARANTINE_COLUMNS],
        input_sha256=digest,
        input_format=first.input_format,
        dataset_version=_dataset_version(all_rows),
        id_source=first.id_source,
        labels_normalised=sum(r.labels_normalised for _, r, _ in parts),
        notes=notes,
        reason_counts=dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        annotators=pd.concat(annotators, ignore_index=True) if annotators else None,
        input_files=listed,
    )


def _check_unique_columns(columns: list[str], path: Path, used: tuple[str, ...]) -> None:
    """Raise when a column the run reads appears more than once in the header (which copy is meant?)."""
    for name in dict.fromkeys(used):
        n = columns.count(name)
        if n > 1:
            raise InputError(
                f"column {name!r} appears {n} times in the header of {str(path)!r}; "
                "rename the copies so that every column name is unique"
            )


def _nothing_readable(path: Path, data: bytes, bad: pd.DataFrame, fmt: str) -> str:
    """The message when no record of the file could be read at all (every one would be quarantined)."""
    first = bad.iloc[0]
    what = "lines" if fmt in ("jsonl", "chat-jsonl") else "records"
    msg = f"none of the {len(bad)} {what} of {str(path)!r} can be used (line {first['source_line']}: {first['reason']})"
    first_line = data.lstrip(b"\xef\xbb\xbf").lstrip().split(b"\n", 1)[0].strip()
    if fmt in ("jsonl", "chat-jsonl"):
        if first_line.startswith(b"["):
            return msg + "; the file looks like one JSON array: write one JSON object per line (JSON Lines)"
        if first_line == b"{":
            return msg + "; the file looks like one pretty-printed JSON document: write one JSON object per line"
        if str(first["reason"]).startswith("missing key"):
            return msg + "; pass --text-col / --label-col to name the keys"
        return msg + "; every line must be one JSON object holding the text and the label"
    return msg + "; check the delimiter (--delimiter) and the format (--input-format)"


# --- readers ------------------------------------------------------------------------------------


def _decode(data: bytes, path: Path, encoding: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode(encoding)
    except LookupError as err:
        raise InputError(f"unknown encoding {encoding!r}; pass a Python codec name such as utf-8 or latin-1") from err
    except UnicodeDecodeError as err:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise InputError(
                f"{str(path)!r} is not valid {encoding}: it starts with a UTF-16 byte-order mark; "
                "pass --encoding utf-16 or re-save it as UTF-8"
            ) from err
        line = data[: err.start].count(b"\n") + 1
        snippet = data[max(0, err.start - 20) : err.start + 10]
        raise InputError(
            f"{str(path)!r} is not valid {encoding} at byte {err.start} (line {line}, near {snippet!r}); "
            "re-save it as UTF-8 or pass --encoding (e.g. latin-1, cp1252)"
        ) from err


def _read_csv(data: bytes, path: Path, *, encoding: str, delimiter: str) -> tuple[list[tuple[int, dict]], list[str]]:
    text = _decode(data, path, encoding)
    if "\x00" in text:
        _check_nul_bytes(text, path)  # a binary or UTF-16 file stops here; a few corrupt records are quarantined
    # one multi-megabyte text must not stop the whole file: the row is quarantined by length in validation
    if csv.field_size_limit() < _MAX_FIELD:
        csv.field_size_limit(_MAX_FIELD)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"input file {str(path)!r} is empty") from None
    except csv.Error as err:
        raise InputError(f"{str(path)!r} line 1: cannot parse the CSV header: {err}") from err
    header = [h.strip() for h in header]
    records: list[tuple[int, dict]] = []
    start = reader.line_num + 1
    width = len(header)
    try:
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip() and width > 1):
                start = reader.line_num + 1
                continue  # blank line
            rec: dict[str, Any] = dict(zip(header, fields))
            if len(fields) != width:
                rec["__error__"] = f"has {len(fields)} field{'s' * (len(fields) != 1)}, the header has {width}"
                rec["__kind__"] = KIND_FIELD_COUNT
            elif [f.strip().removeprefix("\ufeff") for f in fields] == header:
                rec["__error__"] = "repeats the header line (were two files concatenated?)"
                rec["__kind__"] = KIND_REPEATED_HEADER
            elif any("\x00" in f for f in fields):
                rec = {k: v.replace("\x00", "\ufffd") for k, v in rec.items()}
                rec["__error__"] = "contains a NUL byte (a corrupt record?): remove it or re-export the file"
                rec["__kind__"] = KIND_NUL
            records.append((start, rec))
            start = reader.line_num + 1
    except csv.Error as err:
        if "end of data" in str(err):
            raise InputError(
                f"{str(path)!r} line {start}: unterminated quoted field (the quote opened there is never closed); "
                'close the quote, and write a quote inside a quoted field as two quotes ("")'
            ) from err
        raise InputError(
            f"{str(path)!r} line {reader.line_num}: malformed CSV ({err}); quote fields that contain the delimiter "
            'or quotes, and write a quote inside a quoted field as two quotes ("")'
        ) from err
    return records, header


#: a CSV whose lines hold a NUL byte more often than this is not text (binary, or UTF-16 read as UTF-8): an error
NUL_LINE_SHARE = 0.5


def _check_nul_bytes(text: str, path: Path) -> None:
    """Raise when the NUL bytes of ``text`` say the file is binary or UTF-16 without a BOM (most lines hold one,
    or the header does); a few NULs inside records are left to quarantine those records."""
    lines = text.split("\n")
    with_nul = sum("\x00" in line for line in lines)
    first = next(i for i, line in enumerate(lines) if "\x00" in line) + 1
    head = text[:4096]
    if any(half and half.count("\x00") > 0.8 * len(half) for half in (head[0::2], head[1::2])):  # X\0X\0 or \0X\0X
        hint = "it looks like UTF-16 without a byte-order mark: pass --encoding utf-16-le (or utf-16-be)"
    elif with_nul > NUL_LINE_SHARE * len(lines) or first == 1:
        hint = "is it a binary file? remove the NUL bytes or re-export the file as UTF-8 text"
    else:
        return
    raise InputError(f"{str(path)!r} contains a NUL byte at line {first} ({with_nul} of {len(lines)} lines); {hint}")


def _read_parquet(data: bytes, path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as err:  # pyarrow raises several types for corrupt files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(
            f"cannot read {str(path)!r} as Parquet: {first}; re-export the file (it may be truncated or damaged) "
            "or pass --input-format if it is not Parquet"
        ) from err
    columns = list(table.column_names)
    records = [(i + 1, rec) for i, rec in enumerate(table.to_pylist())]
    return records, columns


def _read_jsonl(data: bytes, path: Path, *, encoding: str) -> tuple[list[tuple[int, dict]], list[Broken]]:
    text = _decode(data, path, encoding)
    records: list[tuple[int, dict]] = []
    broken: list[Broken] = []
    # JSON Lines are separated by \n only: str.splitlines() would also split at U+2028 inside a string
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as err:
            broken.append((lineno, KIND_INVALID_JSON, f"invalid JSON: {err.msg} at column {err.colno}", line[:2000]))
            continue
        if not isinstance(obj, dict):
            broken.append((lineno, KIND_NOT_OBJECT, f"expected a JSON object, got {type(obj).__name__}", line[:2000]))
            continue
        records.append((lineno, obj))
    if not records and not broken:
        raise InputError(f"input file {str(path)!r} has no data rows")
    return records, broken


def _chat_to_records(records: list[tuple[int, dict]]) -> tuple[list[tuple[int, dict]], list[Broken]]:
    out: list[tuple[int, dict]] = []
    broken: list[Broken] = []
    for lineno, obj in records:
        messages = obj.get("messages")
        raw = json.dumps(obj, ensure_ascii=False)[:2000]
        if not isinstance(messages, list):
            broken.append((lineno, KIND_NO_MESSAGES, "chat line has no 'messages' list", raw))
            continue
        user = _last_content(messages, "user")
        assistant = _last_content(messages, "assistant")
        if assistant is None:
            broken.append((lineno, KIND_NO_ASSISTANT, "chat example has no assistant message (the label)", raw))
            continue
        if user is None:
            broken.append((lineno, KIND_NO_USER, "chat example has no user message (the text)", raw))
            continue
        rec = {"text": user, "label": assistant}
        if "id" in obj:
            rec["id"] = obj["id"]
        out.append((lineno, rec))
    return out, broken


def _last_content(messages: Iterable[Any], role: str) -> str | None:
    found = None
    for msg in messages:
        if isinstance(msg, dict) and msg.get("role") == role:
            content = msg.get("content")
            if isinstance(content, list):  # content parts
                content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            found = None if content is None else str(content)
    return found


# --- canonical rows -----------------------------------------------------------------------------


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, (bytes, bytearray)):  # a Parquet binary column
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _from_records(
    records: list[tuple[int, dict]],
    columns: list[str],
    text_col: str,
    label_col: str,
    id_col: str | None,
    *,
    table: bool,
    broken: list[Broken] | None = None,
    annotator_col: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    broken = broken or []
    if records or table:
        present = set(columns)
        for col, role, option in ((text_col, "text", "--text-col"), (label_col, "label", "--label-col")):
            if col not in present:
                raise MissingColumnError(col, role, columns, option=option)
        if id_col is not None and id_col not in present:
            raise MissingColumnError(id_col, "id", columns, option="--id-col")
        if annotator_col is not None and annotator_col not in present:
            raise MissingColumnError(annotator_col, "annotator", columns, option="--annotator-col")
    if id_col is None and "id" in columns and "id" not in (text_col, label_col):
        id_col = "id"
    # merge parsed records and broken lines back into input order
    entries: list[tuple[int, dict | None, str | None, str | None]] = [(ln, rec, None, None) for ln, rec in records]
    entries += [(ln, None, reason, raw) for ln, _, reason, raw in broken]
    entries.sort(key=lambda e: e[0])
    kinds: dict[str, int] = {}
    for _, kind, _, _ in broken:
        kinds[kind] = kinds.get(kind, 0) + 1

    seqs, ids, texts, labels, lines, who = [], [], [], [], [], []
    q_rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for seq, (line, rec, reason, raw) in enumerate(entries):
        kind = ""
        if rec is None:
            text = label = None
            raw = _scrub(raw)
            rid = _hash_id(f"line:{line}:{raw}", seen)
            q_rows.append({"seq": seq, "row_id": rid, "source_line": line, "reason": reason, "raw_json": raw})
        else:
            text = _as_text(rec.get(text_col))
            label = _as_text(rec.get(label_col))
            if not table:
                missing = [k for k in (text_col, label_col) if k not in rec]
                if missing:
                    reason, kind = f"missing key {missing[0]!r}", KIND_MISSING_KEY
            nested = [
                (role, type(rec[col]).__name__)
                for role, col in (("text", text_col), ("label", label_col))
                if isinstance(rec.get(col), (dict, list))
            ]
            if nested and reason is None:
                role, type_name = nested[0]
                what = "a single string" if role == "text" else "one label per row"
                reason = f"{role} is a {'JSON object' if type_name == 'dict' else 'list'}, expected {what}"
                kind = KIND_NESTED
            # a JSON escape such as "\ud800" decodes to a lone surrogate, which no UTF-8 store can hold
            unpaired = [role for role, v in (("text", text), ("label", label)) if v and _SURROGATE.search(v)]
            if unpaired and reason is None:
                reason = f"{unpaired[0]} holds an unpaired UTF-16 surrogate escape (such as \\ud800); fix the escape"
                kind = KIND_SURROGATE
            text, label = _scrub(text), _scrub(label)
            if "__error__" in rec:
                reason, kind = str(rec["__error__"]), str(rec["__kind__"])
            if id_col is not None and _as_text(rec.get(id_col)) not in (None, ""):
                rid = _scrub(str(_as_text(rec.get(id_col))).strip())
            else:
                rid = _hash_id(f"{text}\x1f{label}", seen)
            if reason is not None:
                kinds[kind] = kinds.get(kind, 0) + 1
                raw_rec = {k: v for k, v in rec.items() if k not in ("__error__", "__kind__")}
                q_rows.append(
                    {
                        "seq": seq,
                        "row_id": rid,
                        "source_line": line,
                        "reason": reason,
                        "raw_json": _scrub(json.dumps(raw_rec, ensure_ascii=False, default=str)[:2000]),
                    }
                )
        seqs.append(seq)
        if annotator_col is not None:
            name = None if rec is None else _as_text(rec.get(annotator_col))
            who.append(_scrub(name.strip()) if isinstance(name, str) and name.strip() else None)
        ids.append(rid)
        texts.append(text)
        labels.append(label)
        lines.append(line)
    rows = pd.DataFrame(
        {
            "seq": pd.array(seqs, dtype="int64"),
            "row_id": pd.array(ids, dtype="object"),
            "text": pd.array(texts, dtype="object"),
            "label": pd.array(labels, dtype="object"),
            "label_raw": pd.array(labels, dtype="object"),
            "text_sha256": pd.array([None if t is None else sha256_text(t) for t in texts], dtype="object"),
            "source_line": pd.array(lines, dtype="int64"),
        }
    )
    rows.attrs["id_source"] = id_col if id_col is not None else "content-hash"
    if annotator_col is not None:
        rows.attrs["annotators"] = pd.Series(who, dtype="object", name="annotator")
    rows.attrs["reason_counts"] = dict(sorted(kinds.items(), key=lambda kv: -kv[1]))
    quarantine = pd.DataFrame(q_rows, columns=QUARANTINE_COLUMNS)
    return rows, quarantine


_SURROGATE = re.compile("[\ud800-\udfff]")


def _scrub(value: str | None) -> str | None:
    """``value`` with every lone surrogate replaced by U+FFFD (valid UTF-8 for DuckDB, Arrow and the exports)."""
    return value if value is None or not _SURROGATE.search(value) else _SURROGATE.sub("\ufffd", value)


def _hash_id(content: str, seen: dict[str, int]) -> str:
    base = sha256_text(content)[:16]
    n = seen.get(base, 0) + 1
    seen[base] = n
    return base if n == 1 else f"{base}~{n}"


def _normalise_labels(rows: pd.DataFrame, label_case: str) -> int:
    raw = rows["label_raw"]
    norm = raw.map(lambda v: v if v is None else v.strip(), na_action="ignore")
    if label_case == "lower":
        norm = norm.map(lambda v: v if v is None else v.lower(), na_action="ignore")
    norm = norm.astype(object).where(norm.notna(), None)
    changed = int(((norm != raw) & raw.notna()).sum())
    rows["label"] = norm
    return changed


def _case_variants(labels: pd.Series) -> list[list[str]]:
    uniq = sorted({v for v in labels.dropna().unique() if v})
    groups: dict[str, list[str]] = {}
    for v in uniq:
        groups.setdefault(v.casefold(), []).append(v)
    return [g for g in groups.values() if len(g) > 1]


def _dataset_version(rows: pd.DataFrame) -> str:
    h = hashlib.sha256()
    keyed = sorted(zip(rows["row_id"], rows["text"].fillna("\x00"), rows["label"].fillna("\x00")))
    for rid, text, label in keyed:
        h.update(f"{rid}\x1f{text}\x1f{label}\x1e".encode())
    return h.hexdigest()[:16]
