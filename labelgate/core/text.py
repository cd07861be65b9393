"""Text keys shared by duplicate detection, leakage detection and the export's leak exclusion.

One normalisation for all of them: a row the duplicate finder calls an exact twin of a test row is the row
the export leaves out as a leak.
"""

from __future__ import annotations

import hashlib

__all__ = ["normalise_text", "text_key"]


def normalise_text(text: str | None) -> str:
    """Case-folded text with runs of whitespace collapsed to one space and the ends trimmed (non-text: ``""``)."""
    return " ".join(text.casefold().split()) if isinstance(text, str) else ""


def text_key(text: str | None) -> str:
    """sha256 hex of :func:`normalise_text` (the key of exact duplicates and exact leaks)."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()
