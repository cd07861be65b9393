"""The curation memory as a library, the CLI and the API, on a copy of the warm run (no second flow run: a later
run of the dataset is simulated by copying the warm run's rows into a new ``runs`` row)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import copy_db
from fastapi.testclient import TestClient

from labelgate import store
from labelgate.cli import main
from labelgate.config import CurateParams
from labelgate.services import memory, review
from labelgate.services.export import export_run
from labelgate.web.app import create_app

pytestmark = pytest.mark.flow


@pytest.fixture
def db(warm_run: dict, tmp_path: Path) -> str:
    return copy_db(warm_run, tmp_path)


def _later_run(db: str, run1: str, run_id: str = "r2", *, dataset: str | None = None, edit=None) -> str:
    """A later run of the dataset holding run 1's valid rows in reverse order with new ids (``z-<id>``)."""
    with store.connect(db) as con:
        ds = dataset or store.run_dataset(con, run1)
        con.execute(
            "INSERT INTO runs (run_id, dataset, input_path, params_json, status, started_at) "
            "VALUES (?, ?, 'in.csv', '{}', 'running', current_timestamp)",
            [run_id, ds],
        )
        rows = store.valid_rows(con, run1).iloc[::-1].reset_index(drop=True)
        rows = rows.assign(run_id=run_id, seq=range(len(rows)), row_id="z-" + rows["row_id"], label_raw=rows["label"])
        if edit is not None:
            rows = edit(rows)
        store.insert_frame(
            con, "rows", rows[["run_id", "seq", "row_id", "text", "label", "label_raw", "text_sha256", "source_line"]]
        )
    return run_id


def _unique_rows(db: str, run_id: str, n: int) -> list[dict]:
    """``n`` flagged rows whose text and label occur once in the run."""
    with store.connect(db) as con:
        items = review.item_records(review.review_items(con, run_id))
        rows = store.valid_rows(con, run_id)
    counts = rows.groupby(["text_sha256"]).size()
    once = set(rows.loc[rows["text_sha256"].map(counts) == 1, "row_id"])
    return [it for it in items if it["id"] in once][:n]


def test_a_persons_decisions_are_remembered_with_them_and_reach_a_later_run_by_content(db: str, warm_run: dict) -> None:
    run1 = warm_run["run_id"]
    a, b, c = _unique_rows(db, run1, 3)
    with store.connect(db) as con:
        classes = review.run_classes(con, run1)
        other = next(x for x in classes if x != a["given_label"])
        review.record_decisions(
            con,
            run1,
            [{"id": a["id"], "action": "relabel", "label": other}, {"id": b["id"], "action": "exclude"}],
            reviewer="ann",
            note="checked",
        )
        review.record_decision(con, run1, row_id=c["id"], action="keep", reviewer="bob")
        with pytest.raises(review.ReviewError):  # all or nothing: a bad label stores neither decision nor memory
            review.record_decisions(
                con,
                run1,
                [{"id": c["id"], "action": "exclude"}, {"id": a["id"], "action": "relabel", "label": "?"}],
                reviewer="ann",
            )
        entries = store.current_memory(con)
    assert len(entries) == 3 and set(entries["source"]) == {"human"}
    assert dict(zip(entries["row_id"], entries["action"])) == {a["id"]: "relabel", b["id"]: "exclude", c["id"]: "keep"}

    # a later run: other ids, other order; a changed label or text is new content
    def edit(rows):
        rows.loc[rows["row_id"] == "z-" + c["id"], "label"] = next(x for x in classes if x != c["given_label"])
        return rows

    run2 = _later_run(db, run1, edit=edit)
    with store.connect(db) as con:
        found = store.memory_for_run(con, run2).set_index("row_id")
    assert sorted(found.index) == sorted(["z-" + a["id"], "z-" + b["id"]])
    assert (found.loc["z-" + a["id"], "action"], found.loc["z-" + a["id"], "label"]) == ("relabel", other)
    assert found.loc["z-" + b["id"], "from_run"] == run1 and found.loc["z-" + b["id"], "reviewer"] == "ann"
    # another dataset shares nothing
    run3 = _later_run(db, run1, "r3", dataset="another")
    with store.connect(db) as con:
        assert store.memory_for_run(con, run3).empty


def test_undo_puts_the_memory_back_as_it_was(db: str, warm_run: dict) -> None:
    run1 = warm_run["run_id"]
    (a,) = _unique_rows(db, run1, 1)
    with store.connect(db) as con:
        review.record_decision(con, run1, row_id=a["id"], action="keep", reviewer="ann")
        review.record_decision(con, run1, row_id=a["id"], action="exclude", reviewer="ann")
        review.undo_last(con, run1, reviewer="ann")
        kept = memory.history(con, run1, a["id"])
        review.undo_last(con, run1, reviewer="ann")
        nothing = memory.history(con, run1, a["id"])
    assert kept["current"]["action"] == "keep"
    assert nothing["current"] is None
    assert [m["action"] for m in nothing["memory"]] == ["keep", "exclude", "keep", "revoke"]  # append-only
    assert nothing["memory"][-1]["reason"].startswith("undo of #")


