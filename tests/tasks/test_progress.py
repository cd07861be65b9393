"""Issue 15, item 6: every long stage after embedding reports progress (out-of-fold fits, the layers pass,
neighbours) on a terminal, and is quiet when progress output is off."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_db

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.detect import DetectorSettings, detect_all
from labelgate.tasks import progress as progress_mod
from labelgate.tasks.progress import StageProgress, stage_reporter

pytestmark = pytest.mark.flow


def _rows(n_per_class: int = 12) -> tuple[list[str], list[str], list[str], np.ndarray]:
    rng = np.random.default_rng(0)
    words = {"a": ["apple", "pear", "plum"], "b": ["car", "bus", "train"]}
    ids, texts, labels, vectors = [], [], [], []
    for ci, (label, vocab) in enumerate(sorted(words.items())):
        for i in range(n_per_class):
            ids.append(f"{label}{i}")
            texts.append(" ".join(rng.choice(vocab, 3)) + f" {i}")
            labels.append(label)
            v = np.eye(2)[ci] + rng.normal(0, 0.2, 2)
            vectors.append(v / np.linalg.norm(v))
    return ids, texts, labels, np.asarray(vectors, np.float32)


def test_detection_reports_every_fit_and_the_neighbour_search() -> None:
    ids, texts, labels, vectors = _rows()
    calls: list[tuple[str, int, int]] = []
    detect_all(
        ids,
        texts,
        labels,
        vectors,
        settings=DetectorSettings(members=("embedding", "words"), n_folds=3, max_text_tokens=None),
        progress=lambda stage, done, total: calls.append((stage, done, total)),
    )
    fits = [(d, t) for s, d, t in calls if s == "out-of-fold fits"]
    assert fits == [(i, 6) for i in range(7)]  # 2 members x 3 folds, one report before and after each fit
    assert [c for c in calls if c[0] == "neighbours"] == [("neighbours", 0, 1), ("neighbours", 1, 1)]
    assert calls.index(("out-of-fold fits", 6, 6)) < calls.index(("neighbours", 0, 1))


def test_a_stage_prints_the_first_the_last_and_at_most_every_two_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELGATE_PROGRESS", "1")
    now = [0.0]
    out = io.StringIO()
    stage = StageProgress("r1", "out-of-fold fits", 80, stream=out, clock=lambda: now[0])
    for done in range(81):
        now[0] += 0.1  # 8 s in all
        stage.update(done)
    lines = out.getvalue().splitlines()
    assert lines[0] == "labelgate: out-of-fold fits 0/80 (0%, 0 s)"
    assert lines[-1] == "labelgate: out-of-fold fits 80/80 (100%, 8 s)"
    assert 4 <= len(lines) <= 6  # every 2 s, not 81 lines


def test_quiet_when_progress_is_off_or_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setenv("LABELGATE_PROGRESS", "0")
    stage_reporter("r1", stream=out)("neighbours", 0, 1)
    monkeypatch.delenv("LABELGATE_PROGRESS")
    monkeypatch.setattr(progress_mod.sys, "stderr", io.StringIO())  # not a terminal
    assert progress_mod.progress_enabled() is False
    stage_reporter("r1", stream=out)("neighbours", 1, 1)
    assert out.getvalue() == ""


def test_json_turns_progress_off_unless_asked(monkeypatch: pytest.MonkeyPatch, sample_csv: Path, tmp_path) -> None:
    """`labelgate run --json` is for programs: the flow sees LABELGATE_PROGRESS=0 (an explicit 1 stays)."""
    from click.testing import CliRunner

    from labelgate import cli
    from labelgate.commands import run as run_command

    seen: list[str | None] = []

    def fake_curate(*args, **kwargs):
        seen.append(progress_mod.os.environ.get("LABELGATE_PROGRESS"))
        raise RuntimeError("stop here")

    monkeypatch.setattr(run_command, "curate_in_process", fake_curate)
    monkeypatch.setattr(cli, "prepare_environment", lambda verbose: None)
    monkeypatch.setattr(run_command, "prepare_environment", lambda verbose: None)
    for env, expected in ((None, "0"), ("1", "1")):
        if env is None:
            monkeypatch.delenv("LABELGATE_PROGRESS", raising=False)
        else:
            monkeypatch.setenv("LABELGATE_PROGRESS", env)
        CliRunner().invoke(cli.main, ["run", str(sample_csv), "--json", "--db", str(tmp_path / "x.duckdb")])
        assert seen[-1] == expected


@pytest.mark.slow
def test_the_detect_task_prints_each_long_stage(warm_run: dict, tmp_path: Path, capsys, monkeypatch) -> None:
    """The detect stage of the sample run, progress on: out-of-fold fits and neighbours each print lines."""
    from labelgate.tasks.detect import detect

    monkeypatch.setenv("LABELGATE_PROGRESS", "1")
    db = copy_db(warm_run, tmp_path)
    params = CurateParams(detector_members=["embedding", "words"], n_folds=5)
    detect.fn(db, warm_run["run_id"], params)
    err = capsys.readouterr().err
    assert "labelgate: out-of-fold fits 0/10" in err and "labelgate: out-of-fold fits 10/10 (100%" in err
    assert "labelgate: neighbours…" in err and "labelgate: neighbours done (" in err
    with store.connect(db, read_only=True) as con:
        assert store.scalar(con, "SELECT count(*) FROM issues WHERE run_id = ?", [warm_run["run_id"]]) > 0
