"""Checks of a written fine-tuning file, in the spirit of OpenAI's chat fine-tuning data-preparation cookbook.

:func:`check_jsonl` (or :class:`JsonlChecker`, chunk by chunk) reads the file's bytes line by line as a
provider's upload check would: UTF-8, one JSON object per line, the format's schema
(:mod:`labelgate.core.formats`: structure and roles, missing or empty content, unknown keys, assistant last), then
the minimum example count, per-example token counts against a limit, class balance and a cost/epoch estimate.
Schema and limit violations are **errors** (the export stops and the message names the file and line); the rest
are **warnings** kept in the report.

Token counts come from :mod:`labelgate.core.tokens` and are estimates.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from labelgate.core.formats import TABLE_COLUMNS, Example, FormatSpec, FormatViolation, Templates, read_table_bytes
from labelgate.core.tokens import CachedCounter, chat_tokens
from labelgate.errors import ExportError

#: at most this many errors are listed per file
MAX_ERRORS = 20

# OpenAI's default-epochs rule from the data-preparation cookbook
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

#: a warning when the largest class has more than this many times the examples of the smallest
IMBALANCE_RATIO = 10.0
#: a warning when a class has fewer training examples than this
MIN_CLASS_EXAMPLES = 5


@dataclass
class CheckReport:
    """What the checks found in one file.

    Attributes:
        file: file name; format; split: ``train``, ``val`` or ``all``.
        errors: ``"line N: …"`` messages (at most :data:`MAX_ERRORS`; ``n_errors`` counts all).
        warnings: sentences for the report (without the file name).
        stats: figures (examples, token distribution, class counts, cost estimate…).
    """

    file: str
    format: str
    split: str
    errors: list[str] = field(default_factory=list)
    n_errors: int = 0
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.n_errors == 0

    def error(self, message: str) -> None:
        self.n_errors += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def raise_if_failed(self) -> None:
        """Raise :class:`ExportError` naming the file and the first failing lines."""
        if self.ok:
            return
        shown = "; ".join(self.errors[:3])
        more = f" (and {self.n_errors - 3} more)" if self.n_errors > 3 else ""
        raise ExportError(f"{self.file} failed the {self.format} checks: {shown}{more}")


def _messages(ex: Example) -> list[tuple[str, str]]:
    return ([("system", ex.system)] if ex.system else []) + list(ex.turns)


def counted_strings(ex: Example, spec: FormatSpec) -> list[str]:
    """Every string :func:`example_tokens` counts for ``ex`` (with the roles of a chat format)."""
    if spec.chat:
        return [s for pair in _messages(ex) for s in pair]
    return [t for _, t in _messages(ex)]


def example_tokens(ex: Example, spec: FormatSpec, counter: CachedCounter) -> tuple[int, int]:
    """``(tokens of the whole example, tokens of the assistant answers)`` of one example."""
    answers = [t for r, t in ex.turns if r == "assistant"]
    assistant = sum(counter.count_many(answers))
    if spec.chat:
        return chat_tokens(counter, _messages(ex)), assistant
    return sum(counter.count_many(counted_strings(ex, spec))), assistant


def default_epochs(n_examples: int) -> int:
    """The number of epochs OpenAI picks by default for ``n_examples`` training examples (cookbook rule)."""
    if n_examples <= 0:
        return 0
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


def cost_estimate(
    token_counts: Sequence[int], *, max_tokens: int | None, price_per_mtok: float | None
) -> dict[str, Any]:
    """Billing tokens per epoch (each example capped at ``max_tokens``), default epochs, total and cost."""
    counts = np.asarray(token_counts, dtype=np.int64)
    cap = max_tokens or (int(counts.max()) if len(counts) else 0)
    per_epoch = int(np.minimum(counts, cap).sum())
    epochs = default_epochs(len(counts))
    out: dict[str, Any] = {
        "billing_tokens_per_epoch": per_epoch,
        "default_epochs": epochs,
        "training_tokens": per_epoch * epochs,
    }
    if price_per_mtok is not None:
        out["price_per_mtok"] = price_per_mtok
        out["estimated_cost"] = round(per_epoch * epochs * price_per_mtok / 1e6, 4)
    return out


def _distribution(values: Sequence[int]) -> dict[str, float | int]:
    if len(values) == 0:
        return {}
    a = np.asarray(values)
    return {
        "min": int(a.min()),
        "max": int(a.max()),
        "mean": round(float(a.mean()), 1),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "total": int(a.sum()),
    }


def check_jsonl(
    data: bytes,
    spec: FormatSpec,
    templates: Templates,
    *,
    file: str,
    split: str,
    counter: CachedCounter,
    max_tokens: int | None = None,
    min_examples: int | None = None,
    price_per_mtok: float | None = None,
) -> tuple[CheckReport, list[Example]]:
    """Check one JSONL file of format ``spec``; return the report and the parsed examples.

    The whole file in one piece: :class:`JsonlChecker` with one :meth:`~JsonlChecker.feed` (which is what the
    export does chunk by chunk, so its files are never held whole).

    Args:
        max_tokens: per-example token limit (None: the format's documented one).
        min_examples: minimum number of examples of a training file (None: the format's documented one;
            0 disables the check). Validation files have no minimum.
        price_per_mtok: price of a million training tokens, for the cost estimate (None: no cost).
    """
    checker = JsonlChecker(
        spec,
        templates,
        file=file,
        split=split,
        counter=counter,
        max_tokens=max_tokens,
        min_examples=min_examples,
        price_per_mtok=price_per_mtok,
    )
    examples = checker.feed(data)
    return checker.finish(), examples


class JsonlChecker:
    """The checks of :func:`check_jsonl` on a file read in chunks of whole lines; the same report at the end.

    What is kept between chunks grows by a few dozen bytes per example (two token counts, a 16-byte digest of the
    user text for the repeat count), not by the examples or the bytes: a file of a million examples is checked
    in the memory of one chunk. Usage::

        checker = JsonlChecker(spec, templates, file="train.openai-chat.jsonl", split="train", counter=counter)
        for chunk in chunks:            # bytes, each ending at a line end (the last may lack the newline)
            examples = checker.feed(chunk)
        report = checker.finish()

    The report's errors list the parse errors first, then the too-few-examples error, then the over-limit
    errors, each in line order (as :func:`check_jsonl` always did); a file that is not valid UTF-8 counts no
    examples at all.
    """

    def __init__(
        self,
        spec: FormatSpec,
        templates: Templates,
        *,
        file: str,
        split: str,
        counter: CachedCounter,
        max_tokens: int | None = None,
        min_examples: int | None = None,
        price_per_mtok: float | None = None,
    ) -> None:
        if spec.parse is None:
            raise ValueError(f"format {spec.name!r} is not a JSONL format")
        self.spec, self.templates, self.counter = spec, templates, counter
        self.file, self.split, self.price_per_mtok = file, split, price_per_mtok
        self.limit = spec.max_tokens if max_tokens is None else max_tokens
        self.minimum = spec.min_examples if min_examples is None else min_examples
        self._parse_errors = CheckReport(file=file, format=spec.name, split=split)
        self._limit_errors = CheckReport(file=file, format=spec.name, split=split)
        self._lines = 0  # lines read so far
        self._unreadable = False
        self._reset_figures()

    def _reset_figures(self) -> None:
        self._totals = array("q")
        self._answers = array("q")
        self._first_over: int | None = None  # the first line over the token limit
        self._n_over = 0
        self._labels: Counter[str] = Counter()
        self._missing_system = 0
        self._answer_ids: dict[str, int] = {}
        self._user_answer: dict[bytes, int] = {}  # digest of a user text -> its answer's id, -1 once they differ
        self._conflicting = 0

    def feed(self, data: bytes) -> list[Example]:
        """Parse and check the next lines; return their examples (lines that fail to parse are left out).

        ``data`` holds whole lines: every chunk but the last ends with a newline.
        """
        if self._unreadable:
            return []
        first = self._lines
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = first + data[: err.start].count(b"\n") + 1
            self._parse_errors.error(f"line {line}: not valid UTF-8")
            self._unreadable = True
            self._reset_figures()
            return []
        if text and not text.endswith("\n"):
            text += "\n"
        parsed: list[tuple[int, Example]] = []
        for n, line in enumerate(text.split("\n")[:-1], first + 1):
            self._lines = n
            if not line.strip():
                self._parse_errors.error(f"line {n}: empty line")
                continue
            try:
                obj = json.loads(line)
            except ValueError as err:
                self._parse_errors.error(f"line {n}: not valid JSON ({err.msg})")
                continue
            try:
                parsed.append((n, self.spec.parse(obj, self.templates)))  # type: ignore[misc]
            except FormatViolation as err:
                self._parse_errors.error(f"line {n}: {err}")
        self._count(parsed)
        return [ex for _, ex in parsed]

    def _count(self, parsed: list[tuple[int, Example]]) -> None:
        spec, counter, limit = self.spec, self.counter, self.limit
        # every distinct string of the chunk counted in one call (the counter caches them): one call per example
        # costs more than the counting at a hundred thousand examples
        counter.count_many(s for _, ex in parsed for s in counted_strings(ex, spec))
        for line, ex in parsed:
            total, assistant = example_tokens(ex, spec, counter)
            self._totals.append(total)
            self._answers.append(assistant)
            if limit is not None and total > limit:
                self._n_over += 1
                if self._first_over is None:
                    self._first_over = line
                if spec.over_limit == "error":
                    self._limit_errors.error(f"line {line}: about {total} tokens, over the limit of {limit}")
            answer = ex.assistant
            self._labels[answer] += 1
            if not ex.system:
                self._missing_system += 1
            aid = self._answer_ids.setdefault(answer, len(self._answer_ids))
            key = hashlib.blake2b(ex.user.encode("utf-8"), digest_size=16).digest()
            seen = self._user_answer.setdefault(key, aid)
            if seen != aid and seen != -1:
                self._user_answer[key] = -1
                self._conflicting += 1

    def finish(self) -> CheckReport:
        """The file's report (:class:`CheckReport`); call once, after the last chunk."""
        spec, split, limit = self.spec, self.split, self.limit
        report = CheckReport(file=self.file, format=spec.name, split=split)
        n = len(self._totals)
        errors = [*self._parse_errors.errors]
        n_errors = self._parse_errors.n_errors
        if split == "train" and n < self.minimum:
            errors.append(f"{n} examples; {spec.provider} needs at least {self.minimum}")
            n_errors += 1
        elif split == "train" and n < spec.recommended_examples:
            report.warnings.append(f"{n} examples; {spec.provider} recommends at least {spec.recommended_examples}")
        if split == "val" and spec.max_val_examples is not None and n > spec.max_val_examples:
            report.warnings.append(f"{n} validation examples; {spec.provider} uses at most {spec.max_val_examples}")
        errors += self._limit_errors.errors
        report.errors = errors[:MAX_ERRORS]
        report.n_errors = n_errors + self._limit_errors.n_errors
        if self._n_over and spec.over_limit == "warning":
            report.warnings.append(
                f"{self._n_over} examples exceed about {limit} tokens (e.g. line {self._first_over}) and would be "
                "truncated"
            )
        report.warnings += balance_warnings(self._labels, split=split)
        dupes = n - len(self._user_answer)
        if dupes:
            note = f"; {self._conflicting} such texts have different answers" if self._conflicting else ""
            report.warnings.append(f"{dupes} examples repeat the user text of another example{note}")
        totals = np.frombuffer(self._totals, dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
        answers = np.frombuffer(self._answers, dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
        report.stats = {
            "examples": n,
            "missing_system": self._missing_system,
            "tokens_per_example": _distribution(totals),
            "assistant_tokens_per_example": _distribution(answers),
            "token_limit": limit,
            "over_token_limit": self._n_over,
            "classes": dict(sorted(self._labels.items())),
        }
        if split == "train":
            report.stats["cost"] = cost_estimate(totals, max_tokens=limit, price_per_mtok=self.price_per_mtok)
        return report


def balance_warnings(labels: Counter[str], *, split: str) -> list[str]:
    """Class-balance warnings for one file's answer counts."""
    if len(labels) < 2:
        return [f"a single answer ({next(iter(labels), 'none')!r}) in every example"] if labels else []
    most, least = labels.most_common()[0], labels.most_common()[-1]
    out = []
    if most[1] > IMBALANCE_RATIO * least[1]:
        out.append(
            f"class imbalance: {most[0]!r} has {most[1]} examples, {least[0]!r} only {least[1]} "
            f"(ratio {most[1] / least[1]:.0f}:1)"
        )
    if split == "train":
        small = sorted(k for k, v in labels.items() if v < MIN_CLASS_EXAMPLES)
        if small:
            out.append(f"fewer than {MIN_CLASS_EXAMPLES} examples of {', '.join(map(repr, small[:5]))}")
    return out


def check_table(data: bytes, fmt: str, expected: pd.DataFrame, *, file: str) -> CheckReport:
    """Read the cleaned table back and compare it with ``expected`` (columns :data:`TABLE_COLUMNS`)."""
    report = CheckReport(file=file, format=fmt, split="all")
    try:
        back = read_table_bytes(data, fmt)  # type: ignore[arg-type]
    except Exception as err:
        report.error(f"cannot be read back: {type(err).__name__}: {err}")
        return report
    missing = [c for c in TABLE_COLUMNS if c not in back.columns]
    if missing:
        report.error(f"missing column {missing[0]!r}")
        return report
    if len(back) != len(expected):
        report.error(f"{len(back)} rows read back, {len(expected)} written")
        return report
    exp = expected[TABLE_COLUMNS].reset_index(drop=True).astype(object)
    exp = exp.where(exp.notna(), None)
    for col in TABLE_COLUMNS:
        diff = [i for i, (a, b) in enumerate(zip(back[col], exp[col])) if a != b]
        if diff:
            report.error(f"row {diff[0] + 1}: column {col!r} reads back as {back[col][diff[0]]!r}")
    kept = exp[exp["action"] != "exclude"]
    report.stats = {
        "rows": len(exp),
        "kept": len(kept),
        "excluded": int((exp["action"] == "exclude").sum()),
        "classes": {str(k): int(v) for k, v in kept["label"].value_counts().sort_index().items()},
    }
    return report
