"""Tests of labelgate.core.validate: row quarantine reasons, keep-first duplicates, the class-size pass,
table-level errors and the JSON record of the GX validation."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelgate.core.validate import ValidationOutcome
from labelgate.errors import ConfigError, ValidationError
from labelgate.gx import validate

pytestmark = pytest.mark.unit


def frame(rows: list[tuple[str, str | None, str | None]], *, first_line: int = 2, **extra: list[Any]) -> pd.DataFrame:
    """Build an ingest-shaped frame from (row_id, text, label) tuples; source_line counts from ``first_line``."""
    df = pd.DataFrame(
        {
            "row_id": pd.Series([r[0] for r in rows], dtype=object),
            "text": pd.Series([r[1] for r in rows], dtype=object),
            "label": pd.Series([r[2] for r in rows], dtype=object),
            "source_line": pd.Series(range(first_line, first_line + len(rows)), dtype="int64"),
        }
    )
    for name, values in extra.items():
        df[name] = values
    return df


def balanced(n_per_class: int = 3, classes: tuple[str, ...] = ("pos", "neg"), prefix: str = "ok") -> list[tuple]:
    """``n_per_class`` clean rows for each class, with ids ``<prefix><i>``."""
    out = []
    for c in classes:
        for _ in range(n_per_class):
            out.append((f"{prefix}{len(out)}", f"a fine text number {len(out)}", c))
    return out


def reasons(out: ValidationOutcome) -> dict[str, str]:
    """row_id -> reason of the quarantine table."""
    return dict(zip(out.quarantine["row_id"], out.quarantine["reason"], strict=True))


def check_reconciles(df: pd.DataFrame, out: ValidationOutcome) -> None:
    """valid + quarantine == input, disjoint, both in input order."""
    assert len(out.valid) + len(out.quarantine) == len(df)
    assert list(out.valid.columns) == list(df.columns)
    assert isinstance(out.valid.index, pd.RangeIndex)
    assert list(out.quarantine.columns) == ["row_id", "source_line", "reason"]
    valid_lines = list(out.valid["source_line"])
    bad_lines = list(out.quarantine["source_line"])
    assert valid_lines == sorted(valid_lines)
    assert bad_lines == sorted(bad_lines)
    assert set(valid_lines).isdisjoint(bad_lines)
    assert sorted(valid_lines + bad_lines) == sorted(df["source_line"])


# --------------------------------------------------------------------------------------------------------------------
# clean input
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("string_dtype", ["object", "str"])
def test_clean_input_is_all_valid_and_keeps_extra_columns(string_dtype: str) -> None:
    rows = balanced(3, ("neg", "pos", "abc"))
    df = frame(rows, meta=list(range(len(rows))))
    if string_dtype == "str":
        df = df.astype({"row_id": "string", "text": "string", "label": "string"})
    df.index = pd.Index(range(100, 100 + len(df)))  # any index is accepted; valid gets a RangeIndex

    out = validate(df, min_rows_per_class=3)

    check_reconciles(df, out)
    assert out.quarantine.empty
    assert list(out.valid["row_id"]) == [r[0] for r in rows]
    assert list(out.valid["meta"]) == list(range(len(rows)))
    assert out.class_counts == {"abc": 3, "neg": 3, "pos": 3}
    assert list(out.class_counts) == sorted(out.class_counts)


def test_non_string_label_columns_are_compared_as_strings() -> None:
    rows = balanced(2, ("x", "y"))
    df = frame(rows)
    df["label"] = pd.Categorical([r[2] for r in rows], categories=["x", "y", "unused"])
    out = validate(df, min_rows_per_class=2)
    assert out.class_counts == {"x": 2, "y": 2}
    assert out.result_json["labelgate"]["dropped_classes"] == {}
    assert out.valid["label"].dtype == df["label"].dtype  # valid keeps the input's columns as they are

    df["label"] = pd.array([0, 0, 1, None], dtype="Int64")
    out = validate(df, min_rows_per_class=1)
    assert out.class_counts == {"0": 2, "1": 1}
    assert reasons(out) == {"ok3": "label is missing"}


# --------------------------------------------------------------------------------------------------------------------
# row-level reasons
# --------------------------------------------------------------------------------------------------------------------


def test_text_missing_blank_short_and_long_reasons() -> None:
    df = frame(
        [
            *balanced(3),
            ("missing", None, "pos"),
            ("blank1", "   ", "pos"),
            ("blank2", "\t\n", "neg"),
            ("blank3", "\u00a0\u3000", "neg"),
            ("empty", "", "neg"),
            ("short", "  ab  ", "pos"),
            ("long", "x" * 26, "neg"),
            ("edge_lo", "abc", "pos"),
            ("edge_hi", " " + "y" * 25 + " ", "neg"),
        ]
    )

    out = validate(df, min_text_chars=3, max_text_chars=25, min_rows_per_class=3)

    check_reconciles(df, out)
    assert reasons(out) == {
        "missing": "text is missing",
        "blank1": "text is blank",
        "blank2": "text is blank",
        "blank3": "text is blank",
        "empty": "text is blank",
        "short": "text shorter than 3 characters (got 2)",
        "long": "text longer than 25 characters (got 26)",
    }
    assert {"edge_lo", "edge_hi"} <= set(out.valid["row_id"])
    # the valid text is not modified: stripping is only used to measure
    assert out.valid.loc[out.valid["row_id"] == "edge_hi", "text"].item() == " " + "y" * 25 + " "
    counts = out.result_json["labelgate"]["reason_counts"]
    assert counts == {
        "text is missing": 1,
        "text is blank": 4,
        "text shorter than 3 characters": 1,
        "text longer than 25 characters": 1,
    }


def test_label_missing_for_null_and_empty_label() -> None:
    df = frame([*balanced(2), ("nolabel", "some text", None), ("emptylabel", "other text", "")])

    out = validate(df, min_rows_per_class=2)

    check_reconciles(df, out)
    assert reasons(out) == {"nolabel": "label is missing", "emptylabel": "label is missing"}
    assert out.class_counts == {"neg": 2, "pos": 2}


def test_duplicate_ids_keep_the_first_occurrence() -> None:
    df = frame(
        [
            ("a", "first a", "pos"),
            ("b", "first b", "neg"),
            ("a", "second a", "neg"),
            ("c", "only c", "pos"),
            ("a", "third a", "pos"),
            ("b", "second b", "neg"),
        ],
        first_line=10,
    )

    out = validate(df, min_rows_per_class=1)

    check_reconciles(df, out)
    assert list(out.valid["text"]) == ["first a", "first b", "only c"]
    assert out.quarantine.to_dict("records") == [
        {"row_id": "a", "source_line": 12, "reason": "duplicate id 'a' (first at line 10)"},
        {"row_id": "a", "source_line": 14, "reason": "duplicate id 'a' (first at line 10)"},
        {"row_id": "b", "source_line": 15, "reason": "duplicate id 'b' (first at line 11)"},
    ]


def test_a_row_failing_several_checks_gets_every_reason_in_check_order() -> None:
    df = frame(
        [
            *balanced(2),
            ("x", None, ""),
            ("y", "  ", None),
            ("z", "a", ""),
            ("ok0", "repeats the id of balanced()'s first row", None),
        ]
    )

    out = validate(df, min_text_chars=2, min_rows_per_class=2)

    check_reconciles(df, out)
    assert reasons(out) == {
        "x": "text is missing; label is missing",
        "y": "text is blank; label is missing",
        "z": "text shorter than 2 characters (got 1); label is missing",
        "ok0": "label is missing; duplicate id 'ok0' (first at line 2)",
    }
    assert out.result_json["labelgate"]["quarantined_rows"] == 4


def test_small_classes_are_quarantined_counting_only_rows_valid_after_the_first_pass() -> None:
    df = frame(
        [
            *balanced(3, ("big", "edge")),
            ("s1", "small one", "small"),
            ("s2", "small two", "small"),
            ("s3", None, "small"),  # invalid: does not count towards the class size
            ("t1", "tiny", "tiny"),
        ]
    )

    out = validate(df, min_rows_per_class=3)

    check_reconciles(df, out)
    msg = "class 'small' has only 2 valid rows; at least 3 are needed (one per cross-validation fold)"
    assert reasons(out) == {
        "s1": msg,
        "s2": msg,
        "s3": "text is missing",
        "t1": "class 'tiny' has only 1 valid rows; at least 3 are needed (one per cross-validation fold)",
    }
    assert out.class_counts == {"big": 3, "edge": 3}
    summary = out.result_json["labelgate"]
    assert summary["dropped_classes"] == {"small": 2, "tiny": 1}
    assert summary["reason_counts"]["class with fewer than 3 valid rows"] == 3


# --------------------------------------------------------------------------------------------------------------------
# table-level errors
# --------------------------------------------------------------------------------------------------------------------


def test_empty_input_raises() -> None:
    with pytest.raises(ValidationError, match=r"^the input has no data rows$"):
        validate(frame([]))


def test_no_valid_rows_raises_with_count_and_most_common_reason() -> None:
    df = frame([("a", None, "x"), ("b", None, "y"), ("c", "   ", "x"), ("d", "text", "")])

    with pytest.raises(ValidationError) as info:
        validate(df, min_rows_per_class=1)

    msg = str(info.value)
    assert "no valid rows: all 4 rows were quarantined" in msg
    assert "most common reason: 'text is missing', 2 rows" in msg
    assert "\n" not in msg
    record = info.value.result_json  # type: ignore[attr-defined]
    assert record["labelgate"]["valid_rows"] == 0
    json.dumps(record)
    assert list(info.value.quarantine["row_id"]) == ["a", "b", "c", "d"]  # type: ignore[attr-defined]


def test_no_valid_rows_when_every_class_is_too_small() -> None:
    df = frame([("a", "text a", "x"), ("b", "text b", "y")])

    with pytest.raises(
        ValidationError, match=r"all 2 rows were quarantined \(most common reason: 'class with fewer than 2 valid rows'"
    ):
        validate(df, min_rows_per_class=2)


def test_a_single_class_raises_naming_the_class_and_its_count() -> None:
    df = frame([(f"r{i}", f"text {i}", "only") for i in range(4)] + [("bad", None, "other")])

    with pytest.raises(ValidationError) as info:
        validate(df, min_rows_per_class=2)

    msg = str(info.value)
    assert "only 1 class remains among the 4 valid rows ('only': 4)" in msg
    assert "at least 2 classes are needed" in msg
    results = info.value.result_json["results"]  # type: ignore[attr-defined]
    table = next(r for r in results if r["suite_name"] == "labelgate.validate.table")
    unique = next(
        r
        for r in table["results"]
        if r["expectation_config"]["type"] == "expect_column_unique_value_count_to_be_between"
    )
    assert unique["success"] is False
    assert unique["result"]["observed_value"] == 1


def test_a_single_class_left_after_the_class_size_pass_mentions_the_dropped_classes() -> None:
    df = frame([(f"r{i}", f"text {i}", "big") for i in range(5)] + [("s", "small text", "small")])

    with pytest.raises(ValidationError, match=r"\('big': 5\).*1 other class\(es\) had fewer than 3 valid rows"):
        validate(df, min_rows_per_class=3)


# --------------------------------------------------------------------------------------------------------------------
# parameters, input shape, record
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"min_text_chars": 0}, "min_text_chars must be at least 1"),
        ({"min_text_chars": 5, "max_text_chars": 4}, r"max_text_chars \(4\) must be at least min_text_chars \(5\)"),
        ({"min_rows_per_class": 0}, "min_rows_per_class must be at least 1"),
    ],
)
def test_bad_parameters_raise_config_error(kwargs: dict[str, int], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        validate(frame(balanced()), **kwargs)


def test_missing_required_column_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="label"):
        validate(frame(balanced()).drop(columns=["label"]))


def test_result_json_round_trips_and_describes_suites_and_results() -> None:
    df = frame([*balanced(3), ("dup", "t", "pos"), ("dup", "t2", "neg"), ("n", None, "pos")])

    out = validate(df, min_rows_per_class=3)

    record = json.loads(json.dumps(out.result_json))
    assert record == out.result_json
    assert [s["name"] for s in record["suites"]] == ["labelgate.validate.rows", "labelgate.validate.table"]
    types = {e["type"] for s in record["suites"] for e in s["expectations"]}
    assert {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_not_match_regex",
        "expect_column_value_lengths_to_be_between",
        "expect_column_values_to_be_unique",
        "expect_table_row_count_to_be_between",
        "expect_column_unique_value_count_to_be_between",
    } <= types
    row_result = record["results"][0]
    assert row_result["success"] is False
    for r in row_result["results"]:
        assert "unexpected_index_list" not in r["result"]
    unique = next(r for r in row_result["results"] if r["expectation_config"]["type"].endswith("_to_be_unique"))
    assert unique["result"]["partial_unexpected_index_list"] == [6, 7]  # GX flags every occurrence
    assert record["results"][1]["success"] is True
    summary = record["labelgate"]
    assert (summary["input_rows"], summary["valid_rows"], summary["quarantined_rows"]) == (9, 7, 2)
    assert summary["class_counts"] == out.class_counts == {"neg": 3, "pos": 4}


def test_repeated_calls_with_different_frames_are_independent() -> None:
    first = validate(frame([*balanced(2), ("n", None, "pos")]), min_rows_per_class=2)
    second = validate(frame(balanced(4, ("a", "b", "c"))), min_rows_per_class=2)
    third = validate(frame([*balanced(2), ("n", None, "pos")]), min_rows_per_class=2)

    assert reasons(first) == reasons(third) == {"n": "text is missing"}
    assert second.quarantine.empty
    assert second.class_counts == {"a": 4, "b": 4, "c": 4}


# --------------------------------------------------------------------------------------------------------------------
# property: counts always reconcile
# --------------------------------------------------------------------------------------------------------------------

_texts = st.one_of(st.none(), st.sampled_from(["", " ", "\t", "a", "ab", "  ab ", "abc", "hello world", "x" * 12]))
_labels = st.one_of(st.none(), st.sampled_from(["", "a", "b", "c"]))
_ids = st.sampled_from([f"id{i}" for i in range(12)])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.tuples(_ids, _texts, _labels), min_size=1, max_size=25),
    min_chars=st.integers(1, 4),
    max_chars=st.integers(4, 12),
    min_rows=st.integers(1, 4),
)
def test_property_valid_and_quarantine_partition_the_input(
    rows: list[tuple[str, str | None, str | None]], min_chars: int, max_chars: int, min_rows: int
) -> None:
    df = frame(rows)
    try:
        out = validate(df, min_text_chars=min_chars, max_text_chars=max_chars, min_rows_per_class=min_rows)
    except ValidationError as err:
        assert str(err) and "\n" not in str(err)
        return
    check_reconciles(df, out)
    if df["row_id"].is_unique:  # a repeated input id may be valid once and quarantined (e.g. blank) elsewhere
        assert set(out.quarantine["row_id"]).isdisjoint(out.valid["row_id"])
    assert out.valid["row_id"].is_unique
    assert (out.quarantine["reason"].str.len() > 0).all()
    assert sum(out.class_counts.values()) == len(out.valid)
    assert len(out.class_counts) >= 2
    assert min(out.class_counts.values()) >= min_rows
    stripped = out.valid["text"].str.strip().str.len()
    assert stripped.between(min_chars, max_chars).all()
    json.dumps(out.result_json)
