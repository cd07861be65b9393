"""Detection task: every detector over the run's valid rows, one ``issues`` row shape for all.

Label issues come from out-of-fold ensemble probabilities (:mod:`labelgate.core.probs`) and
class-adjusted confident learning (:mod:`labelgate.core.detect`); duplicates, conflicting labels and
leakage from normalised text and embedding neighbours (:mod:`labelgate.core.duplicates`); outliers
from kNN distances (:mod:`labelgate.core.outliers`); empty / too-short / too-long texts from
:mod:`labelgate.core.lengths`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import task

import labelgate
from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.ambiguity import kind_counts
from labelgate.core.detect import Detection, detect_all, detection_key
from labelgate.core.ingest import sha256_text
from labelgate.core.issues import DETECTED_TYPES
from labelgate.core.metrics import DetectMetrics
from labelgate.core.probs import (
    AUTO_MAX_FOLDS,
    MEMBERS,
    OofJob,
    OofPlan,
    Probabilities,
    combine_oof,
    plan_oof,
    run_oof_job,
)
from labelgate.errors import ConfigError
from labelgate.parallel import detect_workers, map_to_files, pool_runner
from labelgate.readers import sha256_file
from labelgate.services.inputs import read_input
from labelgate.tasks._common import TASK_OPTIONS
from labelgate.tasks.embed import cache_key, embed_texts, missing_hashes, where_am_i
from labelgate.tasks.layers import layer_vectors, wants_layers
from labelgate.tasks.progress import stage_reporter


def _token_counts(texts: list[str], params: CurateParams) -> tuple[list[int] | None, str]:
    if params.max_text_tokens is None:
        return None, "tokens"
    from labelgate.core.tokens import CachedCounter
    from labelgate.tokenizers import get_counter

    counter = CachedCounter(get_counter(getattr(params, "token_counter", "auto")))
    return counter.count_many(texts), f"{counter.name} estimate"


def _test_rows(db_path: str, params: CurateParams) -> tuple[pd.DataFrame, np.ndarray]:
    """The test file's rows (row_id, text) and their embeddings (cached like the run's)."""
    path = params.test_path
    assert path is not None
    if not Path(path).exists():
        raise ConfigError(f"test file {path!r} does not exist; pass --test PATH")
    result = read_input(path, params.ingest_settings())
    rows = result.rows[result.rows["text"].notna()]
    rows = rows[rows["text"].str.strip() != ""][["row_id", "text"]].reset_index(drop=True)
    hashes = [sha256_text(t) for t in rows["text"]]
    text_of = dict(zip(hashes, rows["text"]))
    embed_texts(db_path, params, missing_hashes(db_path, params, list(text_of))[0], text_of)
    with store.connect(db_path) as con:
        test_vectors = store.get_embeddings(con, cache_key(params), hashes) if hashes else np.zeros((0, 0), np.float32)
    return rows, test_vectors


@dataclass(frozen=True)
class DetectInputs:
    """The detect stage's inputs, read from DuckDB (and the test file) in the flow's process.

    ``row_ids`` / ``texts`` / ``labels`` are the valid rows in input order, ``vectors`` their embeddings
    ``(n, dim)``; the token counts and test rows are what :func:`labelgate.core.detect.detect_all` takes.
    """

    row_ids: list[str]
    texts: list[str]
    labels: list[str]
    vectors: np.ndarray
    token_counts: list[int] | None
    token_counter_name: str
    test_ids: list[str] | None
    test_texts: list[str] | None
    test_vectors: np.ndarray | None
    #: middle-layer features ``(n, hidden)`` of the ``layers`` member (None: not computed)
    layer_vectors: np.ndarray | None = None
    #: seconds spent computing ``layer_vectors`` (0.0: not computed)
    layer_seconds: float = 0.0

    def detect_all(self, params: CurateParams, **kwargs: Any) -> Detection:
        """:func:`labelgate.core.detect.detect_all` over these inputs with the run's settings."""
        return detect_all(
            self.row_ids,
            self.texts,
            self.labels,
            self.vectors,
            settings=params.detector_settings(),
            token_counts=self.token_counts,
            token_counter_name=self.token_counter_name,
            test_ids=self.test_ids,
            test_texts=self.test_texts,
            test_vectors=self.test_vectors,
            layer_vectors=self.layer_vectors,
            **kwargs,
        )


