"""Ingest: every format into the canonical row table, every record accounted for, clear errors."""

from __future__ import annotations

import csv
import json
import string
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelgate.core.ingest import ROW_COLUMNS
from labelgate.errors import InputError, MissingColumnError
from labelgate.readers import read_dataset

pytestmark = pytest.mark.unit


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_ids_from_id_column_and_source_lines_follow_multiline_fields(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", 'id,text,label\na1,"first\nline two",x\na2,second,y\n')
    res = read_dataset(f)
    assert list(res.rows.columns) == ROW_COLUMNS
    assert res.id_source == "id"
    assert list(res.rows["row_id"]) == ["a1", "a2"]
    assert list(res.rows["source_line"]) == [2, 4]  # the record starting at line 2 spans two lines
    assert res.rows["text"].iloc[0] == "first\nline two"
    assert res.quarantine.empty
    assert res.input_format == "csv"


def test_content_hash_ids_are_stable_and_repeats_get_suffixes(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "text,label\nhello,a\nhello,a\nbye,b\n")
    ids = list(read_dataset(f).rows["row_id"])
    assert ids[1] == ids[0] + "~2"
    assert ids == list(read_dataset(f).rows["row_id"])
    assert read_dataset(f).id_source == "content-hash"


def test_labels_are_trimmed_and_the_summary_says_so(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "text,label\na, pos\nb,neg \nc,pos\n")
    res = read_dataset(f)
    assert list(res.rows["label"]) == ["pos", "neg", "pos"]
    assert list(res.rows["label_raw"]) == [" pos", "neg ", "pos"]
    assert res.labels_normalised == 2
    assert any("2 labels were trimmed" in n for n in res.notes)


def test_case_variants_are_reported_or_merged(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "text,label\na,Pos\nb,pos\n")
    kept = read_dataset(f)
    assert set(kept.rows["label"]) == {"Pos", "pos"}
    assert any("--label-case lower" in n for n in kept.notes)
    merged = read_dataset(f, label_case="lower")
    assert set(merged.rows["label"]) == {"pos"}


def test_missing_column_names_it_and_the_columns_found(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "sentence,label\na,b\n")
    with pytest.raises(MissingColumnError) as err:
        read_dataset(f)
    msg = str(err.value)
    assert "'text'" in msg and "'sentence'" in msg and "--text-col" in msg


def test_wrong_delimiter_shows_as_a_missing_column(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "text;label\na;b\n")
    with pytest.raises(MissingColumnError, match="'text;label'"):
        read_dataset(f)
    assert list(read_dataset(f, delimiter=";").rows["label"]) == ["b"]


def test_non_utf8_input_names_the_line_and_the_fix(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "text,label\ncafé,a\n", encoding="latin-1")
    with pytest.raises(InputError, match=r"not valid utf-8 .*line 2.*--encoding"):
        read_dataset(f)
    assert read_dataset(f, encoding="latin-1").rows["text"].iloc[0] == "café"


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    f = tmp_path / "d.csv"
    f.write_bytes(b'\xef\xbb\xbfid,text,label\r\n1,hi,a\r\n2,"two\r\nlines",b\r\n')
    rows = read_dataset(f).rows
    assert list(rows["row_id"]) == ["1", "2"]
    assert rows["text"].iloc[1] == "two\r\nlines"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "is empty"),
        ("text,label\n", "no data rows"),
        ('text,label\n"unterminated,a\n', "malformed CSV|unterminated"),
        ("text,label\na\x00b,c\n", "NUL byte"),
    ],
)
def test_unreadable_csv_raises_one_clear_error(tmp_path: Path, content: str, match: str) -> None:
    f = write(tmp_path / "d.csv", content)
    with pytest.raises(InputError, match=match):
        read_dataset(f)


def test_csv_record_with_wrong_field_count_is_quarantined(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "text,label\na,b\nc,d,e\n")
    res = read_dataset(f)
    assert len(res.rows) == 2
    assert list(res.quarantine["source_line"]) == [3]
    assert "3 fields" in res.quarantine["reason"].iloc[0]


