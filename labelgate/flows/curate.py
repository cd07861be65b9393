"""The ``curate`` flow: ingest → validate → embed → detect → gate → export, one ``run_id`` per flow run.

The flow only composes tasks. Every task reads its inputs from DuckDB and writes its outputs
there, so a stage can be inspected (``labelgate issues``, the web pages) while or after it runs.

With ``params.runner == "dask"`` the embed and detect stages are sharded over a Dask cluster
(:mod:`labelgate.runners`): the tasks that touch DuckDB still run here, in the flow's process, and the
shard tasks (``embed-shard``, ``oof-job``) are submitted to the workers with their inputs as arguments.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from labelgate.batches import input_files, is_batch_input
from labelgate.config import CurateParams
from labelgate.core.metrics import DetectMetrics, EmbedMetrics, RunMetrics
from labelgate.errors import ConfigError, LabelgateError
from labelgate.flows.review_gate import human_gate
from labelgate.runners import describe, shard_runner, task_runner, worker_threads
from labelgate.services.notify import on_curate_failure
from labelgate.services.review_gate import release_review_server
from labelgate.startup import startup_seconds
from labelgate.tasks.annotators import annotators
from labelgate.tasks.artifacts import EmbeddingProgress, publish_artifacts
from labelgate.tasks.detect import detect, finish_scoring, oof_job, plan_scoring, reuse_detection
from labelgate.tasks.embed import (
    chunk_size,
    embed,
    embed_shard,
    embed_work,
    finish_embed,
    plan_shards,
    report_commit,
    resolve_backend,
    store_shards,
    wants_layers,
)
from labelgate.tasks.evaluate import evaluate
from labelgate.tasks.export import export
from labelgate.tasks.gate import auto_gate
from labelgate.tasks.ingest import ingest
from labelgate.tasks.memory import carry_memory
from labelgate.tasks.progress import stage_reporter
from labelgate.tasks.quality import quality_gate
from labelgate.tasks.run import finish_run, start_run
from labelgate.tasks.validate import validate

#: keys of the flow's result that `labelgate run --json` always prints
SUMMARY_KEYS = (
    "run_id",
    "rows_in",
    "rows_valid",
    "rows_quarantined",
    "label_issues",
    "exported_train",
    "exported_val",
    "export_files",
)


@flow(name="curate", log_prints=True, validate_parameters=True, on_failure=[on_curate_failure])
def curate(
    input_path: str,
    db_path: str = "labelgate.duckdb",
    out_dir: str = "exports",
    params: CurateParams | None = None,
) -> dict[str, Any]:
    """Curate one labelled text file into fine-tuning files; return the run's metrics as JSON
    (:meth:`labelgate.core.metrics.RunMetrics.to_json`, as stored in ``runs.metrics_json``).

    Args:
        input_path: CSV, TSV, JSONL, chat JSONL or Parquet file; or a folder or glob pattern of such files (one
            format, the same columns), read in path order as one input (:mod:`labelgate.batches`).
        db_path: DuckDB file holding every intermediate artifact (created if absent).
        out_dir: folder under which ``<run_id>/train.jsonl``, ``val.jsonl`` and ``manifest.json`` are written.
        params: every other setting (see :class:`labelgate.config.CurateParams`).
    """
    params = params or CurateParams()
    if not is_batch_input(input_path) and not Path(input_path).exists():
        raise ConfigError(f"input file {input_path!r} does not exist")
    input_files(input_path)  # a folder without data files, a glob matching nothing: InputError before the run starts
    run_id = start_run(db_path, input_path, params, flow_run_id=_flow_run_id())
    started = time.perf_counter()
    metrics = RunMetrics(run_id=run_id, gate=params.gate)
    timings: dict[str, float] = {}
    clock = _Clock(timings)
    try:
        # --runner dask: connect (or start the local cluster) first, so a bad address fails before any work
        with shard_runner(params) if params.runner == "dask" else contextlib.nullcontext() as runner:
            metrics = metrics.replace(startup_seconds=startup_seconds())  # process start -> the first stage
            with clock("ingest"):
                metrics = metrics.replace(ingest=ingest(db_path, run_id, input_path, params))
            with clock("validate"):
                metrics = metrics.replace(validate=validate(db_path, run_id, params))
            if runner is None:
                with clock("embed"):
                    metrics = metrics.replace(embed=embed(db_path, run_id, params))
                with clock("detect"):
                    metrics = metrics.replace(detect=detect(db_path, run_id, params))
            else:
                embedded, detected, placement = _embed_and_detect_on_dask(db_path, run_id, params, runner, clock)
                metrics = metrics.replace(embed=embedded, detect=detected, dask=placement)
            _split_detect_seconds(timings, metrics.detect)
            if params.multi_annotator:
                with clock("annotators"):
                    metrics = metrics.with_consensus(annotators(db_path, run_id, params))
        with clock("quality"):
            metrics = metrics.replace(quality=quality_gate(db_path, run_id, params))  # QualityGateError: no export
        if params.gate != "none":  # remembered decisions of earlier runs first, then the policy or a person
            with clock("memory"):
                metrics = metrics.replace(memory=carry_memory(db_path, run_id, params))
        if params.gate == "auto":
            with clock("gate"):
                metrics = metrics.replace(decisions=auto_gate(db_path, run_id, params))
        elif params.gate == "human":
            with clock("gate"):
                metrics = metrics.replace(decisions=human_gate(db_path, run_id, params))
        with clock("export"):
            metrics = metrics.replace(export=export(db_path, run_id, out_dir, params, apply=params.gate != "none"))
        if params.test_path:
            with clock("evaluate"):
                metrics = metrics.replace(evaluation=evaluate(db_path, run_id, params))
    except Exception as err:
        message = str(err) if isinstance(err, LabelgateError) else f"internal error: {type(err).__name__}: {err}"
        finish_run(
            db_path,
            run_id,
            "failed",
            message,
            {
                "seconds": round(time.perf_counter() - started, 3),
                "seconds_by_stage": dict(timings),
                **({"startup_seconds": metrics.startup_seconds} if metrics.startup_seconds is not None else {}),
            },
        )
        release_review_server(run_id)
        raise
    warned = "; ".join(f"warning: {w}" for w in metrics.warnings) or None
    metrics = metrics.replace(seconds=round(time.perf_counter() - started, 3), seconds_by_stage=dict(timings))
    merged = finish_run(db_path, run_id, "completed", warned, metrics.to_json())
    merged["run_id"] = run_id
    final = RunMetrics.from_json(merged)
    publish_artifacts(db_path, run_id, final)
    release_review_server(run_id)  # the human gate's page has shown the outcome
    export_dir = final.export.export_dir if final.export else None
    print(
        f"run {run_id}: {final.rows_in} rows in, {final.label_issues} label issues, "
        f"exported {final.export.exported_train if final.export else None} train / "
        f"{final.export.exported_val if final.export else None} val to {export_dir}"
    )
    return merged  # the JSON form (RunMetrics.to_json keys): `labelgate run --json` prints part of it


class _Clock:
    """``with clock("stage"):`` adds the block's wall seconds to ``timings[stage]`` (rounded to ms)."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - began
            self.timings[stage] = round(self.timings.get(stage, 0.0) + spent, 3)