def _inputs(db_path: str, run_id: str, params: CurateParams) -> DetectInputs:
    with store.connect(db_path) as con:
        rows = store.valid_rows(con, run_id)
        vectors = store.get_embeddings(con, cache_key(params), list(rows["text_sha256"]))
    texts = [t if isinstance(t, str) else "" for t in rows["text"]]
    counts, counter_name = _token_counts(texts, params)
    test_ids = test_texts = test_vectors = None
    if params.test_path:
        test, test_vectors = _test_rows(db_path, params)
        test_ids, test_texts = list(test["row_id"]), list(test["text"])
    layers = None
    layer_seconds = 0.0
    if wants_layers(params):
        hashes = [str(h) for h in rows["text_sha256"]]
        began = time.perf_counter()
        layers = layer_vectors(db_path, params, hashes, dict(zip(hashes, texts)), run_id=run_id)
        layer_seconds = time.perf_counter() - began
    return DetectInputs(
        row_ids=[str(r) for r in rows["row_id"]],
        texts=texts,
        labels=[str(v) for v in rows["label"]],
        vectors=vectors,
        token_counts=counts,
        token_counter_name=counter_name,
        test_ids=test_ids,
        test_texts=test_texts,
        test_vectors=test_vectors,
        layer_vectors=layers,
        layer_seconds=layer_seconds,
    )


def input_key(db_path: str, run_id: str, params: CurateParams) -> str:
    """The detection key of the run (:func:`labelgate.core.detect.detection_key`): its valid rows, the detector
    settings, the embedding model and backend, the test file's content and the labelgate version."""
    with store.connect(db_path) as con:
        rows = store.valid_rows(con, run_id)
    settings = {
        "detector": dataclasses.asdict(params.detector_settings()),
        "embedding": cache_key(params),
        "token_counter": params.token_counter,
        "test_sha256": sha256_file(params.test_path) if params.test_path and Path(params.test_path).exists() else None,
        "labelgate": labelgate.__version__,
    }
    return detection_key(zip(rows["row_id"], rows["text_sha256"], rows["label"]), settings)


@task(name="detect-reuse", **TASK_OPTIONS)
def reuse_detection(db_path: str, run_id: str, params: CurateParams) -> DetectMetrics:
    """Copy the detection of an earlier completed run with the same key (same valid rows, settings and model).

    Returns the figures with ``detection_key`` alone, or, when an earlier run was reused, its detection figures
    and ``detection_reused_from`` (its run id), recorded in the run's metrics.
    """
    key = input_key(db_path, run_id, params)
    with store.connect(db_path) as con:
        source = store.reusable_detection(con, key, except_run=run_id)
        if source is None:
            return DetectMetrics(detection_key=key)
        with store.transaction(con):
            copied = store.copy_detection(con, source, run_id)
            metrics = DetectMetrics.from_json(copied).replace(detection_key=key, detection_reused_from=source)
            store.merge_metrics(con, run_id, {**copied, **metrics.to_json()})
    return metrics


def _store(
    db_path: str, run_id: str, params: CurateParams, inputs: DetectInputs, found: Detection, key: str | None = None
) -> DetectMetrics:
    row_ids = inputs.row_ids
    probs = found.probs
    issues = found.issues.copy()
    issues.insert(0, "run_id", run_id)

    predictions = pa.table(
        {
            "run_id": pa.array([run_id] * len(row_ids), pa.string()),
            "row_id": pa.array(row_ids, pa.string()),
            "probs": store.vectors_to_arrow(probs.probs),
        }
    )
    flagged = issues[issues["is_issue"]]
    per_type = {t: int((flagged["issue_type"] == t).sum()) for t in DETECTED_TYPES}
    n_issues = per_type["label"]
    accuracy = float((probs.probs.argmax(axis=1) == probs.labels).mean())
    seconds = {**({"layers": inputs.layer_seconds} if inputs.layer_vectors is not None else {}), **found.seconds}
    metrics = DetectMetrics(
        label_issues=n_issues,
        label_issue_rate=round(n_issues / max(len(row_ids), 1), 4),
        issues_by_type=per_type,
        rows_flagged=int(flagged["row_id"].nunique()),
        detector=probs.method,
        oof_accuracy_vs_given=round(accuracy, 4),
        oof_accuracy_by_member={m: round(a, 4) for m, a in probs.member_accuracy.items()},
        classes=probs.classes,
        n_folds=probs.n_folds,
        detector_fitted=probs.chosen,
        detect_seconds={k: round(v, 3) for k, v in seconds.items()},
        detection_key=key,
        detection_reused_from=None,
        approximations=approximations(len(row_ids), probs),
        label_issues_by_kind=kind_counts(kinds=flagged.loc[flagged["issue_type"] == "label", "label_kind"]),
    )
    with store.connect(db_path) as con, store.transaction(con):
        store.save_detection(
            con,
            run_id=run_id,
            method=probs.method,
            classes=probs.classes,
            n_folds=probs.n_folds,
            metrics_json=json.dumps(metrics.to_json()),
            detection_key=key,
            predictions=predictions,
            issues=issues,
        )
        store.merge_metrics(con, run_id, metrics.to_json())
    return metrics


