"""Turn the reviewed rows into fine-tuning files: apply decisions, keep the test set out, split, format, check.

Pure functions: the files are written by :mod:`labelgate.tasks.export` (through :mod:`labelgate.fileio`).

The steps, each its own function:

1. :func:`apply_decisions`: the latest decision per row (keep, relabel, exclude).
2. :func:`exclude_leakage`: rows flagged by the leakage detector and rows whose text equals a test row's
   text (exactly, or after case folding and whitespace collapsing) are excluded whatever the decisions.
3. :func:`stratified_split`: a seeded, order-independent train/validation split per class.
4. :func:`plan_export`: every requested format's files, built and checked
   :data:`CHUNK_ROWS` rows at a time by :class:`labelgate.core.checks.JsonlChecker` (or ``check_table``), and
   handed to an :class:`ExportSink` chunk by chunk (or kept as bytes when none is given); a failed check raises
   :class:`~labelgate.errors.ExportError`, and the caller discards what the sink took.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np
import pandas as pd

from labelgate.core.checks import CheckReport, JsonlChecker, check_table
from labelgate.core.formats import (
    DEFAULT_COMPLETION_SEPARATOR,
    DEFAULT_COMPLETION_STOP,
    DEFAULT_USER_TEMPLATE,
    FORMATS,
    Example,
    FormatSpec,
    Templates,
    default_system_prompt,
    get_format,
    make_templates,
    table_bytes,
    to_jsonl,
)
from labelgate.core.settings import settings_or_options
from labelgate.core.text import normalise_text
from labelgate.core.tokens import CachedCounter, RegexCounter, TokenCounter
from labelgate.errors import ExportError, SettingsError

__all__ = [
    "CLEANED_COLUMNS",
    "FORMATS",
    "ExportPlan",
    "ExportSettings",
    "ExportSink",
    "PlannedFile",
    "apply_decisions",
    "decision_summary",
    "default_system_prompt",
    "exclude_leakage",
    "normalise_text",
    "openai_chat",
    "plan_export",
    "sha256_bytes",
    "stratified_split",
    "text_fingerprints",
    "to_jsonl",
]

CLEANED_COLUMNS = ["row_id", "text", "label", "original_label", "action", "source"]

#: ``source`` of the exclusions made by :func:`exclude_leakage`
LEAKAGE_SOURCE = "leakage"


def apply_decisions(rows: pd.DataFrame, decisions: pd.DataFrame | None) -> pd.DataFrame:
    """Apply the latest decision per row to ``rows``.

    Args:
        rows: the valid rows, columns ``row_id, text, label`` (unique ``row_id``).
        decisions: the latest decision per row, columns ``row_id, action, label`` and optionally
            ``source``; rows without a decision are kept as given.

    Returns:
        Columns :data:`CLEANED_COLUMNS` in the order of ``rows``; ``label`` is the label to export
        (None for excluded rows), ``action`` is keep, relabel or exclude, ``source`` policy, human or
        ``None`` (no decision).
    """
    out = rows[["row_id", "text", "label"]].rename(columns={"label": "original_label"}).copy()
    if decisions is None or decisions.empty:
        out["label"] = out["original_label"]
        out["action"] = "keep"
        out["source"] = None
        return out[CLEANED_COLUMNS].reset_index(drop=True)
    d = decisions.drop_duplicates("row_id", keep="last").set_index("row_id")
    unknown = set(d.index) - set(out["row_id"])
    if unknown:
        sample = sorted(unknown)[:3]
        raise ExportError(f"{len(unknown)} decisions name rows that are not valid rows of the run, e.g. {sample}")
    action = out["row_id"].map(d["action"]).fillna("keep")
    bad = sorted(set(action) - {"keep", "relabel", "exclude"})
    if bad:
        raise ExportError(f"unknown decision action {bad[0]!r}; expected keep, relabel or exclude")
    new_label = out["row_id"].map(d["label"])
    relabel = action == "relabel"
    if new_label[relabel].isna().any():
        rid = out.loc[relabel & new_label.isna(), "row_id"].iloc[0]
        raise ExportError(f"relabel decision for row {rid!r} has no label")
    label = out["original_label"].where(~relabel, new_label)
    label = label.where(action != "exclude", None)
    out["label"] = label.astype(object).where(label.notna(), None)
    out["action"] = action
    source = d["source"] if "source" in d.columns else pd.Series(dtype=object)
    src = out["row_id"].map(source).where(out["row_id"].isin(d.index), None)
    out["source"] = src.astype(object).where(src.notna(), None)
    return out[CLEANED_COLUMNS].reset_index(drop=True)


# --- leakage ------------------------------------------------------------------------------------------


def text_fingerprints(texts: Iterable[str | None]) -> set[str]:
    """Fingerprints of ``texts``: sha256 of the exact text (``x:``) and of :func:`normalise_text` (``n:``)."""
    out: set[str] = set()
    for t in texts:
        if not isinstance(t, str):
            continue
        out.add("x:" + hashlib.sha256(t.encode("utf-8")).hexdigest())
        out.add("n:" + hashlib.sha256(normalise_text(t).encode("utf-8")).hexdigest())
    return out


def exclude_leakage(
    cleaned: pd.DataFrame, *, flagged: Iterable[str] = (), test_fingerprints: set[str] | None = None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Exclude rows that leak the test set, whatever their decisions.

    Args:
        cleaned: output of :func:`apply_decisions`.
        flagged: row ids the leakage detector flagged (``issues`` rows of type ``leakage``).
        test_fingerprints: :func:`text_fingerprints` of the test texts.

    Returns:
        ``(cleaned with those rows' action exclude, label None and source "leakage", counts)`` with counts
        ``leakage_flagged`` (detector), ``leakage_text_match`` (same text as a test row) and
        ``leakage_excluded`` (rows excluded for either reason).
    """
    flagged_set = set(flagged)
    by_detector = cleaned["row_id"].isin(flagged_set)
    if test_fingerprints:
        hits = [bool(text_fingerprints([t]) & test_fingerprints) for t in cleaned["text"]]
        by_text = pd.Series(hits, index=cleaned.index, dtype=bool)
    else:
        by_text = pd.Series(False, index=cleaned.index, dtype=bool)
    leak = by_detector | by_text
    out = cleaned.copy()
    out.loc[leak, "action"] = "exclude"
    out.loc[leak, "label"] = None
    out.loc[leak, "source"] = LEAKAGE_SOURCE
    counts = {
        "leakage_flagged": int(by_detector.sum()),
        "leakage_text_match": int(by_text.sum()),
        "leakage_excluded": int(leak.sum()),
    }
    return out, counts