def _split_detect_seconds(timings: dict[str, float], detected: DetectMetrics | None) -> None:
    """Move the middle-layer features' seconds out of ``detect`` into ``layers`` and add the detect stage's parts
    (``detect.label``, ``detect.neighbours``, ``detect.leakage``, ``detect.fit.<member>``) from its metrics."""
    if detected is None or detected.detection_reused_from or "detect" not in timings:
        return
    parts = dict(detected.detect_seconds or {})
    if "layers" in parts:
        layers = float(parts.pop("layers"))
        timings["layers"] = round(layers, 3)
        timings["detect"] = round(max(timings["detect"] - layers, 0.0), 3)
    for name, value in parts.items():
        timings[f"detect.{name}"] = round(float(value), 3)


def curate_flow(params: CurateParams) -> Any:
    """The ``curate`` flow with the task runner ``params`` asks for (call it like the flow itself)."""
    runner = task_runner(params)
    return curate if runner is None else curate.with_options(task_runner=runner)


#: committed embedding chunks whose shards are queued on the cluster at once (bounds memory; keeps workers busy)
CHUNKS_IN_FLIGHT = 3


def _embed_and_detect_on_dask(
    db_path: str, run_id: str, params: CurateParams, runner: Any, clock: _Clock
) -> tuple[EmbedMetrics, DetectMetrics, dict[str, Any]]:
    """The embed and detect stages with their shard tasks on a Dask cluster; their figures plus the placement
    (``dask``): the scheduler, its workers, and how many embed shards and out-of-fold jobs each worker ran."""
    placement = describe(runner)
    with clock("embed"):
        embedded, embedded_on = _embed_sharded(db_path, run_id, params, runner)
    with clock("detect"):
        reused = reuse_detection(db_path, run_id, params)
        if reused.detection_reused_from:
            detected, scored_on = reused, Counter()
        else:
            detected, scored_on = _detect_sharded(db_path, run_id, params, runner)
    placement = {**placement, "embed_shards": dict(embedded_on), "oof_jobs": dict(scored_on)}
    return embedded, detected, placement


