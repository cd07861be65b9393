"""benchmarks/detection_seeds.py: runs the detection benchmark per seed and summarises it in one JSON line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parents[1]


def test_detection_seeds_summarises_one_run_per_seed(tmp_path: Path) -> None:
    data = REPO / "data"
    args = ["--train", data / "sample.csv", "--truth", data / "sample_truth.csv", "--test", data / "sample_test.csv"]
    script = REPO / "benchmarks" / "detection_seeds.py"
    done = subprocess.run(
        [sys.executable, script, "--seeds", "2", *args, "--folds", "4", "--cache", tmp_path / "cache"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1  # the per-seed runs' own lines are not printed
    out = json.loads(lines[0])
    assert out["seeds"] == 2 and [r["seed"] for r in out["runs"]] == [0, 1]
    assert {r["folds"] for r in out["runs"]} == {4}  # other arguments reach every run
    for key in ("labelgate_f1", "labelgate_p100", "f1_gain", "proxy_auto_gate"):
        values = [r[key] for r in out["runs"]]
        assert out[key] == {
            "mean": round(sum(values) / 2, 4),
            "min": round(min(values), 4),
            "max": round(max(values), 4),
        }
    held = out["targets_held"]
    assert held["of"] == 2
    assert held["f1_gain_at_least_0.05"] == sum(r["f1_gain"] >= 0.05 for r in out["runs"])
    # the bundled sample has 40 injected errors: precision@100 cannot reach 0.80 there
    assert held["precision_at_100_at_least_0.80"] == 0
    bad = subprocess.run(
        [sys.executable, REPO / "benchmarks" / "detection_seeds.py", "--seed", "3", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and "pass --seeds N, not --seed" in bad.stderr


@pytest.mark.slow
def test_gate_benchmark_export_beats_raw_on_seeded_synthetic_noise(tmp_path: Path) -> None:
    """The seeded end-to-end check of issue 12: on the bundled sample with 20% of its true labels flipped, the
    default auto gate's export has more right labels than raw, and both proxies trained on it beat raw."""
    script = REPO / "benchmarks" / "gate.py"
    done = subprocess.run(
        [sys.executable, script, "--sample", "--noise", "0.2", "--cache", tmp_path / "cache"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["dataset"] == "sample@0.2" and out["noise_rate"] > 0.15
    assert out["label_accuracy"]["auto"] > out["label_accuracy"]["raw"] + 0.1
    # it fixes rows more than it drops them: at most 5% go (exact duplicates, and doubtful label issues)
    assert out["rows_exported"]["auto"] >= 0.95 * out["rows"]
    for proxy in ("C1", "C4"):
        acc = out["proxies"][proxy]["accuracy"]
        assert acc["auto"] > acc["raw"], (proxy, acc)
        assert out["proxies"][proxy]["gap_recovered"]["auto"] > 0.5, (proxy, out["proxies"][proxy])
    assert sum(out["auto_decisions"].values()) >= out["label_issues_flagged"]


def test_scale_benchmark_prints_one_json_line():
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "scale.py"), "--rows", "3000", "--folds", "3", "--sample", "200"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},  # fast on shared cores; results are checked, not time
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["rows"] == 3000 and result["search"] == "exact"
    assert {"generate", "label", "neighbours", "detect", "total"} <= set(result["seconds"])
    assert result["peak_rss_gib"]["self"] > 0
    assert result["exact_duplicates"]["recall"] == 1.0 and result["near_duplicates"]["recall"] == 1.0
    assert result["search_vs_exact"]["nearest_recall"] == 1.0
    assert result["label_issues"]["recall"] > 0.5


def _pipeline_300_rows(*options: str) -> dict:
    """``benchmarks/pipeline.py --rows 300 --classes 10 [options]`` in a child process: its one JSON line."""
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "pipeline.py"), "--rows", "300", "--classes", "10", *options],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


