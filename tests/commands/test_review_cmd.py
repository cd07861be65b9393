"""``labelgate review``: the terminal review, driven through a real pseudo-terminal and through a pipe."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import copy_db

from labelgate import store
from labelgate.cli import main
from labelgate.commands.review import safe_text
from labelgate.services import review

pytestmark = pytest.mark.flow


@pytest.fixture
def db(warm_run: dict, tmp_path: Path) -> str:
    """A copy of the warm run without decisions."""
    path = copy_db(warm_run, tmp_path)
    with store.connect(path) as con:
        con.execute("DELETE FROM decisions")
    return path


def _state(db: str) -> tuple[list[str], dict]:
    with store.connect(db) as con:
        run_id = store.resolve_run(con)
        order = list(review.review_items(con, run_id)["id"])
        latest = store.latest_decisions(con, run_id).set_index("row_id").to_dict(orient="index")
    return order, latest


def test_keys_in_a_real_terminal(db: str) -> None:
    pexpect = pytest.importorskip("pexpect", reason="the pty test needs pexpect")
    order, _ = _state(db)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "labelgate.cli", "review", "--db", db, "--reviewer", "pat"],
        env={**os.environ, "TERM": "dumb"},
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 140),
    )
    try:
        child.expect(r"0 / \d+ reviewed · row 1 of")
        child.expect(r"\[W\] accept suggestion")
        child.send("w")  # single key, no Enter: accept row 1's suggestion
        child.expect(r"1 / \d+ reviewed · row 2 of")
        child.send("j")
        child.expect("row 3 of")
        child.send("k")
        child.expect("row 2 of")
        child.send("e")
        child.expect(r"2 / \d+ reviewed · row 3 of")
        child.send("4")  # class 4 = technical
        child.expect(r"row 4 of")
        child.send("u")
        child.expect("undid 1 decision")
        child.send("f")
        child.expect(r"\[C\] cancel")
        child.send("c")
        child.expect("finish cancelled")
        child.send("x")
        child.expect("quit: 2 decisions saved")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    _, latest = _state(db)
    with store.connect(db) as con:
        first = review.review_items(con, store.resolve_run(con)).iloc[0]
    # accepting the suggestion relabels; a row whose suggestion is its given label (e.g. a duplicate) is kept
    accepted = "relabel" if first["suggested_label"] != first["given_label"] else "keep"
    assert latest[order[0]]["action"] == accepted and latest[order[0]]["reviewer"] == "pat"
    assert latest[order[1]]["action"] == "exclude"
    assert latest[order[2]]["reason"].startswith("undo of #")  # the relabel to technical was undone


def test_keys_from_a_pipe_and_finish_of_a_run_that_is_not_paused(db: str) -> None:
    order, _ = _state(db)
    result = CliRunner().invoke(main, ["review", "--db", db, "--reviewer", "bot"], input="q\nw e\nff")
    assert result.exit_code == 0, result.output
    assert "is not waiting for a review" in result.output and "labelgate export" in result.output
    _, latest = _state(db)
    assert [latest[i]["action"] for i in order[:3]] == ["keep", "relabel", "exclude"]
    assert {latest[i]["reviewer"] for i in order[:3]} == {"bot"}


def test_end_of_input_quits_and_keeps_decisions(db: str) -> None:
    result = CliRunner().invoke(main, ["review", "--db", db], input="e")
    assert result.exit_code == 0
    assert "quit: 1 decisions saved" in result.output


def test_texts_cannot_drive_the_terminal() -> None:
    assert safe_text("red \x1b[31malert\x1b[0m\x07 ok\nnext") == "red \\x1b[31malert\\x1b[0m\\x07 ok\nnext"
    assert safe_text("rtl \u202e txt") == "rtl � txt"
    assert safe_text(None) == ""


# --- issue 15, item 14: help without markup, reasons wrapped at words, a quit that says how to export again ---------


def _drive(db: str, keys: str, *, width: int) -> str:
    from labelgate.commands.review import TerminalReview

    out: list[str] = []
    pending = iter(keys)
    TerminalReview(
        db, "latest", reviewer="pat", read_key=lambda: next(pending, None), write=out.append, width=width
    ).run()
    return "".join(out)


def test_help_lists_the_keys_without_docstring_markup(db: str) -> None:
    out = _drive(db, "?x", width=100)
    assert "``" not in out and "labelgate review" in out
    assert "  W      accept the suggestion" in out and "  X      quit: every decision is already saved" in out


def test_reasons_wrap_at_word_boundaries(db: str) -> None:
    with store.connect(db) as con:
        run_id = store.resolve_run(con)
        reasons = [r for rs in review.review_items(con, run_id)["reasons"] for r in rs]
    out = _drive(db, "jjjjjx", width=44)
    words = {w for line in out.splitlines() for w in line.split()}
    shown = [r for r in reasons if r.split()[0] in words]
    assert shown
    for reason in shown[:3]:
        for word in reason.split():  # every word of a shown reason is whole on some line, never cut in two
            if len(word) < 40:
                assert word in words, (word, out)
    body = [line for line in out.splitlines() if line.startswith("  ") and not line.startswith(("  [", "  labelgate"))]
    assert body and all(len(line) <= 44 for line in body), [line for line in body if len(line) > 44]


def test_quitting_a_completed_run_says_how_to_write_the_files_again(db: str) -> None:
    out = _drive(db, "qx", width=100)
    assert "quit: 1 decisions saved" in out
    assert f"labelgate export --db {db} --run " in out


def test_undecided_status_steps_through_the_rest_and_the_counts_come_from_the_progress(db: str) -> None:
    from labelgate.commands.review import TerminalReview

    order, _ = _state(db)
    assert "quit: 1 decisions saved" in _drive(db, "qx", width=100)  # decides order[0]
    out: list[str] = []
    keys = iter("fcx")  # finish prompt, cancel, quit
    session = TerminalReview(
        db, "latest", reviewer="pat", read_key=lambda: next(keys, None), write=out.append, status="undecided", width=100
    )
    assert session.order == order[1:] and session.progress is None
    session.render()  # before the first refresh: no counts yet
    assert f"0 / 0 reviewed · row 1 of {len(order) - 1}" in out[-1]
    session.run()
    assert isinstance(session.progress, review.ReviewProgress) and session.progress.reviewed == 1
    text = "".join(out)
    assert f"1 / {len(order)} reviewed · row 1 of {len(order) - 1}" in text
    assert f"finish: 1 of {len(order)} flagged rows reviewed." in text and "finish cancelled" in text
    assert f"quit: 1 decisions saved for run {session.run_id}" in text


def test_a_label_issue_names_its_kind_and_the_order_is_the_queues(db: str) -> None:
    with store.connect(db) as con:
        run_id = store.resolve_run(con)
        items = review.review_items(con, run_id)
    labels = items[items["issue_types"].map(lambda t: "label" in t)]
    kinds = labels["label_kind"].tolist()
    assert kinds and kinds == sorted(kinds, key=lambda k: k == "ambiguous")  # mislabelled first
    first = items.index[items["id"] == labels["id"].iloc[0]][0]
    result = CliRunner().invoke(main, ["review", "--db", db], input="j" * first + "x")
    assert result.exit_code == 0, result.output
    name = "likely mislabelled" if kinds[0] == "mislabelled" else "ambiguous"
    assert f"label ({name})" in result.output