def decision_summary(cleaned: pd.DataFrame) -> dict[str, Any]:
    """``{"by_action": {action: n}, "by_source": {source: {action: n}}}``; rows without a decision: ``none``."""
    source = cleaned["source"].astype(object).where(cleaned["source"].notna(), "none")
    by_action = {str(k): int(v) for k, v in cleaned["action"].value_counts().sort_index().items()}
    by_source: dict[str, dict[str, int]] = {}
    for (src, act), n in cleaned.groupby([source, cleaned["action"]]).size().sort_index().items():
        by_source.setdefault(str(src), {})[str(act)] = int(n)
    return {"by_action": by_action, "by_source": by_source}


# --- split --------------------------------------------------------------------------------------------


def stratified_split(
    row_ids: Iterable[str], labels: Iterable[str], *, val_fraction: float, seed: int = 0
) -> np.ndarray:
    """Assign each row to train or validation, stratified by label; return a bool array (True = validation).

    Within each class, rows are ordered by ``sha256(f"{seed}:{row_id}")`` and the first
    ``round(n * val_fraction)`` go to validation (at least one when the class has 2 or more rows
    and ``val_fraction > 0``; never the whole class). The assignment of a row depends only on its
    id, its class, the seed and the class size, not on the order of the input.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    ids = [str(r) for r in row_ids]
    labs = [str(v) for v in labels]
    if len(ids) != len(labs):
        raise ValueError(f"{len(ids)} row ids but {len(labs)} labels")
    is_val = np.zeros(len(ids), dtype=bool)
    if val_fraction == 0.0:
        return is_val
    by_class: dict[str, list[int]] = {}
    for i, lab in enumerate(labs):
        by_class.setdefault(lab, []).append(i)
    for members in by_class.values():
        n = len(members)
        if n < 2:
            continue
        k = min(max(1, round(n * val_fraction)), n - 1)
        ordered = sorted(members, key=lambda i: hashlib.sha256(f"{seed}:{ids[i]}".encode()).digest())
        is_val[ordered[:k]] = True
    return is_val


# --- formats ------------------------------------------------------------------------------------------


def openai_chat(text: str, label: str, *, system_prompt: str | None) -> dict[str, Any]:
    """One OpenAI chat fine-tuning example: ``{"messages": [system?, user, assistant]}``."""
    messages: list[dict[str, str]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": text})
    messages.append({"role": "assistant", "content": label})
    return {"messages": messages}


#: rows serialised and checked at a time: a file handed to a sink is never held whole (a million chat examples
#: are about 0.3 GB of JSON and, parsed back for the checks, several GB of Python objects)
CHUNK_ROWS = 20_000


class ExportSink(Protocol):
    """Takes the export's files chunk by chunk: ``write(name, data)`` appends ``data`` to the file ``name``.

    The files come one after the other, each in order, its first chunk possibly empty (an empty file is still
    a file). :func:`plan_export` may raise after some chunks were written: the caller discards them then.
    """

    def write(self, name: str, data: bytes) -> None: ...


@dataclass(frozen=True)
class PlannedFile:
    """One file of the export: ``name`` inside the run's export folder, and its figures.

    Attributes:
        data: the file's bytes, or None when they went to an :class:`ExportSink`.
        sha256 / size: of the file's bytes; lines: newline count (None for parquet); records: examples or rows.
    """

    name: str
    format: str
    split: str
    lines: int | None
    records: int
    sha256: str
    size: int
    data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ExportPlan:
    """Everything to write, already checked.

    Attributes:
        files: the files, in the order of the formats.
        counts: exported, exported_train, exported_val, excluded, relabelled, rows_valid.
        reports: the check report of each file, by file name.
        templates: the resolved prompt templates.
        tokenizer: name and description of the token counter.
        cleaned: the cleaned table with its ``split`` column (train, val or excluded).
    """

    files: list[PlannedFile]
    counts: dict[str, int]
    reports: dict[str, CheckReport]
    templates: Templates
    tokenizer: dict[str, str]
    cleaned: pd.DataFrame = field(repr=False)

    @property
    def warnings(self) -> list[str]:
        """Every file's warnings, one line per distinct (split, message): ``"train (openai-chat, alpaca): …"``."""
        grouped: dict[tuple[str, str], list[str]] = {}
        for r in self.reports.values():
            for w in r.warnings:
                grouped.setdefault((r.split, w), []).append(r.format)
        return [f"{split} ({', '.join(fmts)}): {w}" for (split, w), fmts in grouped.items()]