def test_policy_decisions_are_carried_only_when_asked(db: str, warm_run: dict) -> None:
    run1 = warm_run["run_id"]
    with store.connect(db) as con, store.transaction(con):
        n = store.remember_policy_decisions(con, run1)
    assert n == warm_run["rows_flagged"]
    run2 = _later_run(db, run1)
    with store.connect(db) as con:
        assert store.memory_for_run(con, run2).empty
        carried = store.memory_for_run(con, run2, include_policy=True)
    assert len(carried) == n and set(carried["source"]) == {"policy"}


def test_revoke_and_change_through_the_api_and_the_history_across_runs(db: str, warm_run: dict) -> None:
    run1 = warm_run["run_id"]
    a, b = _unique_rows(db, run1, 2)
    client = TestClient(create_app(db, reviewer="ann"))
    r = client.post(f"/api/runs/{run1}/decisions", json={"decisions": [{"id": a["id"], "action": "exclude"}]})
    assert r.status_code == 200
    run2 = _later_run(db, run1)

    revoked = client.post(f"/api/runs/{run1}/rows/{a['id']}/memory", json={"action": "revoke", "reason": "oops"})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["current"] is None
    with store.connect(db) as con:
        assert store.memory_for_run(con, run2).empty
    again = client.post(f"/api/runs/{run1}/rows/{a['id']}/memory", json={"action": "revoke"})
    assert again.status_code == 400 and "no remembered decision" in again.json()["error"]

    # change it from the later run: a decision in that run, remembered in its turn
    changed = client.post(f"/api/runs/{run2}/rows/z-{b['id']}/memory", json={"action": "keep", "reviewer": "bob"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["current"]["action"] == "keep" and changed.json()["current"]["run_id"] == run2
    history = client.get(f"/api/runs/{run1}/rows/{b['id']}/history").json()
    assert history["current"]["reviewer"] == "bob"
    assert {d["run_id"] for d in history["decisions"]} == {run1, run2}  # the policy's in run 1, bob's in run 2
    listing = client.get("/api/memory").json()
    assert [m["row_id"] for m in listing] == [f"z-{b['id']}"]
    page = client.get(f"/runs/{run1}/rows/{a['id']}/history")
    assert page.status_code == 200 and "Nothing remembered" in page.text and "oops" in page.text


def test_cli_history_revoke_set_and_list(db: str, warm_run: dict) -> None:
    run1 = warm_run["run_id"]
    (a,) = _unique_rows(db, run1, 1)
    runner = CliRunner()
    base = ["--db", db, "--run", run1]
    done = runner.invoke(main, ["memory", "set", a["id"], *base, "--action", "exclude", "--reviewer", "cat"])
    assert done.exit_code == 0, done.output
    assert "exclude" in done.output
    shown = runner.invoke(main, ["history", a["id"], *base])
    assert shown.exit_code == 0, shown.output
    assert "remembered  exclude (human cat" in shown.output and "policy" in shown.output
    listed = json.loads(runner.invoke(main, ["memory", "list", "--db", db, "--json"]).output)
    assert [m["row_id"] for m in listed] == [a["id"]]
    assert runner.invoke(main, ["memory", "revoke", a["id"], *base, "--reviewer", "cat"]).exit_code == 0
    data = json.loads(runner.invoke(main, ["history", a["id"], *base, "--json"]).output)
    assert data["current"] is None and [m["action"] for m in data["memory"]] == ["exclude", "revoke"]
    bad = runner.invoke(main, ["history", "nope", *base])
    assert bad.exit_code == 2 and "labelgate: error: row 'nope' is not a valid row" in bad.output


def test_accepting_on_an_excluded_duplicate_keeps_it_excluded(db: str, warm_run: dict, tmp_path: Path) -> None:
    run1 = warm_run["run_id"]
    with store.connect(db) as con:
        items = review.review_items(con, run1)
        dups = items[items["issue_types"].map(lambda t: "exact_duplicate" in t)]
        assert len(dups) and (dups["decision_action"] == "exclude").all()
        assert (dups["accept_action"] == "exclude").all()
        row = dups.iloc[0]
        recorded = review.record_decision(con, run1, row_id=row["id"], action="accept", reviewer="ann")
        text = row["text"]
    assert recorded["action"] == "exclude"
    result = export_run(db, run1, str(tmp_path / "out"), CurateParams())
    users = [
        json.loads(line)["messages"][-2]["content"]
        for path in result.export_files
        for line in Path(path).read_text(encoding="utf-8").splitlines()
    ]
    assert users.count(text) == 1  # the first copy, not two
