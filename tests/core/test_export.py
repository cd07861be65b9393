"""Decisions, leakage exclusion, the split and the planned (checked) files of every format."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from labelgate.core.export import (
    FORMATS,
    apply_decisions,
    decision_summary,
    exclude_leakage,
    normalise_text,
    plan_export,
    stratified_split,
    text_fingerprints,
)
from labelgate.core.formats import Example, get_format, read_table_bytes
from labelgate.errors import ConfigError, ExportError
from labelgate.tokenizers import get_counter

pytestmark = pytest.mark.unit


def _rows(n: int = 40) -> pd.DataFrame:
    labels = ["pos", "neg", "neutral", "pos"]
    return pd.DataFrame(
        {
            "row_id": [f"r{i:03d}" for i in range(n)],
            "text": [f"text number {i}" for i in range(n)],
            "label": [labels[i % 4] for i in range(n)],
        }
    )


def test_apply_decisions() -> None:
    rows = _rows(4)
    decisions = pd.DataFrame(
        {
            "row_id": ["r000", "r001"],
            "action": ["relabel", "exclude"],
            "label": ["neg", None],
            "source": ["human", "policy"],
        }
    )
    out = apply_decisions(rows, decisions)
    assert out["label"].tolist() == ["neg", None, "neutral", "pos"]
    assert out["action"].tolist() == ["relabel", "exclude", "keep", "keep"]
    assert out["source"].tolist() == ["human", "policy", None, None]
    with pytest.raises(ExportError, match="not valid rows"):
        apply_decisions(rows, decisions.assign(row_id=["zzz", "r001"]))
    with pytest.raises(ExportError, match="has no label"):
        apply_decisions(rows, decisions.assign(label=[None, None]))


def test_leaked_rows_are_excluded_whatever_the_decisions() -> None:
    rows = _rows(6)
    rows.loc[2, "text"] = "Same  TEXT as a test row "
    decisions = pd.DataFrame(
        {
            "row_id": ["r001", "r002"],
            "action": ["relabel", "keep"],
            "label": ["pos", None],
            "source": ["human", "human"],
        }
    )
    cleaned = apply_decisions(rows, decisions)
    test = text_fingerprints(["same text as a TEST row", "text number 4"])
    out, counts = exclude_leakage(cleaned, flagged=["r001", "not-a-row"], test_fingerprints=test)
    assert out.loc[out["action"] == "exclude", "row_id"].tolist() == ["r001", "r002", "r004"]
    assert set(out.loc[out["action"] == "exclude", "source"]) == {"leakage"}
    assert out.loc[out["action"] == "exclude", "label"].isna().all()
    assert counts == {"leakage_flagged": 1, "leakage_text_match": 2, "leakage_excluded": 3}
    assert exclude_leakage(cleaned)[1]["leakage_excluded"] == 0
    assert normalise_text("  A\tb \n C ") == "a b c"


def test_split_is_stratified_seeded_and_order_independent() -> None:
    rows = _rows(200)
    a = stratified_split(rows["row_id"], rows["label"], val_fraction=0.1, seed=1)
    rev = rows.iloc[::-1]
    b = stratified_split(rev["row_id"], rev["label"], val_fraction=0.1, seed=1)
    assert set(rows["row_id"][a]) == set(rev["row_id"][b])
    assert rows[a]["label"].value_counts().to_dict() == {"pos": 10, "neg": 5, "neutral": 5}
    c = stratified_split(rows["row_id"], rows["label"], val_fraction=0.1, seed=2)
    assert set(rows["row_id"][a]) != set(rows["row_id"][c])
    assert not stratified_split(["x", "y"], ["a", "b"], val_fraction=0.5).any()  # one-row classes stay in train


def _cleaned() -> pd.DataFrame:
    rows = _rows(60)
    decisions = pd.DataFrame(
        {
            "row_id": ["r000", "r001"],
            "action": ["relabel", "exclude"],
            "label": ["neutral", None],
            "source": ["policy", "human"],
        }
    )
    return apply_decisions(rows, decisions)


def test_every_format_is_planned_checked_and_round_trips() -> None:
    cleaned = _cleaned()
    plan = plan_export(
        cleaned,
        formats=list(FORMATS),
        label_map={"pos": "Positive"},
        user_template="Text: {text}",
        counter=get_counter(),
    )
    names = [f.name for f in plan.files]
    assert names[:2] == ["train.openai-chat.jsonl", "val.openai-chat.jsonl"]
    assert {"cleaned.csv", "cleaned.parquet", "train.bedrock-claude.jsonl", "val.vertex-gemini.jsonl"} <= set(names)
    assert plan.counts == {
        "rows_valid": 60,
        "exported": 59,
        "exported_train": 53,
        "exported_val": 6,
        "excluded": 1,
        "relabelled": 1,
    }
    kept = cleaned[cleaned["action"] != "exclude"]
    expected = {(f"Text: {t}", "Positive" if lab == "pos" else lab) for t, lab in zip(kept["text"], kept["label"])}
    for f in plan.files:
        spec = get_format(f.format)
        if spec.kind == "table":
            back = read_table_bytes(f.data, f.format)  # type: ignore[arg-type]
            assert len(back) == 60 and back.loc[back["id"] == "r000", "label"].item() == "neutral"
            assert back["split"].value_counts().to_dict() == {"train": 53, "val": 6, "excluded": 1}
            continue
        examples = [spec.parse(json.loads(line), plan.templates) for line in f.data.decode().splitlines()]  # type: ignore[misc]
        assert len(examples) == f.lines == f.records
        assert {(ex.user, ex.assistant) for ex in examples} <= expected
        assert plan.reports[f.name].ok
    train = {ex for f in plan.files if f.name == "train.alpaca.jsonl" for ex in f.data.decode().splitlines()}
    val = {ex for f in plan.files if f.name == "val.alpaca.jsonl" for ex in f.data.decode().splitlines()}
    assert len(train) == 53 and len(val) == 6 and not train & val
    assert plan.tokenizer["name"] == "cl100k_base"
    other = plan_export(
        cleaned,
        formats=["hf-messages"],
        label_map={"pos": "Positive"},
        user_template="Text: {text}",
        counter=get_counter("wordpiece"),
    )
    assert other.tokenizer["name"] == "wordpiece-all-MiniLM-L6-v2"
    assert other.files[0].data == next(f.data for f in plan.files if f.name == "train.hf-messages.jsonl")


def test_a_bad_example_stops_the_plan_naming_file_and_line() -> None:
    cleaned = _cleaned()
    cleaned.loc[cleaned["row_id"] == "r005", "text"] = "a text holding the separator\n\n###\n\n inside"
    with pytest.raises(
        ExportError,
        match=r"train.openai-completion.jsonl failed the openai-completion checks: "
        r"line 4: the separator .* also appears inside the prompt",
    ):
        plan_export(cleaned, formats=["openai-chat", "openai-completion"])
    with pytest.raises(
        ExportError, match=r"train.openai-chat.jsonl failed .*line 1: about \d+ tokens, over the limit of 5"
    ):
        plan_export(cleaned, formats=["openai-chat"], max_example_tokens=5)
    with pytest.raises(ExportError, match=r"53 examples; OpenAI fine-tuning .* needs at least 100"):
        plan_export(cleaned, min_train_examples=100)
    with pytest.raises(ConfigError, match="unknown export format"):
        plan_export(cleaned, formats=["jsonl"])
    with pytest.raises(ExportError, match="no rows left"):
        plan_export(cleaned.assign(action="exclude"))


def test_warnings_are_grouped_across_formats() -> None:
    cleaned = _cleaned()
    plan = plan_export(cleaned, formats=["openai-chat", "alpaca"], val_fraction=0.0)
    assert [f.name for f in plan.files] == ["train.openai-chat.jsonl", "train.alpaca.jsonl"]
    assert plan.counts["exported_val"] == 0
    assert all(isinstance(w, str) for w in plan.warnings)
    plan = plan_export(cleaned.iloc[:12], formats=["vertex-gemini", "bedrock-claude"], min_train_examples=0)
    assert any(w.startswith("train (vertex-gemini): ") and "recommends at least 100" in w for w in plan.warnings)


def test_decision_summary_counts_by_action_and_source() -> None:
    cleaned, _ = exclude_leakage(_cleaned(), flagged=["r003"])
    assert decision_summary(cleaned) == {
        "by_action": {"exclude": 2, "keep": 57, "relabel": 1},
        "by_source": {
            "human": {"exclude": 1},
            "leakage": {"exclude": 1},
            "none": {"keep": 57},
            "policy": {"relabel": 1},
        },
    }


def test_example_helpers() -> None:
    ex = Example.single("", "q", "a")
    assert ex.system is None and ex.user == "q" and ex.assistant == "a"


def test_export_settings_plan_the_same_files_as_keyword_options() -> None:
    from labelgate.core.export import ExportSettings

    cleaned = _cleaned()
    options = {"formats": ["openai-chat", "alpaca"], "val_fraction": 0.2, "seed": 3, "label_map": {"pos": "P"}}
    by_keywords = plan_export(cleaned, **options)
    by_settings = plan_export(cleaned, settings=ExportSettings(**options))
    assert [(f.name, f.sha256) for f in by_settings.files] == [(f.name, f.sha256) for f in by_keywords.files]
    assert by_settings.counts == by_keywords.counts and by_settings.counts["exported_val"] > 6
    with pytest.raises(TypeError, match="not both"):
        plan_export(cleaned, settings=ExportSettings(), seed=1)
    with pytest.raises(TypeError, match="unknown keyword arguments \\['formts'\\]"):
        plan_export(cleaned, formts=["alpaca"])


class _Sink:
    """An ExportSink that keeps every chunk it is given, by file."""

    def __init__(self) -> None:
        self.chunks: dict[str, list[bytes]] = {}

    def write(self, name: str, data: bytes) -> None:
        assert name not in self.chunks or name == list(self.chunks)[-1], "files come one after the other"
        self.chunks.setdefault(name, []).append(data)


@pytest.mark.parametrize("chunk_rows", [1, 7, 53, 10_000])
def test_files_handed_to_a_sink_chunk_by_chunk_are_the_files_planned_whole(chunk_rows: int) -> None:
    """The bytes, figures and check reports do not depend on the chunk size or on a sink; a sink never gets more
    than ``chunk_rows`` examples at once, and the plan then holds no file's bytes."""
    cleaned = _cleaned()
    options = {"formats": list(FORMATS), "label_map": {"pos": "Positive"}, "counter": get_counter()}
    whole = plan_export(cleaned, **options)
    sink = _Sink()
    streamed = plan_export(cleaned, sink=sink, chunk_rows=chunk_rows, **options)
    assert [f.name for f in streamed.files] == [f.name for f in whole.files] == list(sink.chunks)
    for w, s in zip(whole.files, streamed.files):
        assert s.data is None and b"".join(sink.chunks[s.name]) == w.data
        assert (s.sha256, s.size, s.lines, s.records) == (w.sha256, len(w.data), w.lines, w.records)
        if s.format not in ("csv", "parquet"):
            assert max(chunk.count(b"\n") for chunk in sink.chunks[s.name]) <= chunk_rows
            assert len(sink.chunks[s.name]) == -(-s.records // chunk_rows)
    assert {k: r.as_dict() for k, r in streamed.reports.items()} == {k: r.as_dict() for k, r in whole.reports.items()}
    assert streamed.counts == whole.counts and streamed.warnings == whole.warnings


def test_an_empty_validation_file_is_still_handed_to_the_sink() -> None:
    cleaned = _rows(3).assign(label=["a", "b", "c"])  # one row per class: none can go to validation
    cleaned = apply_decisions(cleaned, None)
    sink = _Sink()
    plan = plan_export(cleaned, sink=sink, min_train_examples=0)
    assert sink.chunks["val.openai-chat.jsonl"] == [b""]
    assert [(f.name, f.records, f.size) for f in plan.files][1] == ("val.openai-chat.jsonl", 0, 0)
    with pytest.raises(ValueError, match="chunk_rows must be at least 1, got 0"):
        plan_export(cleaned, chunk_rows=0, min_train_examples=0)
