"""File checks: a bad line is named, token limits, minimum counts, class balance, the cost estimate."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.core.checks import (
    CheckReport,
    JsonlChecker,
    balance_warnings,
    check_jsonl,
    check_table,
    cost_estimate,
    default_epochs,
)
from labelgate.core.formats import get_format, make_templates, table_bytes, to_jsonl
from labelgate.core.tokens import CachedCounter
from labelgate.errors import ExportError
from labelgate.tokenizers import get_counter

pytestmark = pytest.mark.unit

TPL = make_templates(["neg", "pos"])
COUNTER = CachedCounter(get_counter())


def _file(fmt: str, n: int = 12) -> bytes:
    spec = get_format(fmt)
    exs = [
        TPL.example(f"review number {i} was {'good' if i % 2 else 'bad'}", "pos" if i % 2 else "neg") for i in range(n)
    ]
    return to_jsonl(spec.record(ex, TPL) for ex in exs)[0]  # type: ignore[misc]


def _check(data: bytes, fmt: str = "openai-chat", split: str = "train", **kw) -> CheckReport:
    report, _ = check_jsonl(data, get_format(fmt), TPL, file=f"{split}.{fmt}.jsonl", split=split, counter=COUNTER, **kw)
    return report


@pytest.mark.parametrize(
    "fmt", ["openai-chat", "openai-completion", "hf-messages", "alpaca", "vertex-gemini", "bedrock-claude"]
)
def test_a_good_file_passes_and_is_described(fmt: str) -> None:
    report = _check(_file(fmt), fmt=fmt)
    assert report.ok, report.errors
    assert report.stats["examples"] == 12
    assert report.stats["classes"] == {"neg": 6, "pos": 6}
    assert report.stats["tokens_per_example"]["min"] > 0
    assert report.stats["cost"]["default_epochs"] == 8  # 12 examples: 100 // 12 by OpenAI's rule


def test_a_bad_example_is_refused_with_its_line_named() -> None:
    lines = _file("openai-chat").decode().splitlines()
    bad = json.loads(lines[2])
    bad["messages"][2]["content"] = ""  # empty assistant answer on line 3
    lines[2] = json.dumps(bad)
    lines[6] = lines[6][:-5]  # broken JSON on line 7
    report = _check(("\n".join(lines) + "\n").encode())
    assert not report.ok
    assert report.errors[0] == "line 3: message 3: content is empty"
    assert report.errors[1].startswith("line 7: not valid JSON")
    with pytest.raises(ExportError, match=r"train.openai-chat.jsonl failed the openai-chat checks: line 3: .*line 7"):
        report.raise_if_failed()


def test_a_file_of_another_format_is_refused() -> None:
    report = _check(_file("bedrock-claude"), fmt="openai-chat")
    assert report.n_errors == 13 and report.errors[0].startswith("line 1: unknown key 'system'")
    assert report.errors[-1] == "0 examples; OpenAI fine-tuning (chat models) needs at least 10"


def test_undecodable_and_blank_lines_are_errors() -> None:
    data = _file("bedrock-claude")
    report = _check(data.replace(b"\n", b"\n\n", 1), fmt="bedrock-claude")
    assert report.errors == ["line 2: empty line"]
    report = _check(data + b'{"messages": "\xff"}\n', fmt="bedrock-claude")
    assert report.errors == ["line 13: not valid UTF-8"]


def test_too_few_training_examples_is_an_error_where_the_provider_requires_a_minimum() -> None:
    report = _check(_file("openai-chat", n=6))
    assert report.errors == ["6 examples; OpenAI fine-tuning (chat models) needs at least 10"]
    assert _check(_file("openai-chat", n=6), min_examples=0).ok
    assert _check(_file("openai-chat", n=6), split="val").ok  # validation files have no minimum
    report = _check(_file("vertex-gemini", n=6), fmt="vertex-gemini")
    assert report.ok and any("recommends at least 100" in w for w in report.warnings)


def test_examples_over_the_token_limit() -> None:
    report = _check(_file("openai-chat"), max_tokens=30)
    assert not report.ok and report.errors[0].startswith("line 1: about ")
    assert report.errors[0].endswith("tokens, over the limit of 30")
    report = _check(_file("hf-messages"), fmt="hf-messages", max_tokens=30)  # local training truncates: a warning
    assert report.ok and report.stats["over_token_limit"] == 12
    assert "12 examples exceed about 30 tokens (e.g. line 1)" in report.warnings[0]


def test_class_balance_and_repeated_texts_are_warned_about() -> None:
    assert balance_warnings(Counter({"a": 100, "b": 5}), split="train") == [
        "class imbalance: 'a' has 100 examples, 'b' only 5 (ratio 20:1)"
    ]
    assert balance_warnings(Counter({"a": 10, "b": 3}), split="train") == ["fewer than 5 examples of 'b'"]
    assert balance_warnings(Counter({"a": 10, "b": 3}), split="val") == []
    assert balance_warnings(Counter({"a": 3}), split="val") == ["a single answer ('a') in every example"]
    spec = get_format("alpaca")
    exs = [TPL.example("same text", "pos"), TPL.example("same text", "neg"), TPL.example("other", "neg")]
    data = to_jsonl(spec.record(ex, TPL) for ex in exs)[0]  # type: ignore[misc]
    report = _check(data, fmt="alpaca", min_examples=0)
    assert "1 examples repeat the user text of another example; 1 such texts have different answers" in report.warnings


def test_cost_estimate_follows_the_cookbook() -> None:
    assert [default_epochs(n) for n in (0, 10, 40, 1000, 9000, 30000)] == [0, 10, 3, 3, 2, 1]
    est = cost_estimate([100, 200, 50_000], max_tokens=16_385, price_per_mtok=8.0)
    assert est["billing_tokens_per_epoch"] == 100 + 200 + 16_385
    assert est["default_epochs"] == 25
    assert est["training_tokens"] == 25 * 16_685
    assert est["estimated_cost"] == round(25 * 16_685 * 8.0 / 1e6, 4)
    assert "estimated_cost" not in cost_estimate([10], max_tokens=None, price_per_mtok=None)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tables_are_read_back(fmt: str) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "id": ["1", "2"],
            "text": ['a "quoted", multi\nline text', "NA"],
            "label": ["pos", None],
            "original_label": ["neg", "neg"],
            "action": ["relabel", "exclude"],
            "source": ["policy", "leakage"],
            "split": ["train", "excluded"],
        }
    )
    report = check_table(table_bytes(frame, fmt), fmt, frame, file=f"cleaned.{fmt}")  # type: ignore[arg-type]
    assert report.ok, report.errors
    assert report.stats == {"rows": 2, "kept": 1, "excluded": 1, "classes": {"pos": 1}}
    broken = check_table(table_bytes(frame.drop(columns=["split"]).assign(split="x"), fmt), fmt, frame, file="t")  # type: ignore[arg-type]
    assert broken.errors == ["row 1: column 'split' reads back as 'x'"]


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.text(min_size=1, max_size=40).filter(str.strip), min_size=1, max_size=5))
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_any_text_survives_the_table_round_trip(fmt: str, texts: list[str]) -> None:
    import pandas as pd

    n = len(texts)
    frame = pd.DataFrame(
        {
            "id": [str(i) for i in range(n)],
            "text": texts,
            "label": ["a"] * n,
            "original_label": ["b"] * n,
            "action": ["relabel"] * n,
            "source": [None] * n,
            "split": ["train"] * n,
        }
    )
    report = check_table(table_bytes(frame, fmt), fmt, frame, file=f"cleaned.{fmt}")  # type: ignore[arg-type]
    assert report.ok, report.errors


class _CountingCounter:
    """A tokenizer that counts characters and records how it was called."""

    name = "chars"
    description = "characters"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def count_many(self, texts):
        texts = list(texts)
        self.calls.append(len(texts))
        return [len(t) for t in texts]


def test_every_distinct_string_of_a_file_is_counted_in_one_call() -> None:
    """A file's strings go to the tokenizer in one batch, each distinct one once (a call per example cost more than
    the counting on large files), and the counts are those of counting each example on its own."""
    inner = _CountingCounter()
    report, examples = check_jsonl(
        _file("openai-chat", n=40),
        get_format("openai-chat"),
        TPL,
        file="t",
        split="train",
        counter=CachedCounter(inner),
    )
    assert inner.calls == [40 + 2 + 1 + 3]  # 40 distinct texts, 2 answers, 1 system prompt, 3 role names
    alone = CachedCounter(_CountingCounter())
    totals = [
        check_jsonl(
            to_jsonl([get_format("openai-chat").record(ex, TPL)])[0],
            get_format("openai-chat"),
            TPL,
            file="one",
            split="val",
            counter=alone,
        )[0].stats["tokens_per_example"]["max"]
        for ex in examples
    ]
    assert report.stats["tokens_per_example"]["max"] == max(totals)
    assert report.stats["tokens_per_example"]["min"] == min(totals)


def _awkward_file() -> bytes:
    """A training file with a bit of everything the checks count: bad lines, long lines, repeats, conflicts."""
    lines = _file("openai-chat", n=30).decode().splitlines(keepends=True)
    long = TPL.example("word " * 80, "pos")
    lines[5] = to_jsonl([get_format("openai-chat").record(long, TPL)])[0].decode()  # type: ignore[misc]
    lines[3] = "{not json\n"
    lines[8] = "\n"
    lines[11] = lines[1].replace('"pos"', '"neg"')  # the text of line 2 with the other answer
    lines[12] = lines[2]  # an exact repeat
    lines[20] = lines[5]  # another long one
    return "".join(lines).encode()


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=30), max_size=8))
def test_a_file_checked_in_chunks_gets_the_report_of_the_whole_file(cuts: list[int]) -> None:
    """:class:`JsonlChecker` fed the lines in any chunks (empty ones too) reports what the whole file's check does:
    the same errors in the same order, warnings, token figures and repeat counts."""
    data = _awkward_file()
    lines = data.splitlines(keepends=True)
    bounds = [0, *sorted(cuts), len(lines)]
    options = {"max_tokens": 40, "min_examples": 100}
    whole, whole_examples = check_jsonl(
        data, get_format("openai-chat"), TPL, file="f", split="train", counter=COUNTER, **options
    )
    checker = JsonlChecker(get_format("openai-chat"), TPL, file="f", split="train", counter=COUNTER, **options)
    examples = [ex for a, b in itertools.pairwise(bounds) for ex in checker.feed(b"".join(lines[a:b]))]
    report = checker.finish()
    assert report.as_dict() == whole.as_dict()
    assert examples == whole_examples
    # what the file holds, so that the comparison above compares something
    assert whole.errors[:3] == [
        "line 4: not valid JSON (Expecting property name enclosed in double quotes)",
        "line 9: empty line",
        "28 examples; OpenAI fine-tuning (chat models) needs at least 100",
    ]
    assert whole.n_errors == 5 and whole.errors[3].startswith("line 6: about")
    assert "3 examples repeat the user text of another example; 1 such texts have different answers" in whole.warnings


def test_a_file_that_is_not_utf8_counts_no_examples_wherever_it_breaks() -> None:
    data = _file("openai-chat", n=12)
    lines = data.splitlines(keepends=True)
    lines[7] = lines[7].replace(b"review", b"r\xffview")
    checker = JsonlChecker(get_format("openai-chat"), TPL, file="f", split="train", counter=COUNTER)
    for line in lines:
        checker.feed(line)
    report = checker.finish()
    assert report.errors == [
        "line 8: not valid UTF-8",
        "0 examples; OpenAI fine-tuning (chat models) needs at least 10",
    ]
    assert report.as_dict() == {**_check(b"".join(lines)).as_dict(), "file": "f"}
