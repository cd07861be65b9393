"""The review library with `labelgate export` (the export task, so Prefect): human decisions win over the policy's."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_db

from labelgate import store
from labelgate.services import review

pytestmark = pytest.mark.flow


@pytest.fixture
def db(warm_run: dict, tmp_path: Path) -> str:
    return copy_db(warm_run, tmp_path)


def _run(db: str) -> str:
    with store.connect(db) as con:
        return store.resolve_run(con, "latest")


def test_labelgate_export_after_a_later_review_writes_the_human_decisions(db: str, tmp_path: Path) -> None:
    """A completed run reviewed afterwards: `labelgate export` applies the human decisions over the policy's."""
    import json

    from click.testing import CliRunner

    from labelgate.cli import main

    run_id = _run(db)
    with store.connect(db) as con:
        items = review.review_items(con, run_id)
        rows = store.valid_rows(con, run_id).set_index("row_id")
        relabel = items[items["suggested_label"] != items["given_label"]].iloc[0]
        target = next(
            c for c in review.run_classes(con, run_id) if c not in (relabel["given_label"], relabel["suggested_label"])
        )
        review.record_decision(con, run_id, row_id=relabel["id"], action="relabel", label=target, reviewer="ann")
        review.record_decision(con, run_id, row_id="t0229", action="exclude", reviewer="ann")
    result = CliRunner().invoke(main, ["export", "--db", db, "--run", run_id, "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    files = json.loads(result.output.strip().splitlines()[-1])["export_files"]
    exported = {}
    for path in files:
        if not path.endswith(".jsonl"):
            continue
        for line in Path(path).read_text().splitlines():
            messages = json.loads(line)["messages"]
            exported[messages[-2]["content"]] = messages[-1]["content"]
    assert exported[rows.loc[relabel["id"], "text"]] == target
    assert rows.loc["t0229", "text"] not in exported
