"""Middle-layer features of the detector's ``layers`` member, cached in DuckDB like the embeddings.

They are stored in the ``embeddings`` table under :func:`labelgate.embedding.layers_key` (one vector per
model and text hash). The embed stage normally caches them with the sentence vectors, from the same forward
passes (:func:`labelgate.tasks.embed.embed_texts` with ``with_layers``); this stage reads them and, as a fallback,
computes those still missing (a cache filled by a run without the member or by an older labelgate, the
``onnx-int8`` backend, a model whose pipeline cannot give them in one pass) with
:func:`labelgate.embedding.encode_layers` in committed chunks (:func:`labelgate.tasks.embed.cache_vectors`), so a
rerun or a killed run resumes where it stopped. Called by the detect stage in the flow's process (it holds the
DuckDB file).
"""

from __future__ import annotations

import numpy as np

from labelgate import embedding, store
from labelgate.config import CurateParams
from labelgate.tasks.embed import cache_vectors, uncached, wants_layers
from labelgate.tasks.progress import StageProgress

__all__ = ["layer_vectors", "wants_layers"]


def layer_vectors(
    db_path: str, params: CurateParams, hashes: list[str], text_of: dict[str, str], *, run_id: str = ""
) -> np.ndarray:
    """The middle-layer features of ``hashes`` (in that order), ``(len(hashes), hidden)``; the ones the embed
    stage did not cache are computed with :func:`labelgate.embedding.encode_layers` and cached first.

    Args:
        db_path: the run's DuckDB file.
        params: the run's settings (``model``, ``batch_size``).
        hashes: text sha256 per row (repeats allowed).
        text_of: text of every hash.
        run_id: the run, named in the stage progress (``middle-layer features``, one report per committed chunk).
    """
    key = embedding.layers_key(params.model)
    todo, _ = uncached(db_path, key, list(dict.fromkeys(hashes)))
    progress = StageProgress(run_id, "middle-layer features", len(todo), unit="texts") if todo else None
    if progress is not None:
        progress.update(0)  # the first chunk takes a while: say at once what runs
    cache_vectors(
        db_path,
        key,
        todo,
        text_of,
        lambda texts: embedding.encode_layers(params.model, texts, batch_size=params.batch_size),
        on_chunk=None if progress is None else lambda done, total: progress.update(done),
    )
    with store.connect(db_path) as con:
        return store.get_embeddings(con, key, hashes)
