"""`--runner dask`: the curate flow with embedding and scoring sharded over a Dask LocalCluster gives the default
runner's results (same vectors, issues, decisions, export bytes), the shards really run on the workers, and a bad
scheduler address or a missing extra is one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import copy_db

from labelgate import embedding, runners, store
from labelgate.cli import main
from labelgate.config import CurateParams
from labelgate.errors import ConfigError
from labelgate.tasks.embed import cache_key, embed_shard, plan_shards, store_shards

pytestmark = pytest.mark.flow

pytest.importorskip("prefect_dask", reason="the dask extra is part of .[test]")


def _issues(db: str, run_id: str) -> pd.DataFrame:
    with store.connect(db, read_only=True) as con:
        return store.query_df(
            con,
            "SELECT row_id, issue_type, is_issue, given_label, suggested_label, related_row_id, score, suggested_prob "
            "FROM issues WHERE run_id = ? ORDER BY row_id, issue_type",
            [run_id],
        )


def _decisions(db: str, run_id: str) -> pd.DataFrame:
    with store.connect(db, read_only=True) as con:
        return store.query_df(
            con,
            "SELECT row_id, action, label, source FROM decisions WHERE run_id = ? ORDER BY row_id",
            [run_id],
        )


def _probs(db: str, run_id: str) -> np.ndarray:
    with store.connect(db, read_only=True) as con:
        frame = store.query_df(con, "SELECT row_id, probs FROM predictions WHERE run_id = ? ORDER BY row_id", [run_id])
    return np.array([np.asarray(p, dtype=np.float64) for p in frame["probs"]])


def _vectors(db: str, run_id: str) -> np.ndarray:
    with store.connect(db, read_only=True) as con:
        rows = store.valid_rows(con, run_id)
        return store.get_embeddings(con, cache_key(CurateParams()), list(rows["text_sha256"]))


@pytest.fixture(scope="module")
def dask_run(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path) -> dict:
    """`labelgate run --runner dask` (LocalCluster, 2 worker processes) on the sample, as a user runs it: a real
    process with its own ephemeral Prefect API, which the workers must be told about."""
    base = tmp_path_factory.mktemp("dask")
    env = {**os.environ, "PREFECT_HOME": str(base / "prefect-home")}
    env.pop("PREFECT_API_URL", None)  # the harness's API belongs to the test process
    env.pop("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", None)  # set by conftest; a user's shell does not have it
    db, out = base / "dask.duckdb", base / "exports"
    args = ["run", str(sample_csv), "--db", str(db), "--out", str(out), "--json"]
    res = subprocess.run(
        [sys.executable, "-m", "labelgate.cli", *args, "--runner", "dask", "--dask-workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    with store.connect(str(db), read_only=True) as con:
        metrics = store.run_record(con, summary["run_id"])["metrics_json"]
    return {**summary, "metrics": metrics, "db_path": str(db), "stderr": res.stderr}


@pytest.mark.slow
def test_dask_run_gives_the_default_runs_results(warm_run: dict, dask_run: dict) -> None:
    ref, got = warm_run, dask_run
    assert "Traceback" not in got["stderr"]
    assert got["texts_embedded"] == ref["texts_embedded"] == 394  # both embedded every text themselves
    # the embedding shards are whole encode batches: bitwise the default run's vectors
    assert np.array_equal(_vectors(got["db_path"], got["run_id"]), _vectors(ref["db_path"], ref["run_id"]))
    a, b = _issues(ref["db_path"], ref["run_id"]), _issues(got["db_path"], got["run_id"])
    exact = ["row_id", "issue_type", "is_issue", "given_label", "suggested_label", "related_row_id"]
    pd.testing.assert_frame_equal(a[exact], b[exact])
    np.testing.assert_allclose(b["score"].astype(float), a["score"].astype(float), rtol=0, atol=1e-9)
    np.testing.assert_allclose(b["suggested_prob"].astype(float), a["suggested_prob"].astype(float), atol=1e-9)
    assert a["is_issue"].sum() > 40  # a real comparison: label issues, duplicates, conflicts
    np.testing.assert_allclose(_probs(got["db_path"], got["run_id"]), _probs(ref["db_path"], ref["run_id"]), atol=1e-9)
    pd.testing.assert_frame_equal(_decisions(ref["db_path"], ref["run_id"]), _decisions(got["db_path"], got["run_id"]))
    assert got["decisions"] == ref["decisions"]
    for ref_file, got_file in zip(ref["export_files"], got["export_files"][:-1]):  # the last one is the manifest
        assert Path(got_file).name == Path(ref_file).name
        assert Path(got_file).read_bytes() == Path(ref_file).read_bytes()
    manifests = [json.loads(Path(m["manifest"]).read_text()) for m in (ref, got)]
    for m in manifests:
        del m["run_id"], m["created_at"]
    # the manifest records every setting: the runner's own are the only ones that differ
    settings = [m.pop("settings") for m in manifests]
    differ = {k for k in settings[0].keys() | settings[1].keys() if settings[0].get(k) != settings[1].get(k)}
    assert differ <= {"runner", "dask_address", "dask_workers"} and "runner" in differ, differ
    assert manifests[0] == manifests[1]


@pytest.mark.slow
def test_dask_shards_ran_on_the_workers(dask_run: dict) -> None:
    placed = dask_run["metrics"]["dask"]
    workers = placed["workers"]
    assert len(workers) == 2 and placed["threads"] == 2
    # every embed shard and out-of-fold job ran inside a Dask worker (None = not in a worker), on both workers
    assert set(placed["embed_shards"]) == set(workers) and sum(placed["embed_shards"].values()) == 2
    jobs = len(CurateParams().detector_members) * dask_run["metrics"]["n_folds"]  # one per (member, fold)
    assert set(placed["oof_jobs"]) == set(workers) and sum(placed["oof_jobs"].values()) == jobs
    assert all(w.startswith("tcp://127.0.0.1:") for w in workers)


@pytest.mark.slow
def test_plain_flow_with_runner_dask_opens_its_own_cluster(
    prefect_harness: None, dask_run: dict, sample_csv: Path, tmp_path: Path
) -> None:
    """A deployment or library run of the plain flow (no task runner given) with params.runner='dask' shards too."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from labelgate.flows.curate import curate

    db = copy_db(dask_run, tmp_path)  # embeddings cached: this run scores only
    with store.connect(db) as con:  # not reusing the earlier run's detection (same rows and settings)
        store.set_detection_key(con, dask_run["run_id"], "forgotten")
    params = CurateParams(runner="dask", dask_workers=2)
    threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONHASHSEED")}
    metrics = curate(str(sample_csv), db_path=db, out_dir=str(tmp_path / "out"), params=params)
    # dask's nannies write their workers' variables into this process's environment; the runner puts it back
    assert {k: os.environ.get(k) for k in threads} == threads
    assert metrics["texts_embedded"] == 0 and metrics["dask"]["embed_shards"] == {}
    jobs = len(params.detector_members) * metrics["n_folds"]  # automatic: 20 on the 397-row sample
    assert sum(metrics["dask"]["oof_jobs"].values()) == jobs and None not in metrics["dask"]["oof_jobs"]
    a, b = _issues(dask_run["db_path"], dask_run["run_id"]), _issues(db, metrics["run_id"])
    pd.testing.assert_frame_equal(
        a.drop(columns=["score", "suggested_prob"]), b.drop(columns=["score", "suggested_prob"])
    )
    # the workers' task runs are recorded in the flow's Prefect API, under the flow run
    with store.connect(db, read_only=True) as con:
        flow_run_id = store.run_record(con, metrics["run_id"])["prefect_flow_run_id"]
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    job_runs = [r for r in runs if r.name.startswith("oof-job")]
    assert len(job_runs) == jobs and all(r.state.is_completed() for r in job_runs)