#: allowed values of :attr:`ExportSettings.token_counter`
TOKEN_COUNTERS = ("auto", "cl100k", "wordpiece", "regex")


@dataclass(frozen=True)
class ExportSettings:
    """Settings of the export (:func:`plan_export` and the export service).

    :meth:`labelgate.config.CurateParams.export_settings` builds them from the flow parameters (``formats`` is the
    parameter ``export_formats``).

    Attributes:
        formats: export format names from :data:`labelgate.core.formats.FORMATS`, in order (unknown names are
            refused by :func:`plan_export`, which knows the formats).
        val_fraction: fraction of each class put in validation, ``0 <= val_fraction < 1``.
        seed: seed of the stratified train/validation split.
        system_prompt / task_description / user_template / label_map / completion_separator / completion_stop:
            the prompt templates (see :func:`labelgate.core.formats.make_templates`).
        max_example_tokens: per-example token limit for every format (>= 1; None: each format's documented one).
        min_train_examples: minimum training examples (>= 0; None: each format's documented minimum; 0: none).
        price_per_mtok: price per million training tokens for the cost estimate (>= 0; None: tokens only).
        token_counter: the token counter's name, one of :data:`TOKEN_COUNTERS`; :func:`plan_export` takes the
            counter itself (``counter``), which the export service resolves from this name
            (:func:`labelgate.tokenizers.get_counter`).

    Raises:
        SettingsError: (also a ValueError) a value outside its range; the message names the field.
    """

    formats: tuple[str, ...] = ("openai-chat",)
    val_fraction: float = 0.1
    seed: int = 0
    system_prompt: str | None = None
    task_description: str = "Classify the text"
    user_template: str = DEFAULT_USER_TEMPLATE
    label_map: Mapping[str, str] = field(default_factory=dict)
    completion_separator: str = DEFAULT_COMPLETION_SEPARATOR
    completion_stop: str = DEFAULT_COMPLETION_STOP
    max_example_tokens: int | None = None
    min_train_examples: int | None = None
    price_per_mtok: float | None = None
    token_counter: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.formats, str):
            raise SettingsError(f"formats must be a sequence of format names, got the string {self.formats!r}")
        object.__setattr__(self, "formats", tuple(self.formats))
        object.__setattr__(self, "label_map", dict(self.label_map or {}))
        if not 0.0 <= self.val_fraction < 1.0:
            raise SettingsError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        for name, least in (("max_example_tokens", 1), ("min_train_examples", 0)):
            value = getattr(self, name)
            if value is not None and value < least:
                raise SettingsError(f"{name} must be at least {least} or None, got {value!r}")
        if self.price_per_mtok is not None and self.price_per_mtok < 0:
            raise SettingsError(f"price_per_mtok must be at least 0 or None, got {self.price_per_mtok!r}")
        if self.token_counter not in TOKEN_COUNTERS:
            raise SettingsError(f"token_counter must be one of {', '.join(TOKEN_COUNTERS)}, got {self.token_counter!r}")


