"""Exception types raised by labelgate.

Every error a user can cause derives from :class:`LabelgateError` and carries a
one-line message that names the offending value and, where there is one, the fix.
The CLI and the flow edge print ``str(err)`` and exit non-zero; they never show a
traceback for these.
"""

from __future__ import annotations


class LabelgateError(Exception):
    """Base class of every error labelgate reports to a user."""

    #: process exit code used by the CLI for this error type
    exit_code: int = 2


class InputError(LabelgateError):
    """The input file cannot be read or parsed (missing file, bad encoding, bad format)."""


class MissingColumnError(InputError):
    """A required column is absent from the input."""

    def __init__(self, column: str, role: str, found: list[str], *, option: str) -> None:
        self.column = column
        self.found = list(found)
        shown = ", ".join(repr(c) for c in found[:20]) or "(none)"
        if len(found) > 20:
            shown += f", … ({len(found)} columns)"
        super().__init__(
            f"{role} column {column!r} not found; columns found: {shown}. Pass {option} NAME to choose another column."
        )


class ValidationError(LabelgateError):
    """A table-level data check failed (too few classes, too few rows, …): the run stops."""


class ConfigError(LabelgateError):
    """A parameter has a value labelgate cannot use."""


class ModelLoadError(LabelgateError):
    """The embedding model cannot be loaded (not installed, not found offline, …)."""


class DatabaseBusyError(LabelgateError):
    """The DuckDB file is held by another process for longer than the wait allowed."""

    exit_code = 3


class RunNotFoundError(LabelgateError):
    """No run matches the requested run id (or the database holds no run yet)."""


class ExportError(LabelgateError):
    """An export file failed its checks or could not be written."""


class QualityGateError(LabelgateError):
    """An unattended run was stopped by a quality-gate limit; nothing was exported."""

    exit_code = 4