def approximations(n_rows: int, probs: Probabilities | None) -> dict[str, Any] | None:
    """What the detect stage approximated on ``n_rows`` rows with ``probs`` (:attr:`DetectMetrics.approximations`),
    or ``None``."""
    from labelgate.core.neighbours import EXACT_MAX_ROWS

    found: dict[str, Any] = {}
    if probs is not None and probs.train_rows_cap is not None:
        found["train_rows_per_fold"] = probs.train_rows_cap
    if probs is not None and probs.char_features_cap is not None:
        found["char_features"] = probs.char_features_cap
    if probs is not None and probs.layers_fixed_C is not None:
        found["layers_C"] = probs.layers_fixed_C
    if n_rows > EXACT_MAX_ROWS:
        found["neighbours"] = "approximate"
    return found or None


def _workers(n_rows: int) -> int:
    """Worker processes of the out-of-fold fits on this machine's cores (:func:`labelgate.parallel.detect_workers` of
    the rows; 1: this process alone, for small inputs)."""
    return detect_workers(n_rows, n_jobs=len(MEMBERS) * AUTO_MAX_FOLDS)


def _mapped(inputs: DetectInputs, files: contextlib.ExitStack) -> DetectInputs:
    """``inputs`` with the embeddings and layer features read from temporary files that ``files`` removes
    (:func:`labelgate.parallel.map_to_files`): the workers map them, and this process, which does not read them
    while the fits run, lets go of its own copies (the same values)."""
    vectors, layers = map_to_files([inputs.vectors, inputs.layer_vectors], files)
    assert vectors is not None
    return dataclasses.replace(inputs, vectors=vectors, layer_vectors=layers)


@task(name="detect", **TASK_OPTIONS)
def detect(db_path: str, run_id: str, params: CurateParams) -> DetectMetrics:
    """Run every detector over the valid rows; store predictions and issues; return counts per issue type.

    A completed run with the same detection key (:func:`input_key`) is reused instead (:func:`reuse_detection`).
    """
    reused = reuse_detection.fn(db_path, run_id, params)
    if reused.detection_reused_from:
        return reused
    with contextlib.ExitStack() as files:
        inputs = _inputs(db_path, run_id, params)
        workers = _workers(len(inputs.row_ids))
        if workers > 1:
            inputs = _mapped(inputs, files)
        found = inputs.detect_all(params, progress=stage_reporter(run_id), run_jobs=pool_runner(workers=workers))
    return _store(db_path, run_id, params, inputs, found, reused.detection_key)


# --- sharded scoring (--runner dask): DuckDB stays in the flow's process, jobs are pure compute --------------


@dataclass(frozen=True)
class Scoring:
    """The detect stage's inputs and the out-of-fold jobs planned over them (see :func:`plan_scoring`)."""

    inputs: DetectInputs
    plan: OofPlan


@task(name="detect-plan", **TASK_OPTIONS)
def plan_scoring(db_path: str, run_id: str, params: CurateParams) -> Scoring:
    """Read the detect inputs from DuckDB and plan the (member, fold) jobs (in the flow's process).

    Raises:
        ValidationError: fewer than 2 classes, or a class smaller than the number of folds.
    """
    inputs = _inputs(db_path, run_id, params)
    s = params.detector_settings()
    plan = plan_oof(
        inputs.vectors,
        inputs.labels,
        texts=inputs.texts,
        layer_features=inputs.layer_vectors,
        members=None if s.members is None else list(s.members),
        n_folds=s.n_folds,
        seed=s.seed,
    )
    return Scoring(inputs=inputs, plan=plan)


@dataclass(frozen=True)
class JobResult:
    """What :func:`oof_job` returns: the job's probabilities ``(n_test, n_classes)`` and where it ran."""

    probs: np.ndarray
    worker: str | None
    pid: int
    seconds: float


@task(name="oof-job", **TASK_OPTIONS)
def oof_job(plan: OofPlan, job: OofJob) -> JobResult:
    """Fit one (member, fold) job of the out-of-fold ensemble (pure compute: runs on a Dask worker)."""
    started = time.perf_counter()
    probs = run_oof_job(plan, job)
    return JobResult(probs, *where_am_i(), round(time.perf_counter() - started, 3))


@task(name="detect-finish", **TASK_OPTIONS)
def finish_scoring(
    db_path: str, run_id: str, params: CurateParams, scoring: Scoring, results: list[np.ndarray], oof_seconds: float
) -> DetectMetrics:
    """Combine the jobs' results (in ``scoring.plan.jobs`` order), run the other detectors, store as :func:`detect`."""
    probs = combine_oof(scoring.plan, results)
    found = scoring.inputs.detect_all(params, probs=probs, progress=stage_reporter(run_id))
    found.seconds["label"] += oof_seconds
    return _store(db_path, run_id, params, scoring.inputs, found, input_key(db_path, run_id, params))
