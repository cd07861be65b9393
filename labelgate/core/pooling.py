"""Pooling of a transformer's token states into one vector per text: the middle-layer features of the ``layers``
detector member.

Written with array operations that numpy arrays and torch tensors share (``*``, ``+``, ``/``, ``.sum(axis=)``,
``.clip(min=)``), so one function serves the torch forward pass, the ONNX export (traced from torch) and the unit
tests (numpy arrays); nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["masked_mean", "middle_layers", "pool_middle_layers"]


def middle_layers(n_layers: int) -> list[int]:
    """Indices into a transformer's ``hidden_states`` (0 = the token embeddings, ``i`` = layer ``i``'s output) of
    the layers :func:`pool_middle_layers` averages: the upper middle, from layer ``n_layers // 2`` up to the one
    before the last (layers 3-5 of a 6-layer model, 6-11 of a 12-layer one); the last alone for one or two layers."""
    if n_layers <= 2:
        return [n_layers]
    return list(range(n_layers // 2, n_layers))


def masked_mean(states: Any, mask: Any) -> Any:
    """Mean of the token states over the tokens the mask keeps.

    Args:
        states: float array ``(batch, seq, hidden)`` (numpy array or torch tensor).
        mask: float array ``(batch, seq, 1)`` of the same kind and dtype: 1.0 for a token, 0.0 for padding.

    Returns:
        ``(batch, hidden)``; a row with no token at all (an all-zero mask) is zero, not NaN.
    """
    count = mask.sum(axis=1).clip(min=1.0)
    return (states * mask).sum(axis=1) / count


def pool_middle_layers(hidden_states: Sequence[Any], mask: Any, layers: Sequence[int]) -> Any:
    """The middle-layer features: :func:`masked_mean` of each of ``hidden_states[i]`` for ``i`` in ``layers``,
    averaged over those layers (summed in the order of ``layers``, then divided by their number).

    Args:
        hidden_states: per layer a float array ``(batch, seq, hidden)``, index 0 the token embeddings (as Hugging Face
            models return them with ``output_hidden_states=True``).
        mask: float array ``(batch, seq, 1)``: 1.0 for a token, 0.0 for padding (the attention mask).
        layers: indices into ``hidden_states`` (see :func:`middle_layers`), at least one.

    Returns:
        ``(batch, hidden)`` in the dtype of ``hidden_states`` and ``mask`` (not normalised).

    Raises:
        ValueError: ``layers`` is empty.
    """
    if not layers:
        raise ValueError("pool_middle_layers needs at least one layer index")
    total = masked_mean(hidden_states[layers[0]], mask)
    for i in layers[1:]:
        total = total + masked_mean(hidden_states[i], mask)
    return total / len(layers)
