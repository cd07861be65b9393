"""The ingest task's own code (it imports Prefect): the wide annotator format, fuzzed JSONL into DuckDB."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_fuzz_ingest import _EXAMPLES, jsonl_line

from labelgate.errors import LabelgateError

pytestmark = pytest.mark.flow

_STORE_EXAMPLES = max(5, _EXAMPLES // 3)


def test_wide_format_becomes_one_annotation_per_filled_cell(tmp_path) -> None:
    from labelgate.config import CurateParams
    from labelgate.services.inputs import read_input
    from labelgate.tasks.ingest import _wide

    path = tmp_path / "wide.csv"
    path.write_text("id,text,r1,r2,r3\n1,hello,pos,pos,neg\n2,bye,neg,,neg\n3,meh,,,\n")
    params = CurateParams(label_col="r1,r2,r3")
    assert params.multi_annotator and params.label_columns == ["r1", "r2", "r3"]
    first = read_input(str(path), params.ingest_settings())
    long, n_labels, unparsed = _wide(str(path), params, first)
    assert (n_labels, unparsed) == (5, 0)
    assert long.items["row_id"].tolist() == ["1", "2", "3"]
    assert long.items["label"].tolist() == ["pos", "neg", None]
    usable = long.usable
    assert sorted(usable["annotator"].unique()) == ["r1", "r2", "r3"]
    assert usable.groupby("item_id").size().to_dict() == {"1": 3, "2": 2}
    assert usable["seq"].is_unique


@settings(
    max_examples=_STORE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=st.lists(jsonl_line(), min_size=1, max_size=12))
@example(lines=['{"text": "t\\ud800", "label": "a"}', '{"text": "x\\u0000y", "label": "a\\udfff"}'])
def test_structured_but_broken_jsonl_through_the_tasks_into_duckdb(tmp_path_factory, lines: list[str]) -> None:
    """What the ingest task stores (surrogates, NULs, odd types) DuckDB accepts, and the counts reconcile."""
    from labelgate import store
    from labelgate.config import CurateParams
    from labelgate.tasks.ingest import ingest
    from labelgate.tasks.run import start_run
    from labelgate.tasks.validate import validate

    folder = tmp_path_factory.mktemp("fuzz-store")
    path = folder / "fuzz.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
    db = str(folder / "f.duckdb")
    params = CurateParams(n_folds=2)
    run_id = start_run.fn(db, str(path), params)
    try:
        metrics = ingest.fn(db, run_id, str(path), params).to_json()
        metrics.update(validate.fn(db, run_id, params).to_json())
    except LabelgateError as err:
        assert "\n" not in str(err)
        return
    with store.connect(db, read_only=True) as con:
        n_rows = store.scalar(con, "SELECT count(*) FROM rows WHERE run_id = ?", [run_id])
        n_valid = store.scalar(con, "SELECT count(*) FROM valid_rows WHERE run_id = ?", [run_id])
        n_quarantined = store.scalar(con, "SELECT count(*) FROM quarantine WHERE run_id = ?", [run_id])
    assert metrics["rows_in"] == metrics["rows_valid"] + metrics["rows_quarantined"]
    assert (n_rows, n_valid, n_quarantined) == (metrics["rows_in"], metrics["rows_valid"], metrics["rows_quarantined"])
