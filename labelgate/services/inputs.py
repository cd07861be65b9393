"""Reading an input or a held-out test file with a run's settings (the ingest task, the export and the evaluation)."""

from __future__ import annotations

from labelgate.config import CurateParams
from labelgate.core.ingest import IngestResult
from labelgate.readers import read_dataset


def read_input(
    path: str, params: CurateParams, *, annotator_col: str | None = None, label_col: str | None = None
) -> IngestResult:
    """Read ``path`` with the run's format, column, encoding and label settings (input and test files alike).

    ``annotator_col``: the long format's annotator column (the input file only; a test file has one label per row).
    ``label_col``: the label column to read (default: the run's first label column).
    """
    return read_dataset(
        path,
        fmt=params.input_format,
        text_col=params.text_col,
        label_col=label_col or params.label_columns[0],
        id_col=params.id_col,
        encoding=params.encoding,
        delimiter=params.delimiter,
        label_case=params.label_case,
        annotator_col=annotator_col,
    )
