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


@task(name="embed", **TASK_OPTIONS)
def embed(db_path: str, run_id: str, params: CurateParams) -> dict[str, Any]:
    """Embed the valid texts not yet in the cache; return how many were embedded and reused."""
    key = embedding.model_key(params.model, params.embed_backend)
    with store.connect(db_path) as con:
        rows = store.valid_rows(con, run_id)
        hashes = list(dict.fromkeys(rows["text_sha256"]))  # unique, in input order
        cached = store.cached_hashes(con, key, hashes)
    text_of = dict(zip(rows["text_sha256"], rows["text"]))
    todo = [h for h in hashes if h not in cached]
    started = time.perf_counter()
    chunk = chunk_size()
    progress = EmbeddingProgress(run_id, len(todo), cached=len(cached))  # Prefect progress artifact
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
        progress.update(start + len(part))
        if _show_progress():  # one line per committed chunk (a killed run resumes after the last one);
            # written to stderr directly: the flow's log_prints would turn a print() into a Prefect log record
            sys.stderr.write(f"labelgate: embedded {start + len(part)}/{len(todo)} texts (committed)\n")
            sys.stderr.flush()
    progress.finish()
    seconds = time.perf_counter() - started
    metrics = {
        "embedding_model": key,
        "texts_unique": len(hashes),
        "texts_embedded": len(todo),
        "texts_cached": len(cached),
        "embed_seconds": round(seconds, 3),
    }
    with store.connect(db_path) as con, store.transaction(con):
        store.merge_metrics(con, run_id, metrics)
    return metrics
