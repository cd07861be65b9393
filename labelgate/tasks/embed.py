"""Embedding task: vectors for every valid text, cached in DuckDB by (model, text sha256).

Texts are embedded in chunks of :func:`chunk_size` (``LABELGATE_EMBED_CHUNK``, default 2048), each committed
in its own transaction: a killed run loses at most the chunk in progress, and the next run over the same
database reuses every committed vector (its ``texts_cached``). With progress output on (a terminal, or
``LABELGATE_PROGRESS=1``) each commit prints ``labelgate: embedded N/M texts (committed)`` to stderr.

With ``--runner dask`` the flow shards the same work (:func:`embed_work`, :func:`plan_shards`,
:func:`embed_shard` on the workers, :func:`store_shards` in the flow's process): each chunk's encode
batches are split between the workers, so every text is padded with the same neighbours as in the
default run and gets bitwise the same vector.

When the run's detector uses the ``layers`` member (:func:`wants_layers`), the same forward passes also give
the middle-layer features (:func:`labelgate.embedding.encode_with_layers`), committed with the vectors under
:func:`labelgate.embedding.layers_key`; the ``layers`` stage (:mod:`labelgate.tasks.layers`) then finds them
cached and only computes those a backend could not give (``onnx-int8``) or an older cache lacks.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from prefect import task

from labelgate import embedding, store
from labelgate.config import CurateParams
from labelgate.core.metrics import EmbedMetrics
from labelgate.tasks._common import TASK_OPTIONS
from labelgate.tasks.artifacts import EmbeddingProgress

#: texts embedded and committed per chunk: a killed run keeps what it finished
CHUNK = 2048
#: environment variable overriding :data:`CHUNK` (smaller chunks: less lost to a kill, more commits)
CHUNK_ENV = "LABELGATE_EMBED_CHUNK"


def chunk_size() -> int:
    """Texts per committed chunk: ``$LABELGATE_EMBED_CHUNK`` when set to a positive integer, else :data:`CHUNK`."""
    value = os.environ.get(CHUNK_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else CHUNK


def _show_progress() -> bool:
    env = os.environ.get("LABELGATE_PROGRESS")
    if env is not None:
        return env not in ("0", "false", "no", "")
    return sys.stderr.isatty()


def wants_layers(params: CurateParams) -> bool:
    """Whether the run's detector uses the ``layers`` member (its features are then computed while embedding)."""
    return "layers" in params.detector_members


def cache_key(params: CurateParams) -> str:
    """The embedding-cache key of the run's model and backend: what every task reads and writes vectors under."""
    return embedding.model_key(params.model, params.embed_backend)


def uncached(db_path: str, key: str, hashes: list[str]) -> tuple[list[str], int]:
    """The text hashes without a cached vector under ``key`` (in the given order), and how many are cached."""
    with store.connect(db_path) as con:
        cached = store.cached_hashes(con, key, hashes)
    return [h for h in hashes if h not in cached], len(cached)


def missing_hashes(db_path: str, params: CurateParams, hashes: list[str]) -> tuple[list[str], int]:
    """The text hashes without a cached embedding of the run's model (in the given order), and how many are cached."""
    return uncached(db_path, cache_key(params), hashes)


def cache_vectors(
    db_path: str,
    key: str,
    todo: list[str],
    text_of: dict[str, str],
    encode: Callable[[list[str]], np.ndarray],
    *,
    on_chunk: Callable[[int, int], None] | None = None,
) -> None:
    """``encode`` the texts of the hashes ``todo`` and cache the vectors under ``key``, one committed chunk
    (:func:`chunk_size` texts) at a time, so a killed run keeps what it finished.

    ``on_chunk(done, total)`` is called after each commit.
    """
    cache_keyed(db_path, todo, text_of, lambda texts: {key: encode(texts)}, on_chunk=on_chunk)


def cache_keyed(
    db_path: str,
    todo: list[str],
    text_of: dict[str, str],
    encode: Callable[[list[str]], dict[str, np.ndarray]],
    *,
    on_chunk: Callable[[int, int], None] | None = None,
) -> None:
    """:func:`cache_vectors` for an ``encode`` that returns several arrays per chunk (cache key -> ``(n, dim)``
    rows of the chunk's texts, in order): all of a chunk's arrays are committed in one transaction."""
    chunk = chunk_size()
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        arrays = encode([text_of[h] for h in part])
        with store.connect(db_path) as con, store.transaction(con):
            for key, vectors in arrays.items():
                store.put_embeddings(con, key, part, vectors)
        if on_chunk is not None:
            on_chunk(start + len(part), len(todo))


