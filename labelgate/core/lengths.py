"""Texts that are empty, too short or too long for the token budget.

- ``empty``: fewer than ``min_words`` words (runs of letters/digits). A text with no word at all
  (only punctuation, symbols or whitespace) scores 0 and is excluded by the auto gate; a text that is
  merely short scores ``words / min_words`` and is kept for review.
- ``too_long``: more tokens than ``max_tokens`` by the offline token counter of
  :mod:`labelgate.core.tokens` (an estimate; the embedding model also truncates long texts, so the
  label detector saw only their beginning). Score ``max_tokens / tokens``.

Only flagged rows are returned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from labelgate.core.issues import issue_rows

_WORD = re.compile(r"\w+", re.UNICODE)


def word_count(text: str | None) -> int:
    """Number of runs of letters/digits in ``text``."""
    return len(_WORD.findall(text)) if isinstance(text, str) else 0


def length_issues(
    row_ids: Sequence[str],
    texts: Sequence[str],
    *,
    min_words: int = 2,
    max_tokens: int | None = 512,
    token_counts: Sequence[int] | None = None,
    counter_name: str = "tokens",
) -> pd.DataFrame:
    """``empty`` and ``too_long`` issue rows (long format, flagged rows only).

    Args:
        min_words: a text with fewer words is flagged ``empty`` (0 words: empty; else too short).
        max_tokens: token budget; ``None`` switches the ``too_long`` check off.
        token_counts: the token count of each text (needed when ``max_tokens`` is set).
        counter_name: the tokenizer's name, quoted in reasons.
    """
    if max_tokens is not None and (token_counts is None or len(token_counts) != len(texts)):
        raise ValueError("length_issues needs one token count per text when max_tokens is set")
    records = []
    for i, (rid, text) in enumerate(zip(row_ids, texts)):
        words = word_count(text)
        if words < min_words:
            records.append(
                {
                    "row_id": str(rid),
                    "issue_type": "empty",
                    "score": words / min_words,
                    "reason": "empty: no words, only punctuation, symbols or whitespace"
                    if words == 0
                    else f"too short: {words} word{'s' if words != 1 else ''} (< {min_words})",
                }
            )
        if max_tokens is not None and token_counts[i] > max_tokens:
            records.append(
                {
                    "row_id": str(rid),
                    "issue_type": "too_long",
                    "score": max_tokens / token_counts[i],
                    "reason": f"too long: {token_counts[i]} tokens > budget {max_tokens} ({counter_name})",
                }
            )
    return issue_rows(records)