def _embed_sharded(db_path: str, run_id: str, params: CurateParams, runner: Any) -> tuple[EmbedMetrics, Counter]:
    """Embed the texts the cache lacks, chunk by chunk: each chunk's encode batches in shards on the workers,
    each chunk committed here as soon as its shards are back (a killed run keeps the committed chunks)."""
    work = embed_work(db_path, run_id, params)
    progress = EmbeddingProgress(run_id, len(work.todo), cached=work.n_cached)
    placed: Counter = Counter()
    started = time.perf_counter()
    if work.todo:
        # the batches depend on the backend the workers will use: ask one (it loads the model there)
        backend = runner.submit(resolve_backend, {"model": params.model, "backend": params.embed_backend}).result()
        n_shards = worker_threads(runner)
        size = chunk_size()
        chunks = (work.todo[i : i + size] for i in range(0, len(work.todo), size))

        def submit(chunk: list[str]) -> tuple[list, list]:
            shards = plan_shards(chunk, work.text_of, batch_size=params.batch_size, backend=backend, n_shards=n_shards)
            args = {"model": params.model, "backend": params.embed_backend, "with_layers": wants_layers(params)}
            return shards, [runner.submit(embed_shard, {**args, "batches": s.batches}) for s in shards]

        pending = deque(submit(c) for c in itertools.islice(chunks, CHUNKS_IN_FLIGHT))
        done = 0
        while pending:
            shards, futures = pending.popleft()
            results = [f.result() for f in futures]
            following = next(chunks, None)
            if following is not None:
                pending.append(submit(following))
            done += store_shards(db_path, params, shards, results)
            report_commit(progress, done, len(work.todo))
            placed.update(r.worker for r in results)
    progress.finish()
    return finish_embed(db_path, run_id, params, work, time.perf_counter() - started), placed


def _detect_sharded(db_path: str, run_id: str, params: CurateParams, runner: Any) -> tuple[DetectMetrics, Counter]:
    """Detect with one task per (member, fold) of the out-of-fold ensemble on the workers."""
    scoring = plan_scoring(db_path, run_id, params)
    started = time.perf_counter()
    plan = runner.client.scatter(scoring.plan, hash=False)  # sent once; workers share it, not once per job
    futures = [runner.submit(oof_job, {"plan": plan, "job": job}) for job in scoring.plan.jobs]
    report = stage_reporter(run_id)
    report("out-of-fold fits", 0, len(futures))
    results = []
    for done, future in enumerate(futures, 1):
        results.append(future.result())
        report("out-of-fold fits", done, len(futures))
    seconds = time.perf_counter() - started
    metrics = finish_scoring(db_path, run_id, params, scoring, [r.probs for r in results], seconds)
    return metrics, Counter(r.worker for r in results)


def _flow_run_id() -> str | None:
    try:
        rid = flow_run.id
    except Exception:  # pragma: no cover - outside a flow run
        return None
    return str(rid) if rid else None