def embed_texts(
    db_path: str,
    params: CurateParams,
    todo: list[str],
    text_of: dict[str, str],
    *,
    on_chunk: Callable[[int, int], None] | None = None,
    with_layers: bool = False,
) -> None:
    """Embed the texts of the hashes ``todo`` with the run's model and cache them (see :func:`cache_vectors`).

    With ``with_layers`` the middle-layer features of the same forward passes are cached too, in the same
    transactions, under :func:`labelgate.embedding.layers_key` (when the backend gives them: not on ``onnx-int8``).
    """
    key = cache_key(params)
    layers_key = embedding.layers_key(params.model)

    def encode(texts: list[str]) -> dict[str, np.ndarray]:
        kwargs = {"batch_size": params.batch_size, "progress": _show_progress(), "backend": params.embed_backend}
        if not with_layers:
            return {key: embedding.encode(params.model, texts, **kwargs)}
        vectors, layers = embedding.encode_with_layers(params.model, texts, **kwargs)
        return {key: vectors} if layers is None else {key: vectors, layers_key: layers}

    cache_keyed(db_path, todo, text_of, encode, on_chunk=on_chunk)


@dataclass(frozen=True)
class EmbedWork:
    """What the embed stage has to do for one run.

    Attributes:
        text_of: text sha256 -> text of every valid row, unique, in input order.
        todo: the hashes without a cached vector, in input order.
        n_cached: how many of ``text_of`` are cached already.
    """

    text_of: dict[str, str]
    todo: list[str]
    n_cached: int


def _work(db_path: str, run_id: str, params: CurateParams) -> EmbedWork:
    with store.connect(db_path) as con:
        rows = store.valid_rows(con, run_id)
    text_of = dict(zip(rows["text_sha256"], rows["text"]))  # unique, in input order
    todo, n_cached = missing_hashes(db_path, params, list(text_of))
    return EmbedWork(text_of=text_of, todo=todo, n_cached=n_cached)


def report_commit(progress: EmbeddingProgress, done: int, total: int) -> None:
    """After a committed chunk: update the progress artifact and (with progress output on) print one line."""
    progress.update(done)
    if _show_progress():  # one line per committed chunk (a killed run resumes after the last one);
        # written to stderr directly: the flow's log_prints would turn a print() into a Prefect log record
        sys.stderr.write(f"labelgate: embedded {done}/{total} texts (committed)\n")
        sys.stderr.flush()


def _finish(db_path: str, run_id: str, params: CurateParams, work: EmbedWork, seconds: float) -> EmbedMetrics:
    metrics = EmbedMetrics(
        embedding_model=cache_key(params),
        texts_unique=len(work.text_of),
        texts_embedded=len(work.todo),
        texts_cached=work.n_cached,
        embed_seconds=round(seconds, 3),
    )
    with store.connect(db_path) as con, store.transaction(con):
        store.merge_metrics(con, run_id, metrics.to_json())
    return metrics


@task(name="embed", **TASK_OPTIONS)
def embed(db_path: str, run_id: str, params: CurateParams) -> EmbedMetrics:
    """Embed the valid texts not yet in the cache; return how many were embedded and reused."""
    work = _work(db_path, run_id, params)
    progress = EmbeddingProgress(run_id, len(work.todo), cached=work.n_cached)  # Prefect progress artifact
    started = time.perf_counter()
    embed_texts(
        db_path,
        params,
        work.todo,
        work.text_of,
        on_chunk=lambda done, total: report_commit(progress, done, total),
        with_layers=wants_layers(params),
    )
    embedding.release_sessions()  # the stages after this one do not carry the model's session
    progress.finish()
    return _finish(db_path, run_id, params, work, time.perf_counter() - started)


# --- sharded embedding (--runner dask): DuckDB stays in the flow's process, shards are pure compute -----------


@task(name="embed-work", **TASK_OPTIONS)
def embed_work(db_path: str, run_id: str, params: CurateParams) -> EmbedWork:
    """The run's texts and which of them the cache lacks (reads DuckDB: runs in the flow's process)."""
    return _work(db_path, run_id, params)


@task(name="embed-finish", **TASK_OPTIONS)
def finish_embed(db_path: str, run_id: str, params: CurateParams, work: EmbedWork, seconds: float) -> EmbedMetrics:
    """Record the embed stage's figures (the ones :func:`embed` returns) in DuckDB and return them."""
    return _finish(db_path, run_id, params, work, seconds)


