"""Embedding task: vectors for every valid text, cached in DuckDB by (model, text sha256)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from prefect import task

from labelgate import embedding, store
from labelgate.config import CurateParams
from labelgate.tasks._common import TASK_OPTIONS

#: texts embedded and committed per chunk: a killed run keeps what it finished
CHUNK = 2048


def _show_progress() -> bool:
    env = os.environ.get("LABELGATE_PROGRESS")
    if env is not None:
        return env not in ("0", "false", "no", "")
    return sys.stderr.isatty()


@task(name="embed", **TASK_OPTIONS)
def embed(db_path: str, run_id: str, params: CurateParams) -> dict[str, Any]:
    """Embed the valid texts not yet in the cache; return how many were embedded and reused."""
    key = embedding.model_key(params.model)
    with store.connect(db_path) as con:
        rows = store.valid_rows(con, run_id)
        hashes = list(dict.fromkeys(rows["text_sha256"]))  # unique, in input order
        cached = store.cached_hashes(con, key, hashes)
    text_of = dict(zip(rows["text_sha256"], rows["text"]))
    todo = [h for h in hashes if h not in cached]
    started = time.perf_counter()
    for start in range(0, len(todo), CHUNK):
        part = todo[start : start + CHUNK]
        vectors = embedding.encode(
            params.model, [text_of[h] for h in part], batch_size=params.batch_size, progress=_show_progress()
        )
        with store.connect(db_path) as con, store.transaction(con):
            store.put_embeddings(con, key, part, vectors)
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