#: the keyword arguments :func:`plan_export` still accepts instead of ``settings``
EXPORT_FIELDS = tuple(f.name for f in fields(ExportSettings))


def plan_export(
    cleaned: pd.DataFrame,
    *,
    settings: ExportSettings | None = None,
    counter: TokenCounter | None = None,
    sink: ExportSink | None = None,
    chunk_rows: int = CHUNK_ROWS,
    **options: Any,
) -> ExportPlan:
    """Build and check the files of ``cleaned`` (from :func:`apply_decisions` / :func:`exclude_leakage`).

    Excluded rows are left out of the fine-tuning files (the csv/parquet table keeps them, marked).
    For every JSONL format, ``train.<format>.jsonl`` and ``val.<format>.jsonl`` (the latter only when
    ``val_fraction > 0``) are serialised, parsed back with the format's validator and checked; every
    parsed example must equal the one written.

    Args:
        settings: formats, split, prompt templates and check limits (:class:`ExportSettings`; default
            ``ExportSettings()``); its ``token_counter`` name is not read here (see ``counter``).
        counter: token counter (None: :class:`labelgate.core.tokens.RegexCounter`; the export service passes
            :func:`labelgate.tokenizers.get_counter` of the settings' ``token_counter``).
        sink: where the files' bytes go, chunk by chunk (:class:`ExportSink`; the export service writes them into
            its staging folder); None keeps each file whole in :attr:`PlannedFile.data`.
        chunk_rows: rows serialised and checked at a time (>= 1; the files' bytes do not depend on it).
        **options: instead of ``settings``, fields of :class:`ExportSettings` as keyword arguments
            (``formats=["alpaca"], val_fraction=0``; the rest keep their defaults). Kept because many tests call
            the planner that way; the export service passes ``settings``.

    Raises:
        ExportError: nothing left to export, or a file failed its checks (names the file and line).
        ConfigError: unknown format or invalid templates (SettingsError: a value out of range).
        TypeError: both ``settings`` and keyword options, or a keyword that is no field of ExportSettings.
    """
    s = settings_or_options(ExportSettings, settings, options, caller="plan_export", fields=EXPORT_FIELDS)
    specs = [get_format(f) for f in dict.fromkeys(s.formats)]
    if not specs:
        raise ExportError("no export format given")
    kept_mask = cleaned["action"] != "exclude"
    kept = cleaned[kept_mask].sort_values("row_id", kind="stable")
    if kept.empty:
        raise ExportError("no rows left to export: every row was excluded or quarantined")
    templates = make_templates(
        kept["label"],
        system_prompt=s.system_prompt,
        task_description=s.task_description,
        user_template=s.user_template,
        label_map=s.label_map,
        completion_separator=s.completion_separator,
        completion_stop=s.completion_stop,
    )
    is_val = stratified_split(kept["row_id"], kept["label"], val_fraction=s.val_fraction, seed=s.seed)
    split = pd.Series("excluded", index=cleaned.index, dtype=object)
    split.loc[kept.index] = np.where(is_val, "val", "train")
    table = cleaned.assign(split=split)

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows!r}")
    cached = CachedCounter(counter or RegexCounter())
    splits = {"train": kept[~is_val]}
    if s.val_fraction > 0:
        splits["val"] = kept[is_val]
    files: list[PlannedFile] = []
    reports: dict[str, CheckReport] = {}
    for spec in specs:
        if spec.kind == "table":
            planned, report = _plan_table(spec, table, sink)
            files.append(planned)
            reports[planned.name] = report
            continue
        for split_name, part in splits.items():
            checker = JsonlChecker(
                spec,
                templates,
                file=spec.file_name(split_name),
                split=split_name,
                counter=cached,
                max_tokens=s.max_example_tokens,
                min_examples=s.min_train_examples,
                price_per_mtok=s.price_per_mtok,
            )
            planned, report = _plan_jsonl(spec, templates, part, checker, sink, chunk_rows)
            reports[planned.name] = report
            files.append(planned)
    counts = {
        "rows_valid": len(cleaned),
        "exported": len(kept),
        "exported_train": int((~is_val).sum()),
        "exported_val": int(is_val.sum()),
        "excluded": int((~kept_mask).sum()),
        "relabelled": int((cleaned["action"] == "relabel").sum()),
    }
    tokenizer = {"name": cached.name, "description": cached.description}
    return ExportPlan(files, counts, reports, templates, tokenizer, table)


