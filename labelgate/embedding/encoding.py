"""The sentence embeddings: :func:`encode` over any backend, in input order."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from labelgate.embedding.backends import _broken, resolve_backend
from labelgate.embedding.batching import _batches, _encode_onnx, _encode_torch
from labelgate.embedding.models import _dimension, _first_line, _warn, load_model
from labelgate.embedding.onnx_export import _onnx_encoder
from labelgate.errors import ModelLoadError


def encode(
    model: str,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    progress: bool = False,
    on_batch: Callable[[int], None] | None = None,
    backend: str = "auto",
) -> np.ndarray:
    """Embed ``texts`` with ``model``; return L2-normalised float32 vectors, shape ``(len(texts), dim)``.

    Texts are sorted by length (longest first) and encoded in batches of similar lengths, then put
    back in input order, so padding costs little.

    Args:
        model: a model name or path (see :func:`load_model`).
        texts: the texts, any length (the model truncates at its maximum sequence length).
        batch_size: texts per forward pass.
        progress: show a progress bar (use when stderr is a terminal).
        on_batch: called with the number of texts done after each chunk of ``batch_size * 16``.
        backend: ``auto`` (default: the fastest verified equivalent of fp32, see :func:`resolve_backend`),
            ``torch``, ``torch-bf16``, ``onnx`` or ``onnx-int8`` (lossy; its vectors belong under
            ``model_key(model, "onnx-int8")``).

    Raises:
        ConfigError: unknown ``backend``.
        ModelLoadError: the model (or an explicitly requested backend) cannot be loaded or fails.
    """
    chosen = resolve_backend(model, backend)
    st = load_model(model)
    if len(texts) == 0:
        return np.zeros((0, _dimension(st)), dtype=np.float32)
    texts = [t if isinstance(t, str) else str(t) for t in texts]
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out: np.ndarray | None = None
    chunk = max(1, batch_size) * 16
    done = 0
    for sl in _batches(len(texts), chunk):
        idx = order[sl]
        part = [texts[i] for i in idx]
        try:
            if chosen in ("torch", "torch-bf16"):
                vectors = _encode_torch(st, part, batch_size, progress, bf16=chosen == "torch-bf16")
            else:
                vectors = _encode_onnx(st, _onnx_encoder(model, chosen), part, batch_size, progress)
        except Exception as err:
            if chosen == "torch":
                raise
            if backend != "auto":
                raise ModelLoadError(
                    f"embedding backend {chosen!r} failed on model {model!r}: {_first_line(err)}; use the torch backend"
                ) from err
            _broken[(model, chosen)] = _first_line(err)
            _warn(f"labelgate: {chosen} embedding failed for {model!r} ({_first_line(err)}); using torch")
            chosen = "torch"
            vectors = _encode_torch(st, part, batch_size, progress)
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[idx] = vectors
        done += len(part)
        if on_batch is not None:
            on_batch(done)
    assert out is not None
    return out
