"""Fuzzing ingest + validate: whatever the bytes, the outcome is a LabelgateError or a reconciled result.

"Reconciled" means every record of the input is accounted for exactly once: ``rows_in == rows_valid +
rows_quarantined``, every quarantined row has a reason, and every valid row has a non-blank text and a label.
Anything else (a KeyError, a UnicodeEncodeError, a pandas error…) would reach a user as an internal error.
"""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from labelgate.errors import LabelgateError
from labelgate.gx import validate
from labelgate.readers import read_dataset

pytestmark = pytest.mark.unit

#: examples per test (20 keeps the unit layer within 90 s); raise it for a longer hunt:
#: LABELGATE_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_ingest.py
_EXAMPLES = int(os.environ.get("LABELGATE_FUZZ_EXAMPLES", "20"))
_SETTINGS = settings(
    max_examples=_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def ingest_and_validate(path: Path, **options: object) -> dict | LabelgateError:
    """The ingest + validate path of a run, without the database: the error raised, or the counts."""
    try:
        res = read_dataset(path, **options)
        parsed = res.rows[~res.rows["seq"].isin(res.quarantine["seq"])]
        outcome = validate(parsed, min_rows_per_class=2)
    except LabelgateError as err:
        return err
    assert res.rows["seq"].is_unique and res.quarantine["seq"].is_unique
    assert set(res.quarantine["seq"]) <= set(res.rows["seq"])
    quarantined = len(res.quarantine) + len(outcome.quarantine)
    return {
        "rows_in": len(res.rows),
        "rows_valid": len(outcome.valid),
        "rows_quarantined": quarantined,
        "reasons": [*res.quarantine["reason"], *outcome.quarantine["reason"]],
        "valid": outcome.valid,
    }


def assert_allowed(outcome: dict | LabelgateError) -> None:
    """A one-line LabelgateError, or a result where every record is accounted for."""
    if isinstance(outcome, LabelgateError):
        message = str(outcome)
        assert message and "\n" not in message, repr(message)
        return
    assert outcome["rows_in"] == outcome["rows_valid"] + outcome["rows_quarantined"]
    assert all(isinstance(r, str) and r.strip() for r in outcome["reasons"])
    valid: pd.DataFrame = outcome["valid"]
    assert valid["text"].map(lambda t: isinstance(t, str) and t.strip() != "").all()
    assert valid["label"].map(lambda v: isinstance(v, str) and v != "").all()
    # what is kept must be storable as UTF-8 (DuckDB, Arrow, the export files)
    for column in ("row_id", "text", "label"):
        for value in valid[column]:
            value.encode("utf-8")


# --- random bytes ---------------------------------------------------------------------------------------------

_SUFFIXES = [".csv", ".tsv", ".jsonl", ".json", ".parquet"]


@_SETTINGS
@given(data=st.binary(max_size=600), suffix=st.sampled_from(_SUFFIXES))
@example(data=b"\xff\xfet\x00e\x00x\x00t\x00", suffix=".csv")
@example(data=b"PAR1\x00\x00\x00\x00PAR1", suffix=".parquet")
@example(data=b'{"text": "\\ud800", "label": "a"}\n', suffix=".jsonl")
def test_random_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    assert_allowed(ingest_and_validate(path))


# --- CSV that is structured but broken ------------------------------------------------------------------------

_nasty = st.lists(
    st.sampled_from([*"ab ,;\"'\t\r\n\x00\ufeff\u2028\u00a0é💳<>&", "label", "text", "billing"]), max_size=8
).map("".join)
_header = st.lists(st.sampled_from(["text", "label", "id", "Text", " label ", "extra", "", '"text"']), max_size=4)


@st.composite
def broken_csv(draw: st.DrawFn) -> str:
    header = draw(_header)
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    lines = [delimiter.join(header)]
    for _ in range(draw(st.integers(0, 12))):
        cells = draw(st.lists(_nasty, max_size=5))
        quote = draw(st.booleans())
        lines.append(delimiter.join(f'"{c}"' if quote else c for c in cells))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return newline.join(lines) + draw(st.sampled_from(["", newline]))


@_SETTINGS
@given(text=broken_csv(), bom=st.booleans(), encoding=st.sampled_from(["utf-8", "latin-1"]))
@example(text="text,label\na,b\na,b\n" + "c,d\n" * 3, bom=False, encoding="utf-8")
def test_structured_but_broken_csv(tmp_path: Path, text: str, bom: bool, encoding: str) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass"))
    assert_allowed(ingest_and_validate(path, encoding=encoding))


# --- JSONL that is structured but broken ----------------------------------------------------------------------

_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.sampled_from(["", "  ", "\ud800", "a\udfffb", "\x00", "billing", "technical"]),
)
_json_value = st.recursive(
    _json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def jsonl_line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["record", "record", "record", "chat", "garbage", "truncated", "blank", "scalar"]))
    if kind == "record":
        obj = {k: draw(_json_value) for k in draw(st.lists(st.sampled_from(["text", "label", "id", "x"]), max_size=4))}
        return json.dumps(obj, ensure_ascii=draw(st.booleans()))
    if kind == "chat":
        messages = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"role": st.sampled_from(["system", "user", "assistant", "tool", 3]), "content": _json_value}
                ),
                max_size=4,
            )
        )
        return json.dumps({"messages": draw(st.sampled_from([messages, None, "x", {}]))})
    if kind == "truncated":
        full = json.dumps({"text": draw(st.text(max_size=8)), "label": draw(st.text(max_size=4))})
        return full[: draw(st.integers(0, max(len(full) - 1, 0)))]
    if kind == "garbage":
        return draw(st.text(alphabet=string.printable + "\x00é", max_size=20)).replace("\n", " ")
    if kind == "scalar":
        return json.dumps(draw(_json_scalar))
    return ""


@_SETTINGS
@given(lines=st.lists(jsonl_line(), max_size=12), chat_first=st.booleans())
@example(lines=['{"text": "t\\ud800", "label": "a"}', '{"text": "u", "label": "a\\udfff"}'], chat_first=False)
@example(lines=['{"text": {"a": 1}, "label": [1, 2]}', '{"text": NaN, "label": Infinity}'], chat_first=False)
def test_structured_but_broken_jsonl(tmp_path: Path, lines: list[str], chat_first: bool) -> None:
    if chat_first:
        lines = ['{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}]}', *lines]
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    assert_allowed(ingest_and_validate(path))


# --- Parquet with odd column types ----------------------------------------------------------------------------

_cell = st.one_of(st.none(), st.text(max_size=8), st.integers(-3, 3), st.floats(allow_nan=True), st.binary(max_size=6))


@_SETTINGS
@given(texts=st.lists(_cell, min_size=1, max_size=10), labels=st.lists(_cell, min_size=1, max_size=10))
def test_parquet_with_mixed_cells(tmp_path: Path, texts: list, labels: list) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = min(len(texts), len(labels))

    def column(values: list) -> pa.Array:
        try:
            return pa.array(values[:n])
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: store their text
            return pa.array([None if v is None else repr(v) for v in values[:n]])

    path = tmp_path / "fuzz.parquet"
    pq.write_table(pa.table({"text": column(texts), "label": column(labels)}), path)
    assert_allowed(ingest_and_validate(path))
