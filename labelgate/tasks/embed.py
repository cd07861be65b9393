"""Embedding task: vectors for every valid text, cached in DuckDB by (model, text sha256).

Texts are embedded in chunks of :func:`chunk_size` (``LABELGATE_EMBED_CHUNK``, default 2048), each committed
in its own transaction: a killed run loses at most the chunk in progress, and the next run over the same
database reuses every committed vector (its ``texts_cached``). With progress output on (a terminal, or
``LABELGATE_PROGRESS=1``) each commit prints ``labelgate: embedded N/M texts (committed)`` to stderr.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from prefect import task

from labelgate import embedding, store
from labelgate.config import CurateParams
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


def cache_key(params: CurateParams) -> str:
    """The embedding-cache key of the run's model and backend: what every task reads and writes vectors under."""
    return embedding.model_key(params.model, params.embed_backend)


def missing_hashes(db_path: str, params: CurateParams, hashes: list[str]) -> tuple[list[str], int]:
    """The text hashes without a cached vector (in the given order), and how many are cached."""
    with store.connect(db_path) as con:
        cached = store.cached_hashes(con, cache_key(params), hashes)
    return [h for h in hashes if h not in cached], len(cached)


def embed_texts(
    db_path: str,
    params: CurateParams,
    todo: list[str],
    text_of: dict[str, str],
    *,
    on_chunk: Callable[[int, int], None] | None = None,
) -> None:
    """Embed the texts of the hashes ``todo`` and cache them, one committed chunk at a time.

    ``on_chunk(done, total)`` is called after each commit.
    """
    key = cache_key(params)
    chunk = chunk_size()
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        vectors = embedding.encode(
            params.model,
            [text_of[h] for h in part],
            batch_size=params.batch_size,
            progress=_show_progress(),
            backend=params.embed_backend,
        )
        with store.connect(db_path) as con, store.transaction(con):
            store.put_embeddings(con, key, part, vectors)
        if on_chunk is not None:
            on_chunk(start + len(part), len(todo))


@task(name="embed", **TASK_OPTIONS)
def embed(db_path: str, run_id: str, params: CurateParams) -> dict[str, Any]:
    """Embed the valid texts not yet in the cache; return how many were embedded and reused."""
    with store.connect(db_path) as con:
        rows = store.valid_rows(con, run_id)
    text_of = dict(zip(rows["text_sha256"], rows["text"]))  # unique, in input order
    todo, n_cached = missing_hashes(db_path, params, list(text_of))
    progress = EmbeddingProgress(run_id, len(todo), cached=n_cached)  # Prefect progress artifact

    def committed(done: int, total: int) -> None:
        progress.update(done)
        if _show_progress():  # one line per committed chunk (a killed run resumes after the last one);
            # written to stderr directly: the flow's log_prints would turn a print() into a Prefect log record
            sys.stderr.write(f"labelgate: embedded {done}/{total} texts (committed)\n")
            sys.stderr.flush()

    started = time.perf_counter()
    embed_texts(db_path, params, todo, text_of, on_chunk=committed)
    progress.finish()
    seconds = time.perf_counter() - started
    metrics = {
        "embedding_model": cache_key(params),
        "texts_unique": len(text_of),
        "texts_embedded": len(todo),
        "texts_cached": n_cached,
        "embed_seconds": round(seconds, 3),
    }
    with store.connect(db_path) as con, store.transaction(con):
        store.merge_metrics(con, run_id, metrics)
    return metrics
