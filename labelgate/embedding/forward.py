"""One forward pass that gives both the sentence embedding and the middle-layer features of a text.

The ``layers`` detector member needs the mean-pooled token states of the model's middle layers
(:func:`labelgate.core.pooling.pool_middle_layers`); the sentence embedding is the model's own pooling of the last
layer. Both come from the same transformer call: :func:`forward_both` asks the Hugging Face model for its
``hidden_states`` and then runs the sentence-transformers modules after the transformer (for MiniLM: ``Pooling``
with mean pooling, then ``Normalize``) on the last one, exactly as ``SentenceTransformer.forward`` would, so the
sentence embedding is the one :func:`labelgate.embedding.encode` gives (bitwise in fp32 on the bundled MiniLM;
:func:`one_pass_problem` says when a model's pipeline is not the plain one this reproduces). Used by the torch
backends and traced into the ONNX export (its second output).
"""

from __future__ import annotations

from typing import Any

from labelgate.core.pooling import middle_layers, pool_middle_layers
from labelgate.errors import ModelLoadError

#: what the ``layers`` member needs of a model (ends the error message of :func:`transformer_parts`)
LAYERS_NEEDED_BY = "the 'layers' detector member needs one: drop it from --members"


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


def model_layers(st: Any, *, model: str) -> list[int]:
    """The ``hidden_states`` indices the ``layers`` member averages for ``st`` (:func:`middle_layers` of its depth).

    Raises:
        ModelLoadError: the first module is not a transformer (see :func:`transformer_parts`).
    """
    auto_model, _ = transformer_parts(st, model=model, needed_by=LAYERS_NEEDED_BY)
    return middle_layers(int(auto_model.config.num_hidden_layers))


def one_pass_problem(st: Any) -> str | None:
    """None when :func:`forward_both` reproduces ``st``'s own forward pass, else why not (one line).

    It does when the first module is sentence-transformers' ``Transformer`` over a Hugging Face model whose text
    path is its ``forward`` giving ``last_hidden_state`` (every BERT-like sentence-transformers model); any pooling
    and normalisation modules may follow.
    """
    first = st[0]
    if type(first).__name__ != "Transformer" or getattr(first, "auto_model", None) is None:
        return f"the first module is {type(first).__name__}, not a sentence-transformers Transformer"
    config = getattr(first, "modality_config", None)  # sentence-transformers >= 5; older ones: the plain forward
    if config is not None:
        text = config.get("text") or {}
        output = text.get("method_output_name")
        if isinstance(output, list | tuple):
            output = output[0] if len(output) == 1 else None
        if text.get("method") != "forward" or output != "last_hidden_state":
            return f"its text path is {text.get('method')!r} -> {text.get('method_output_name')!r}"
    return None


def forward_both(st: Any, features: dict[str, Any], layers: list[int]) -> tuple[Any, Any]:
    """One forward pass of ``st`` over tokenised ``features``: ``(sentence_embedding, middle_layer_features)``.

    Args:
        st: a sentence-transformers model that passes :func:`one_pass_problem`.
        features: its tokenizer output for one batch (``input_ids``, ``attention_mask``, ... as torch tensors).
        layers: the ``hidden_states`` indices to pool (:func:`model_layers`).

    Returns:
        torch tensors ``(batch, dim)`` (what ``st`` outputs: normalised when its pipeline normalises) and
        ``(batch, hidden)`` float32 (:func:`~labelgate.core.pooling.pool_middle_layers` over the attention mask;
        under bf16 autocast the states are pooled in float32).
    """
    import torch

    first = st[0]
    inputs = {name: value for name, value in features.items() if isinstance(value, torch.Tensor)}
    out = first.auto_model(**inputs, output_hidden_states=True, return_dict=True)
    states = out.hidden_states
    feats = dict(features)
    feats[getattr(first, "module_output_name", "token_embeddings")] = out.last_hidden_state
    feats["all_layer_embeddings"] = states  # what the Transformer module adds when hidden states are on
    for module in list(st)[1:]:
        feats = module(feats)
    mask = features["attention_mask"].unsqueeze(-1).to(torch.float32)
    pooled = pool_middle_layers([states[i].float() for i in layers], mask, list(range(len(layers))))
    return feats["sentence_embedding"], pooled
