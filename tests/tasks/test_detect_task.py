"""The detect and auto-gate tasks on the real sample run; issues_frame and `labelgate issues` on their output."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import copy_db

from labelgate import store
from labelgate.cli import main
from labelgate.config import CurateParams
from labelgate.core.issues import ISSUE_TYPES
from labelgate.services import reports

pytestmark = [pytest.mark.slow, pytest.mark.flow]


def test_every_valid_row_has_a_label_row_and_flags_carry_reasons(warm_run):
    with store.connect(warm_run["db_path"], read_only=True) as con:
        run_id = warm_run["run_id"]
        valid = store.valid_rows(con, run_id)
        issues = store.query_df(con, "SELECT * FROM issues WHERE run_id = ?", [run_id])
        frame = reports.issues_frame(con, run_id, flagged_only=False)
    assert set(issues["issue_type"]) <= set(ISSUE_TYPES)
    label = issues[issues["issue_type"] == "label"]
    assert len(label) == len(valid) and set(label["row_id"]) == set(valid["row_id"])
    flagged = issues[issues["is_issue"]]
    assert flagged["reason"].notna().all()
    assert warm_run["label_issues"] == int(label["is_issue"].sum())
    assert warm_run["issues_by_type"]["exact_duplicate"] >= 1
    kinds = label.loc[label["is_issue"], "label_kind"]
    assert set(kinds) <= {"mislabelled", "ambiguous"} and label["ambiguity"].between(0, 1).all()
    assert warm_run["label_issues_by_kind"] == kinds.value_counts().to_dict()
    assert sum(warm_run["label_issues_by_kind"].values()) == warm_run["label_issues"]
    assert len(frame) == len(valid) and frame["flagged"].iloc[0]
    assert list(frame.columns[:6]) == ["id", "text", "given_label", "suggested_label", "label_score", "is_label_issue"]
    assert frame["severity"].is_monotonic_decreasing or frame["flagged"].is_monotonic_decreasing
    assert all(isinstance(r, list) for r in frame["reasons"])


def test_injected_errors_are_found(warm_run, sample_truth):
    truth = pd.read_csv(sample_truth, dtype=str, keep_default_na=False)
    errors = set(truth.loc[truth["is_label_error"] == "True", "id"])
    with store.connect(warm_run["db_path"], read_only=True) as con:
        frame = reports.issues_frame(con, warm_run["run_id"])
    flagged = set(frame.loc[frame["is_label_issue"], "id"])
    assert len(errors & flagged) >= 0.9 * len(errors)
    assert len(errors & flagged) >= 0.6 * len(flagged)


def test_issues_cli_csv_contract(warm_run):
    result = CliRunner().invoke(main, ["issues", "--db", warm_run["db_path"], "--run", "latest", "--format", "csv"])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(io.StringIO(result.output), dtype=str, keep_default_na=False)
    for col in ("id", "text", "given_label", "suggested_label", "label_score", "is_label_issue", "reasons"):
        assert col in df.columns
    for t in ISSUE_TYPES:
        if t != "label":
            assert f"is_{t}_issue" in df.columns and f"{t}_score" in df.columns
    dup = df[df["is_exact_duplicate_issue"] == "True"]
    assert not dup.empty and dup["reasons"].str.contains("exact duplicate of row").all()


def test_auto_gate_excludes_later_duplicates(warm_run):
    with store.connect(warm_run["db_path"], read_only=True) as con:
        run_id = warm_run["run_id"]
        dups = store.query_df(
            con, "SELECT row_id FROM issues WHERE run_id = ? AND issue_type = 'exact_duplicate' AND is_issue", [run_id]
        )
        decisions = store.latest_decisions(con, run_id).set_index("row_id")
    assert not dups.empty
    for row_id in dups["row_id"]:
        assert decisions.loc[row_id, "action"] == "exclude"
        assert decisions.loc[row_id, "reason"].startswith("exact_duplicate")
    assert decisions["reason"].notna().all()


def test_detect_with_a_test_file_flags_leaks(warm_run, tmp_path, sample_csv):
    from labelgate.tasks.detect import detect
    from labelgate.tasks.gate import auto_gate

    db = copy_db(warm_run, tmp_path)
    rows = pd.read_csv(sample_csv, dtype=str, keep_default_na=False)
    leak = rows[rows["text"].str.strip() != ""].iloc[[3, 8]]
    test_file = tmp_path / "test.csv"
    pd.DataFrame(
        {"id": ["x1", "x2"], "text": [leak["text"].iloc[0].upper(), leak["text"].iloc[1]], "label": "a"}
    ).to_csv(test_file, index=False)
    params = CurateParams(test_path=str(test_file))
    metrics = detect.fn(db, warm_run["run_id"], params)
    assert metrics.issues_by_type is not None and metrics.issues_by_type["leakage"] >= 2
    auto_gate.fn(db, warm_run["run_id"], params)
    with store.connect(db, read_only=True) as con:
        leaks = store.query_df(
            con,
            "SELECT row_id, related_row_id, reason FROM issues "
            "WHERE run_id = ? AND issue_type = 'leakage' AND is_issue",
            [warm_run["run_id"]],
        ).set_index("row_id")
        decisions = store.latest_decisions(con, warm_run["run_id"]).set_index("row_id")
    assert leaks.loc[leak["id"].iloc[0], "related_row_id"] == "x1"
    assert decisions.loc[leak["id"].iloc[1], "action"] == "exclude"


def test_approximations_name_every_cap_that_applied():
    from labelgate.core.neighbours import EXACT_MAX_ROWS
    from labelgate.core.probs import Probabilities
    from labelgate.tasks.detect import approximations

    plain = Probabilities(probs=np.eye(2), classes=["a", "b"], labels=np.array([0, 1]), method="x")
    capped = Probabilities(
        probs=np.eye(2),
        classes=["a", "b"],
        labels=np.array([0, 1]),
        method="x",
        train_rows_cap=40_000,
        char_features_cap=20_000,
        layers_fixed_C=0.005,
    )
    assert approximations(1_000, plain) is None and approximations(1_000, None) is None
    assert approximations(1_000, capped) == {"train_rows_per_fold": 40_000, "char_features": 20_000, "layers_C": 0.005}
    assert approximations(EXACT_MAX_ROWS + 1, plain) == {"neighbours": "approximate"}


def test_detect_in_worker_processes_maps_its_inputs_from_files_and_stores_the_same_issues(
    warm_run, tmp_path, sample_csv, monkeypatch
):
    from labelgate import parallel
    from labelgate.tasks import detect as detect_task

    rows = pd.read_csv(sample_csv, dtype=str, keep_default_na=False)
    test_file = tmp_path / "test.csv"  # a test file: another detection key than the warm run's, so detect runs
    rows.iloc[[3]].assign(id="x1").to_csv(test_file, index=False)
    params = CurateParams(test_path=str(test_file))
    mapped: list[list] = []

    def recording(arrays, files):  # the real map_to_files, its results kept to look at
        got = parallel.map_to_files(arrays, files)
        mapped.append(got)
        return got

    monkeypatch.setattr(detect_task, "map_to_files", recording)
    stored = {}
    for workers in ("1", "2"):
        monkeypatch.setenv(parallel.WORKERS_ENV, workers)
        (tmp_path / workers).mkdir()
        db = copy_db(warm_run, tmp_path / workers)
        detect_task.detect.fn(db, warm_run["run_id"], params)
        with store.connect(db, read_only=True) as con:
            stored[workers] = store.query_df(
                con,
                "SELECT issue_type, row_id, is_issue, score, suggested_label, related_row_id FROM issues "
                "WHERE run_id = ? ORDER BY issue_type, row_id, related_row_id",
                [warm_run["run_id"]],
            )
    assert len(mapped) == 1  # only the run with worker processes maps its inputs
    vectors, layers = mapped[0]
    assert isinstance(vectors, np.memmap) and not vectors.flags.writeable
    assert layers is None or isinstance(layers, np.memmap)
    assert not Path(vectors.filename).exists()  # removed once the stage is done
    assert (stored["1"]["issue_type"] == "leakage").any()
    pd.testing.assert_frame_equal(stored["1"], stored["2"])