def test_bad_dask_address_is_one_clear_line(prefect_harness: None, sample_csv: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main,
        [
            "run",
            str(sample_csv),
            "--db",
            str(tmp_path / "x.duckdb"),
            "--runner",
            "dask",
            "--dask-address",
            "tcp://127.0.0.1:1",
        ],
    )
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("labelgate: error:")]
    assert len(errors) == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in errors[0] and "dask scheduler" in errors[0]
    with store.connect(str(tmp_path / "x.duckdb"), read_only=True) as con:
        run = store.run_record(con, store.resolve_run(con, "latest"))
        n_rows = store.scalar(con, "SELECT count(*) FROM rows WHERE run_id = ?", [run["run_id"]])
    assert run["status"] == "failed" and "cannot reach the Dask scheduler" in run["message"]
    assert n_rows == 0  # it failed before ingesting anything


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dask-workers", "3"], "--dask-workers is an option of --runner dask"),
        (["--dask-address", "tcp://127.0.0.1:8786"], "--dask-address is an option of --runner dask"),
        (["--runner", "dask", "--dask-address", "no port"], "must look like tcp://HOST:PORT, got 'no port'"),
        (["--runner", "dask", "--dask-workers", "0"], "--dask-workers"),
        (["--runner", "spark"], "'spark' is not one of 'default', 'dask'"),
    ],
)
def test_bad_runner_options_are_one_line(sample_csv: Path, tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(main, ["run", str(sample_csv), "--db", str(tmp_path / "x.duckdb"), *args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and message in res.output
    assert not (tmp_path / "x.duckdb").exists()  # refused before any run started


def test_runner_dask_without_the_extra_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, sample_csv: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # what an install without the extra has: no module
    with pytest.raises(ConfigError, match=r"pip install 'labelgate\[dask\]'"):
        runners.task_runner(CurateParams(runner="dask"))
    res = CliRunner().invoke(main, ["run", str(sample_csv), "--db", str(tmp_path / "x.duckdb"), "--runner", "dask"])
    assert res.exit_code == 2
    errors = [line for line in res.output.splitlines() if line.startswith("labelgate: error:")]
    assert len(errors) == 1 and "pip install 'labelgate[dask]'" in errors[0] and "prefect_dask" in errors[0]


def test_default_runner_is_the_plain_flow_and_dask_builds_the_asked_cluster() -> None:
    from prefect_dask import DaskTaskRunner

    from labelgate.flows.curate import curate, curate_flow

    assert runners.task_runner(CurateParams()) is None and curate_flow(CurateParams()) is curate
    remote = runners.task_runner(CurateParams(runner="dask", dask_address="tcp://10.0.0.5:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    assert not remote.cluster_kwargs
    local = runners.task_runner(CurateParams(runner="dask", dask_workers=3))
    assert local.address is None
    assert {k: local.cluster_kwargs[k] for k in ("n_workers", "threads_per_worker", "processes")} == {
        "n_workers": 3,
        "threads_per_worker": 1,
        "processes": True,
    }
    flow = curate_flow(CurateParams(runner="dask"))
    assert flow.name == "curate" and isinstance(flow.task_runner, DaskTaskRunner)


def test_remote_workers_need_a_reachable_prefect_api() -> None:
    local_workers = ["tcp://127.0.0.1:40001", "tcp://localhost:40002"]
    runners.check_api_reachable(local_workers, "http://127.0.0.1:4200/api")  # all on this machine: fine
    runners.check_api_reachable(["tcp://192.0.2.7:40001"], "http://192.0.2.1:4200/api")  # a shared server: fine
    with pytest.raises(ConfigError, match=r"workers on 192\.0\.2\.7 cannot reach .*PREFECT_API_URL"):
        runners.check_api_reachable([*local_workers, "tcp://192.0.2.7:40001"], "http://127.0.0.1:4200/api")


def test_shards_are_whole_encode_batches_with_the_same_vectors() -> None:
    """The sharding contract: encoding each planned batch alone reproduces encode() over the whole chunk bitwise."""
    frame = pd.read_csv(Path(__file__).resolve().parents[2] / "data" / "sample.csv", dtype=str, keep_default_na=False)
    texts = list(dict.fromkeys(t for t in frame["text"] if t.strip()))[:200]
    model = CurateParams().model
    backend = embedding.resolve_backend(model, "auto")
    whole = embedding.encode(model, texts, batch_size=16, backend="auto")
    text_of = {str(i): t for i, t in enumerate(texts)}
    shards = plan_shards(list(text_of), text_of, batch_size=16, backend=backend, n_shards=3)
    assert len(shards) == 3
    assert sorted(h for s in shards for h in s.hashes) == sorted(text_of)  # every text once
    for shard in shards:
        got = np.vstack([embedding.encode(model, b, batch_size=len(b), backend="auto") for b in shard.batches])
        assert np.array_equal(got, whole[[int(h) for h in shard.hashes]])


def test_shards_bring_the_middle_layers_of_the_same_pass_and_store_caches_both(tmp_path: Path) -> None:
    """With the layers member the shard tasks return the middle-layer features too, and store_shards caches them
    under the layers key in the chunk's transaction (the layers stage then has nothing to compute)."""
    frame = pd.read_csv(Path(__file__).resolve().parents[2] / "data" / "sample.csv", dtype=str, keep_default_na=False)
    texts = list(dict.fromkeys(t for t in frame["text"] if t.strip()))[:40]
    params = CurateParams()
    model = params.model
    backend = embedding.resolve_backend(model, "auto")
    text_of = {str(i): t for i, t in enumerate(texts)}
    shards = plan_shards(list(text_of), text_of, batch_size=16, backend=backend, n_shards=2)
    results = [embed_shard.fn(model, "auto", s.batches, with_layers=True) for s in shards]
    plain = [embed_shard.fn(model, "auto", s.batches) for s in shards]
    _, whole = embedding.encode_with_layers(model, texts, batch_size=16, backend="auto")  # the default runner's
    assert whole is not None
    for shard, result, alone in zip(shards, results, plain):
        assert np.array_equal(result.vectors, alone.vectors) and alone.layers is None
        assert result.layers is not None and result.layers.shape == (len(shard.hashes), 384)
        assert np.array_equal(result.layers, whole[[int(h) for h in shard.hashes]])  # same batches: bitwise
        reference = embedding.encode_layers(model, [text_of[h] for h in shard.hashes])
        cos = (
            (result.layers * reference).sum(1)
            / np.linalg.norm(result.layers, axis=1)
            / np.linalg.norm(reference, axis=1)
        )
        assert cos.min() >= embedding.BF16_MIN_COSINE
    db = str(tmp_path / "shards.duckdb")
    with store.connect(db) as con:
        store.migrate(con)
    assert store_shards.fn(db, params, shards, results) == len(texts)
    with store.connect(db) as con:
        assert store.cached_hashes(con, embedding.layers_key(model), list(text_of)) == set(text_of)
        assert store.cached_hashes(con, cache_key(params), list(text_of)) == set(text_of)