def test_jsonl_broken_lines_are_quarantined_not_fatal(tmp_path: Path) -> None:
    f = write(tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n{broken\n[1, 2]\n{"text": "b"}\n')
    res = read_dataset(f)
    assert len(res.rows) == 4  # every record is accounted for
    reasons = dict(zip(res.quarantine["source_line"], res.quarantine["reason"]))
    assert reasons[2].startswith("invalid JSON")
    assert "expected a JSON object" in reasons[3]
    assert reasons[4] == "missing key 'label'"
    assert res.rows["text"].iloc[0] == "a"


def test_chat_jsonl_takes_last_user_and_assistant_messages(tmp_path: Path) -> None:
    lines = [
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "greeting"},
            ]
        },
        {"messages": [{"role": "user", "content": "no answer"}]},
    ]
    f = write(tmp_path / "chat.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
    res = read_dataset(f)
    assert res.input_format == "chat-jsonl"
    assert (res.rows["text"].iloc[0], res.rows["label"].iloc[0]) == ("hi", "greeting")
    assert "no assistant message" in res.quarantine["reason"].iloc[0]


def test_parquet_and_corrupt_parquet(tmp_path: Path) -> None:
    df = pd.DataFrame({"id": [1, 2], "body": ["a", "b"], "y": ["p", "q"]})
    f = tmp_path / "d.parquet"
    df.to_parquet(f)
    rows = read_dataset(f, text_col="body", label_col="y").rows
    assert list(rows["row_id"]) == ["1", "2"] and list(rows["label"]) == ["p", "q"]
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(InputError, match=r"cannot read .* as Parquet"):
        read_dataset(bad)


def test_unknown_extension_asks_for_input_format(tmp_path: Path) -> None:
    f = write(tmp_path / "d.txt", "text,label\na,b\n")
    with pytest.raises(InputError, match="--input-format"):
        read_dataset(f)
    assert len(read_dataset(f, fmt="csv").rows) == 1


def test_dataset_version_ignores_row_order_and_format(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "id,text,label\n1,x,p\n2,y,q\n")
    b = write(tmp_path / "b.csv", "id,text,label\n2,y,q\n1,x,p\n")
    c = write(tmp_path / "c.jsonl", '{"id": 1, "text": "x", "label": "p"}\n{"id": 2, "text": "y", "label": "q"}\n')
    versions = {read_dataset(p).dataset_version for p in (a, b, c)}
    assert len(versions) == 1
    d = write(tmp_path / "d.csv", "id,text,label\n1,x,p\n2,y,CHANGED\n")
    assert read_dataset(d).dataset_version not in versions


_text = st.text(alphabet=string.printable + "éü€<>&\"'\u2028", min_size=0, max_size=40)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(
        st.tuples(_text, st.text(alphabet=string.ascii_letters, min_size=1, max_size=8)), min_size=1, max_size=15
    )
)
def test_jsonl_and_csv_round_trip_text_exactly(tmp_path: Path, records: list[tuple[str, str]]) -> None:
    """Whatever the text (quotes, newlines, unicode), CSV and JSONL give back the same strings."""
    df = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(len(records))],
            "text": [t for t, _ in records],
            "label": [lab for _, lab in records],
        }
    )
    jl = tmp_path / "h.jsonl"
    jl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in df.to_dict("records")), encoding="utf-8")
    cv = tmp_path / "h.csv"
    df.to_csv(cv, index=False, quoting=csv.QUOTE_ALL)  # a bare \r in an unquoted field is ambiguous CSV
    for path in (jl, cv):
        rows = read_dataset(path).rows
        assert list(rows["row_id"]) == list(df["id"])
        got = [t if t is not None else "" for t in rows["text"]]
        assert got == list(df["text"]), path.suffix
        assert list(rows["label"]) == [lab.strip() for lab in df["label"]]
