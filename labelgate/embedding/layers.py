"""Middle-layer features of the detector's ``layers`` member: mean-pooled token states of the upper middle layers.

:func:`encode_layers` computes them alone (a forward pass of their own, torch fp32): the reference the one-pass
backends are checked against, and the fallback when the embed stage could not cache them
(:func:`labelgate.embedding.encode_with_layers` gives them with the sentence embeddings).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from labelgate.core.pooling import pool_middle_layers
from labelgate.embedding.batching import TORCH_TOKEN_BUDGET, _token_batches
from labelgate.embedding.forward import LAYERS_NEEDED_BY, model_layers, transformer_parts
from labelgate.embedding.models import THREADS_ENV, compute_threads, load_model, model_key


def layers_key(model: str) -> str:
    """The embedding cache key of the middle-layer features of ``model`` (``<model key>#mid-layers``): those of
    :func:`encode_layers` and the fp32-equivalent ones of :func:`~labelgate.embedding.encode_with_layers` (torch,
    torch-bf16, onnx; checked against :func:`encode_layers` on probe texts), which agree to float rounding."""
    return f"{model_key(model)}#mid-layers"


def encode_layers(model: str, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Mean-pooled token states of the middle transformer layers of ``model``, averaged over those layers.

    The sentence embedding (:func:`~labelgate.embedding.encode`) is the last layer, trained for topical
    similarity; the middle layers keep more of a text's form (register, hedges, punctuation, syntax), which is
    what many labels are about. Texts are padded in length-sorted batches and truncated at the model's maximum
    sequence length; padding is masked, so a text's features do not depend on its batch (up to float rounding).

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
    auto_model, tokenizer = transformer_parts(st, model=model, needed_by=LAYERS_NEEDED_BY)
    hidden = int(auto_model.config.hidden_size)
    if len(texts) == 0:
        return np.zeros((0, hidden), dtype=np.float32)
    import torch

    if THREADS_ENV in os.environ:
        torch.set_num_threads(compute_threads())
    texts = [t if isinstance(t, str) else str(t) for t in texts]
    layers = model_layers(st, model=model)
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
            pooled = pool_middle_layers(states, mask, layers)
            out[order[sl]] = pooled.float().numpy()
    return out