def _planned(
    name: str, spec: FormatSpec, split: str, pieces: Iterable[bytes], sink: ExportSink | None, records: int
) -> PlannedFile:
    """Hand ``pieces`` to ``sink`` (or join them) while counting their sha256, size and lines."""
    digest, size, lines, kept = hashlib.sha256(), 0, 0, []
    for data in pieces:
        digest.update(data)
        size += len(data)
        lines += data.count(b"\n")
        if sink is None:
            kept.append(data)
        else:
            sink.write(name, data)
    return PlannedFile(
        name=name,
        format=spec.name,
        split=split,
        lines=None if spec.name == "parquet" else lines,
        records=records,
        sha256=digest.hexdigest(),
        size=size,
        data=b"".join(kept) if sink is None else None,
    )


def _plan_jsonl(
    spec: FormatSpec,
    templates: Templates,
    part: pd.DataFrame,
    checker: JsonlChecker,
    sink: ExportSink | None,
    chunk_rows: int,
) -> tuple[PlannedFile, CheckReport]:
    """Serialise ``part``'s examples ``chunk_rows`` at a time, check each chunk as it is read back, hand it on."""
    roundtrip = _Roundtrip(spec, templates)

    def chunks():  # at least one, so that an empty file is still written
        for start in range(0, max(len(part), 1), chunk_rows):
            rows = part.iloc[start : start + chunk_rows]
            written = [templates.example(t, lab) for t, lab in zip(rows["text"], rows["label"])]
            data, _ = to_jsonl(spec.record(ex, templates) for ex in written)  # type: ignore[misc]
            roundtrip.compare(written, checker.feed(data))
            yield data

    planned = _planned(checker.file, spec, checker.split, chunks(), sink, len(part))
    report = checker.finish()
    roundtrip.report(report)
    report.raise_if_failed()
    return planned, report


class _Roundtrip:
    """Whether every example reads back as the one written (only reported on a file that passed its checks)."""

    def __init__(self, spec: FormatSpec, templates: Templates) -> None:
        self.spec, self.templates = spec, templates
        self.written = self.parsed = 0
        self.first_mismatch: int | None = None

    def compare(self, written: list[Example], parsed: list[Example]) -> None:
        if self.first_mismatch is None and len(parsed) == len(written):
            for i, (ex, back) in enumerate(zip(written, parsed)):
                # alpaca has no separate system text: an example without one reads back with the instruction
                expected = (
                    Example(ex.system or self.templates.instruction, ex.turns) if self.spec.name == "alpaca" else ex
                )
                if back != expected:
                    self.first_mismatch = self.written + i + 1
                    break
        self.written += len(written)
        self.parsed += len(parsed)

    def report(self, report: CheckReport) -> None:
        if not report.ok:
            return
        if self.parsed != self.written:
            report.error(f"{self.parsed} examples read back, {self.written} written")
        elif self.first_mismatch is not None:
            report.error(f"line {self.first_mismatch}: reads back as a different example")


def _plan_table(spec: FormatSpec, table: pd.DataFrame, sink: ExportSink | None) -> tuple[PlannedFile, CheckReport]:
    frame = table.rename(columns={"row_id": "id"})
    data = table_bytes(frame, spec.name)  # type: ignore[arg-type]
    name = spec.file_name("all")
    report = check_table(data, spec.name, frame, file=name)
    report.raise_if_failed()
    return _planned(name, spec, "all", [data], sink, len(frame)), report


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
