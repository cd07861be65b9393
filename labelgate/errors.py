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


class SettingsError(ConfigError, ValueError):
    """A settings object of a layer (``GateSettings``, ``ExportSettings``, ``IngestSettings``, ``DetectorSettings``,
    ``QualityLimits``) was given a value it cannot use; the message names the field and quotes the value.

    Also a :class:`ValueError`, as these checks were before the settings objects existed.
    """


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


class ReviewError(LabelgateError):
    """A review request names an unknown row, action or label, or the run cannot take it."""


class ReviewTimeoutError(LabelgateError):
    """Nobody finished the review before the human gate's timeout (``on_review_timeout='fail'``)."""

    exit_code = 4


class NotifyError(LabelgateError):
    """The webhook could not be reached or refused the message."""


class PreflightError(InputError):
    """Problems found before the run started, every one of them (``problems``), in one line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + " | ".join(problems))


class ClassPreflightError(PreflightError, ValidationError):
    """A file with fewer than 2 classes: a pre-flight problem and a table-level validation failure."""


class DeployError(LabelgateError):
    """A Prefect CLI step of ``labelgate deploy`` failed (the message quotes its last output line)."""


class FormatViolation(ValueError):
    """One fine-tuning example breaks its format's schema; the message says how (the caller adds the line).

    Not a user error by itself: the export checks turn it into a report line naming the file and line.
    """
