"""How an input (or held-out test) file is read: :class:`IngestSettings`, the ingest layer's settings object.

Kept apart from :mod:`labelgate.core.ingest` (which parses with pandas) so that the pre-flight check of
``labelgate run`` (:mod:`labelgate.preflight`) can take the same typed settings without importing pandas.
:mod:`labelgate.core.ingest` re-exports every name here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from labelgate.errors import SettingsError

#: allowed values of :attr:`IngestSettings.fmt`
INPUT_FORMATS = ("auto", "csv", "tsv", "jsonl", "chat-jsonl", "parquet")
#: allowed values of :attr:`IngestSettings.label_case`
LABEL_CASES = ("keep", "lower")


@dataclass(frozen=True)
class IngestSettings:
    """How to read an input (or held-out test) file: :func:`labelgate.core.ingest.parse_dataset`,
    :func:`labelgate.readers.read_dataset` and the pre-flight check :func:`labelgate.preflight.check_run_input`.

    :meth:`labelgate.config.CurateParams.ingest_settings` builds them from the flow parameters (``fmt`` is the
    parameter ``input_format``).

    Attributes:
        fmt: one of :data:`INPUT_FORMATS` (``auto`` decides by extension and content).
        text_col / label_col: the column or JSON key of the text and the label (unused for chat JSONL). From the
            flow parameters ``label_col`` may name several columns, comma-separated (the wide multi-annotator
            format, :attr:`label_columns`); a file is always read with one of them (``for_file``).
        id_col: the column holding row ids; ``None`` uses a column named ``id`` when there is one, else a content
            hash of (text, label) with a ``~N`` suffix for repeats.
        encoding: text encoding of CSV/TSV/JSONL (a UTF-8 byte-order mark is always skipped).
        delimiter: CSV delimiter, one character (``None``: ``,``; tab for TSV).
        label_case: one of :data:`LABEL_CASES` (``lower`` folds label case after trimming).
        annotator_col: multi-annotator long format: the column naming who gave each label (one record per
            label); the input file only (a test file has one label per row).

    Raises:
        SettingsError: (also a ValueError) an unknown format or label case, or a delimiter of another length
            than one; the message names the field and quotes the value.
    """

    fmt: str = "auto"
    text_col: str = "text"
    label_col: str = "label"
    id_col: str | None = None
    encoding: str = "utf-8"
    delimiter: str | None = None
    label_case: str = "keep"
    annotator_col: str | None = None

    def __post_init__(self) -> None:
        if self.fmt not in INPUT_FORMATS:
            raise SettingsError(f"unknown input format {self.fmt!r}; use {', '.join(INPUT_FORMATS)}")
        if self.label_case not in LABEL_CASES:
            raise SettingsError(f"label_case must be 'keep' or 'lower', got {self.label_case!r}")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise SettingsError(f"delimiter must be one character, got {self.delimiter!r}")

    @property
    def label_columns(self) -> list[str]:
        """The label column(s): several in the wide multi-annotator format (``label_col="a,b,c"``)."""
        return [c.strip() for c in self.label_col.split(",") if c.strip()] or [self.label_col]

    def for_file(self, *, label_col: str | None = None, annotator_col: str | None = None) -> IngestSettings:
        """The settings one file is read with: one label column (``label_col``, default the first of
        :attr:`label_columns`) and ``annotator_col`` (default none: pass the run's for the long-format input)."""
        return replace(self, label_col=label_col or self.label_columns[0], annotator_col=annotator_col)