@dataclass(frozen=True)
class Shard:
    """One embed shard: consecutive encode batches of one chunk.

    Attributes:
        hashes: the text hashes of the shard's rows, in the order of its vectors.
        batches: the texts, one list per forward pass (as :func:`labelgate.embedding.encode` would batch them).
    """

    hashes: list[str]
    batches: list[list[str]]


def plan_shards(
    hashes: Sequence[str], text_of: dict[str, str], *, batch_size: int, backend: str, n_shards: int
) -> list[Shard]:
    """Split the texts of ``hashes`` (one committed chunk) into at most ``n_shards`` shards of whole encode batches.

    ``backend`` is the resolved embedding backend (it sets the batches: :func:`labelgate.embedding.batch_plan`).
    """
    texts = [text_of[h] for h in hashes]
    batches = embedding.batch_plan(texts, batch_size=batch_size, backend=backend)
    if not batches:
        return []
    shards = []
    for group in np.array_split(np.arange(len(batches)), max(1, min(n_shards, len(batches)))):
        parts = [batches[i] for i in group]
        shards.append(
            Shard(hashes=[hashes[i] for b in parts for i in b], batches=[[texts[i] for i in b] for b in parts])
        )
    return shards


@dataclass(frozen=True)
class ShardResult:
    """What a shard task returns.

    Attributes:
        vectors: float32 ``(n, dim)``, one row per text of the shard, in the shard's order.
        worker: address of the Dask worker that ran it (None outside Dask).
        pid: its process id.
        seconds: wall time of the encoding.
        layers: float32 ``(n, hidden)`` middle-layer features of the same forward passes, in the same order (None:
            not asked for, or the backend cannot give them).
    """

    vectors: np.ndarray
    worker: str | None
    pid: int
    seconds: float
    layers: np.ndarray | None = None


def where_am_i() -> tuple[str | None, int]:
    """(Dask worker address or None, process id) of the running code."""
    try:
        from distributed import get_worker

        return str(get_worker().address), os.getpid()
    except (ImportError, ValueError):  # not inside a Dask worker
        return None, os.getpid()


@task(name="embed-backend", **TASK_OPTIONS)
def resolve_backend(model: str, backend: str) -> str:
    """The backend :func:`labelgate.embedding.encode` uses on the machine running this (it loads the model)."""
    return embedding.resolve_backend(model, backend)


@task(name="embed-shard", **TASK_OPTIONS)
def embed_shard(model: str, backend: str, batches: list[list[str]], with_layers: bool = False) -> ShardResult:
    """Encode one shard, batch by batch (pure compute: runs on a Dask worker, never touches DuckDB); with
    ``with_layers`` also the middle-layer features of the same forward passes (when the backend gives them)."""
    started = time.perf_counter()
    batches = [b for b in batches if b]
    layers: np.ndarray | None = None
    if with_layers:
        pairs = [embedding.encode_with_layers(model, b, batch_size=len(b), backend=backend) for b in batches]
        vectors = np.vstack([v for v, _ in pairs]).astype(np.float32, copy=False)
        if pairs and all(pooled is not None for _, pooled in pairs):
            layers = np.vstack([pooled for _, pooled in pairs]).astype(np.float32, copy=False)
    else:
        vectors = np.vstack([embedding.encode(model, b, batch_size=len(b), backend=backend) for b in batches])
        vectors = vectors.astype(np.float32, copy=False)
    return ShardResult(vectors, *where_am_i(), round(time.perf_counter() - started, 3), layers=layers)


@task(name="embed-store", **TASK_OPTIONS)
def store_shards(db_path: str, params: CurateParams, shards: list[Shard], results: list[ShardResult]) -> int:
    """Cache one chunk's shard vectors in one transaction (in the flow's process); return how many. When every
    shard brought its middle-layer features they are cached too (:func:`labelgate.embedding.layers_key`);
    otherwise the ``layers`` stage computes them (its fallback)."""
    hashes = [h for s in shards for h in s.hashes]
    if not hashes:
        return 0
    vectors = np.vstack([r.vectors for r in results])
    layers = [r.layers for r in results]
    with store.connect(db_path) as con, store.transaction(con):
        store.put_embeddings(con, cache_key(params), hashes, vectors)
        if all(pooled is not None for pooled in layers):
            store.put_embeddings(con, embedding.layers_key(params.model), hashes, np.vstack(layers))
    return len(hashes)
