"""Reading an input or a held-out test file with a run's settings (the ingest task, the export and the evaluation)."""

from __future__ import annotations

from labelgate.core.ingest import IngestResult, IngestSettings
from labelgate.readers import read_dataset


def read_input(
    path: str, settings: IngestSettings, *, annotator_col: str | None = None, label_col: str | None = None
) -> IngestResult:
    """Read ``path`` with the run's format, column, encoding and label settings (input and test files alike).

    ``settings``: the run's :class:`~labelgate.core.ingest.IngestSettings` (``CurateParams.ingest_settings()``).
    ``annotator_col``: the long format's annotator column, read only when passed (the input file only; a test file
    has one label per row).
    ``label_col``: the label column to read (default: the run's first label column).
    """
    return read_dataset(path, settings=settings.for_file(label_col=label_col, annotator_col=annotator_col))