@pytest.mark.slow
def test_pipeline_benchmark_runs_labelgate_and_the_recipe_on_generated_texts() -> None:
    """benchmarks/pipeline.py end to end on a small size: one JSON line with both methods' figures."""
    out = _pipeline_300_rows()
    assert (out["rows"], out["classes"], out["noise_rate"]) == (300, 10, 0.1)
    lg, recipe = out["labelgate"], out["recipe"]
    assert lg["wall_seconds"] > 0 and lg["peak_rss_gib"] > 0 and lg["label_issues"] == lg["quality"]["flagged"]
    # the whole tree (the run, Prefect's server, any detect worker) holds at least what its largest process held
    assert lg["peak_tree_rss_gib"] >= lg["peak_rss_gib"] * 0.9
    # PSS splits each shared page between the processes that map it: never more than their summed RSS
    assert 0 < lg["peak_tree_pss_gib"] <= lg["peak_tree_rss_gib"]
    # the peak's composition: the run itself is in it, every process has a role, and the parts sum to the peak
    parts = lg["peak_tree_parts"]
    assert "run" in [role for role, _ in parts]
    assert {role for role, _ in parts} <= {"run", "prefect-server", "worker", "other"}
    assert [gib for _, gib in parts] == sorted((gib for _, gib in parts), reverse=True)
    assert abs(sum(gib for _, gib in parts) - lg["peak_tree_rss_gib"]) <= 0.01 * len(parts) + 0.01
    for quality in (lg["quality"], recipe["quality"]):
        assert 0.0 <= quality["precision"] <= 1.0 and 0.0 <= quality["recall"] <= 1.0
    assert out["ratio"] == round(lg["wall_seconds"] / recipe["wall_seconds"], 2)


@pytest.mark.slow
def test_pipeline_benchmark_stubs_the_embedding_for_scale_runs_and_claims_no_quality() -> None:
    """--stub-embedding: the whole run at its size with stand-in vectors; no quality figure, no recipe."""
    out = _pipeline_300_rows("--stub-embedding")
    lg = out["labelgate"]
    assert out["embedding"] == "stubbed" and "recipe" not in out and "quality" not in lg
    assert lg["label_issues"] >= 0 and lg["seconds_by_stage"]["detect"] > 0 and lg["peak_tree_pss_gib"] > 0


def test_the_stub_embedding_has_the_models_shape_and_is_deterministic() -> None:
    spec = importlib.util.spec_from_file_location("stub_run", REPO / "benchmarks" / "stub_run.py")
    stub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stub)
    texts = ["refund my card", "where is my parcel", "refund my card please", ""]
    vectors, layers = stub.stub_pair(texts)
    assert vectors.shape == layers.shape == (4, 384) and vectors.dtype == layers.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, rtol=1e-5)
    again, _ = stub.stub_pair(texts)
    np.testing.assert_array_equal(vectors, again)
    assert vectors[0] @ vectors[2] > vectors[0] @ vectors[1]  # texts sharing words are closer


def test_pipeline_benchmark_reads_a_real_folder_and_scores_it_by_its_truth_file(tmp_path: Path) -> None:
    """``--data DIR``: the first ``--rows`` rows of ``train.csv``, each with its true label from ``train_truth.csv``
    (matched by id, not by position)."""

    spec = importlib.util.spec_from_file_location("pipeline_bench", REPO / "benchmarks" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "train.csv").write_text("id,text,label,extra\na,first text,x,1\nb,second text,y,2\nc,third,x,3\n")
    (tmp_path / "train_truth.csv").write_text("id,true_label\nc,y\nb,y\na,x\n")
    frame, truth = module.read_data(tmp_path, 2)
    assert list(frame.columns) == ["id", "text", "label"]
    assert list(frame["id"]) == ["a", "b"]
    assert list(truth) == ["x", "y"]
    frame, truth = module.read_data(tmp_path, None)
    assert list(truth) == ["x", "y", "y"]


def _sleep(seconds: float) -> None:  # a spawned child's target (module level: picklable)
    import time

    time.sleep(seconds)


def test_tree_sampler_names_each_process_of_the_peak() -> None:
    """``TreeRss.peak_parts``: this process is the ``run``, a child started by multiprocessing's spawn a ``worker``;
    the parts, largest first, sum to the summed-RSS peak."""
    import multiprocessing
    import time

    spec = importlib.util.spec_from_file_location("pipeline_bench", REPO / "benchmarks" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    child = multiprocessing.get_context("spawn").Process(target=_sleep, args=(3.0,))
    child.start()
    try:
        time.sleep(1.5)  # the child is running its target
        sampler = module.TreeRss(os.getpid(), interval=0.1)
        time.sleep(0.5)
        sampler.stop()
    finally:
        child.join()
    roles = [role for role, _ in sampler.peak_parts]
    assert roles.count("run") == 1 and "worker" in roles
    gibs = [gib for _, gib in sampler.peak_parts]
    assert gibs == sorted(gibs, reverse=True)
    assert abs(sum(gibs) - sampler.peak_gib) <= 0.001 * len(gibs) + 0.001
