"""One rule for functions that take a settings object or, for convenience, its fields as keyword arguments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["settings_or_options"]

T = TypeVar("T")


def settings_or_options(
    cls: type[T],
    settings: T | None,
    options: Mapping[str, Any],
    *,
    caller: str,
    fields: Sequence[str],
    noun: str = "options",
) -> T:
    """``settings``, or ``cls(**options)`` when it is None.

    Args:
        cls: the settings dataclass.
        settings: the object the caller was given (None: build one from ``options``).
        options: the caller's keyword arguments named like ``cls``'s fields.
        caller: the function's name, quoted by the error (e.g. ``plan_export``).
        fields: the allowed names, as the error lists them.
        noun: what the keywords are called in the error (``options``, ``thresholds``).

    Raises:
        TypeError: both ``settings`` and ``options``, or a keyword that is not in ``fields``.
    """
    if settings is not None and options:
        raise TypeError(f"pass settings or keyword {noun}, not both (got {', '.join(sorted(options))})")
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise TypeError(f"{caller}() got unknown keyword arguments {unknown}; the fields are {fields}")
    return settings if settings is not None else cls(**options)
