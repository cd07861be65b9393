"""Middle-layer features of the detector's ``layers`` member: mean-pooled token states of the upper middle layers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from labelgate.embedding.batching import TORCH_TOKEN_BUDGET, _token_batches
from labelgate.embedding.models import THREADS_ENV, compute_threads, load_model, model_key
from labelgate.errors import ModelLoadError


def layers_key(model: str) -> str:
    """The embedding cache key of :func:`encode_layers` features of ``model`` (``<model key>#mid-layers``)."""
    return f"{model_key(model)}#mid-layers"


def middle_layers(n_layers: int) -> list[int]:
    """Indices into a transformer's ``hidden_states`` (0 = the token embeddings, ``i`` = layer ``i``'s output) of
    the layers :func:`encode_layers` averages: the upper middle, from layer ``n_layers // 2`` up to the one before
    the last (layers 3-5 of a 6-layer model, 6-11 of a 12-layer one); the last alone for one or two layers."""
    if n_layers <= 2:
        return [n_layers]
    return list(range(n_layers // 2, n_layers))


def transformer_parts(st: Any, *, model: str, needed_by: str) -> tuple[Any, Any]:
    """``(auto_model, tokenizer)`` of a sentence-transformers model's first module (a Hugging Face transformer).

    Raises:
        ModelLoadError: the first module is not a transformer; the message names ``model`` and ends with
            ``needed_by`` (what needs one and what to do).
    """
    first = st[0]
    auto_model = getattr(first, "auto_model", None)
    tokenizer = getattr(first, "tokenizer", None)
    if auto_model is None or tokenizer is None:
        raise ModelLoadError(f"model {model!r} has no transformer first module ({type(first).__name__}); {needed_by}")
    return auto_model, tokenizer


def encode_layers(model: str, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Mean-pooled token states of the middle transformer layers of ``model``, averaged over those layers.

    The sentence embedding (:func:`encode`) is the last layer, trained for topical similarity; the middle
    layers keep more of a text's form (register, hedges, punctuation, syntax), which is what many labels are
    about. Texts are padded in length-sorted batches and truncated at the model's maximum sequence length;
    padding is masked, so a text's features do not depend on its batch (up to float rounding).

    Args:
        model: a sentence-transformers model name or path whose first module is a Hugging Face transformer.
        texts: the texts.
        batch_size: texts per forward pass.

    Returns:
        float32 array ``(len(texts), hidden_size)`` (not normalised).

    Raises:
        ModelLoadError: the model cannot be loaded, or its first module is not a transformer.
    """
    st = load_model(model)
    first = st[0]
    auto_model, tokenizer = transformer_parts(
        st, model=model, needed_by="the 'layers' detector member needs one: drop it from --members"
    )
    hidden = int(auto_model.config.hidden_size)
    if len(texts) == 0:
        return np.zeros((0, hidden), dtype=np.float32)
    import torch

    if THREADS_ENV in os.environ:
        torch.set_num_threads(compute_threads())
    texts = [t if isinstance(t, str) else str(t) for t in texts]
    layers = middle_layers(int(auto_model.config.num_hidden_layers))
    max_length = int(getattr(st, "max_seq_length", None) or getattr(first, "max_seq_length", 512) or 512)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    ordered = [texts[i] for i in order]
    out = np.empty((len(texts), hidden), dtype=np.float32)
    auto_model.eval()
    with torch.inference_mode():
        for sl in _token_batches(ordered, batch_size, TORCH_TOKEN_BUDGET):
            batch = tokenizer(ordered[sl], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            states = auto_model(**batch, output_hidden_states=True).hidden_states
            mask = batch["attention_mask"].unsqueeze(-1).to(states[0].dtype)
            count = mask.sum(dim=1).clamp(min=1.0)
            pooled = torch.stack([(states[i] * mask).sum(dim=1) / count for i in layers]).mean(dim=0)
            out[order[sl]] = pooled.float().numpy()
    return out
