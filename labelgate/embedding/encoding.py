"""The sentence embeddings over any backend, in input order: :func:`encode`, and :func:`encode_with_layers`
which also gives the middle-layer features of the same forward pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from labelgate.embedding.backends import _broken, layers_unavailable, resolve_backend
from labelgate.embedding.batching import _batches, _encode_torch, _encode_torch_both
from labelgate.embedding.forward import model_layers
from labelgate.embedding.models import ONNX_BACKENDS, _dimension, _first_line, _log, _warn, load_model
from labelgate.embedding.onnx_export import _encode_onnx, _encode_onnx_both, _onnx_encoder
from labelgate.embedding.standalone import write_tokenizer
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
    vectors, _ = _encode(model, texts, batch_size, progress, on_batch, backend, with_layers=False)
    return vectors


def encode_with_layers(
    model: str,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    progress: bool = False,
    on_batch: Callable[[int], None] | None = None,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`encode` ``texts`` and pool the middle-layer features of the same forward passes.

    Same arguments, batches and sentence vectors as :func:`encode`. The middle-layer features are those of
    :func:`~labelgate.embedding.encode_layers` (the ``layers`` detector member's input, cached under
    :func:`~labelgate.embedding.layers_key`) up to float rounding: each backend is checked once per process on
    the probe texts (cosine >= 0.9999 for torch and onnx, >= 0.999 for torch-bf16; see
    :func:`~labelgate.embedding.backends.layers_unavailable`).

    Returns:
        ``(vectors, layers)``: L2-normalised float32 ``(len(texts), dim)``, and float32
        ``(len(texts), hidden)`` (not normalised), or None when the backend cannot give them (``onnx-int8``,
        whose features would be lossy; a model whose first module is not a transformer; a failed check): compute
        them with :func:`~labelgate.embedding.encode_layers` then.

    Raises:
        ConfigError: unknown ``backend``.
        ModelLoadError: the model (or an explicitly requested backend) cannot be loaded or fails.
    """
    return _encode(model, texts, batch_size, progress, on_batch, backend, with_layers=True)


def prepare(model: str, backend: str = "auto") -> str:
    """Resolve ``backend`` (:func:`resolve_backend`) and load what encoding with ``model`` on it needs: the ONNX
    session, and sentence-transformers only when the export cannot tokenize without it (or on the torch backends).
    Returns the resolved backend. The start-up warm-up calls it while Prefect's API comes up.

    Raises:
        ConfigError: unknown ``backend``.
        ModelLoadError: the model (or an explicitly requested backend) cannot be loaded.
    """
    chosen = resolve_backend(model, backend)
    _model_for(model, chosen)
    return chosen


def _model_for(model: str, chosen: str):  # -> SentenceTransformer | None
    """The loaded model when encoding on the resolved backend ``chosen`` needs it, None when an ONNX export
    tokenizes alone; an export that has no standalone tokenizer yet gets it written for later runs."""
    if _tokenizes_alone(model, chosen):
        return None
    st = load_model(model)
    if chosen in ONNX_BACKENDS:
        _save_tokenizer(model, chosen, st)
    return st


def _tokenizes_alone(model: str, chosen: str) -> bool:
    """Whether ``chosen`` runs an ONNX export with a standalone tokenizer (no sentence-transformers, no torch)."""
    if chosen not in ONNX_BACKENDS:
        return False
    try:
        return _onnx_encoder(model, chosen).tokenizer is not None
    except Exception:  # the export fails: the caller's own path reports it or falls back to torch
        return False


def _save_tokenizer(model: str, chosen: str, st) -> None:
    """Give an export made before standalone tokenizers existed its tokenizer, so later runs skip torch (never
    raises: a failing export is reported where it is used)."""
    try:
        write_tokenizer(st, _onnx_encoder(model, chosen).path, model=model)
    except Exception:
        pass


def _layers_of(model: str, backend: str, st) -> list[int] | None:
    """The layers to pool on ``backend`` (None: the backend cannot give them; logged once per reason). On the
    ONNX backends they are the ones the export pools (its sidecar's record), so ``st`` may be None there."""
    reason = layers_unavailable(model, backend)
    if reason is not None:
        if (model, f"{backend}+layers") not in _broken:
            _broken[(model, f"{backend}+layers")] = reason
            _log.info("middle-layer features of %s not from the %s pass (%s): computed apart", model, backend, reason)
        return None
    if backend in ONNX_BACKENDS:
        return list(_onnx_encoder(model, backend).layers)
    return model_layers(st, model=model)


def _encode(
    model: str,
    texts: Sequence[str],
    batch_size: int,
    progress: bool,
    on_batch: Callable[[int], None] | None,
    backend: str,
    *,
    with_layers: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    chosen = resolve_backend(model, backend)
    st = _model_for(model, chosen)
    layers = _layers_of(model, chosen, st) if with_layers else None
    if len(texts) == 0:
        st = st if st is not None else load_model(model)  # (always loaded for no texts: the sizes are its)
        hidden = int(st[0].auto_model.config.hidden_size) if layers is not None else 0
        empty = np.zeros((0, hidden), dtype=np.float32) if layers is not None else None
        return np.zeros((0, _dimension(st)), dtype=np.float32), empty
    texts = [t if isinstance(t, str) else str(t) for t in texts]
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out: np.ndarray | None = None
    layer_out: np.ndarray | None = None
    complete = layers is not None  # every chunk gave its middle-layer features
    chunk = max(1, batch_size) * 16
    done = 0
    for sl in _batches(len(texts), chunk):
        idx = order[sl]
        part = [texts[i] for i in idx]
        pooled: np.ndarray | None = None
        try:
            vectors, pooled = _encode_part(model, st, chosen, part, batch_size, progress, layers)
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
            st = st if st is not None else load_model(model)
            if layers is not None:
                layers = _layers_of(model, chosen, st)
            vectors, pooled = _encode_part(model, st, chosen, part, batch_size, progress, layers)
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[idx] = vectors
        if pooled is None:
            complete = False
        elif complete:
            if layer_out is None:
                layer_out = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            layer_out[idx] = pooled
        done += len(part)
        if on_batch is not None:
            on_batch(done)
    assert out is not None
    return out, layer_out if complete else None


def _encode_part(
    model: str, st, chosen: str, part: list[str], batch_size: int, progress: bool, layers: list[int] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """One chunk on the resolved backend ``chosen``: its vectors, and its middle-layer features when ``layers``."""
    bf16 = chosen == "torch-bf16"
    if chosen in ("torch", "torch-bf16"):
        if layers is not None:
            return _encode_torch_both(st, part, batch_size, progress, layers=layers, bf16=bf16)
        return _encode_torch(st, part, batch_size, progress, bf16=bf16), None
    encoder = _onnx_encoder(model, chosen)
    if layers is not None:
        return _encode_onnx_both(st, encoder, part, batch_size, progress)
    return _encode_onnx(st, encoder, part, batch_size, progress), None
