"""Pooling of hand-made hidden states into the middle-layer features (no model, no torch: numpy arrays)."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate.core.pooling import masked_mean, middle_layers, pool_middle_layers

pytestmark = pytest.mark.unit


def _states(n_layers: int = 6, batch: int = 3, seq: int = 5, hidden: int = 4, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, seq, hidden)).astype(np.float32) for _ in range(n_layers + 1)]


def _mask(lengths: list[int], seq: int = 5) -> np.ndarray:
    return np.array([[1.0] * n + [0.0] * (seq - n) for n in lengths], dtype=np.float32)[..., None]


def test_middle_layers_are_the_upper_middle_without_the_last():
    assert middle_layers(6) == [3, 4, 5]
    assert middle_layers(12) == [6, 7, 8, 9, 10, 11]
    assert middle_layers(2) == [2]
    assert middle_layers(1) == [1]


def test_masked_mean_averages_only_the_tokens_the_mask_keeps():
    states = _states()[0]
    mask = _mask([5, 2, 1])
    got = masked_mean(states, mask)
    assert got.shape == (3, 4) and got.dtype == np.float32
    for row, n in enumerate([5, 2, 1]):
        np.testing.assert_allclose(got[row], states[row, :n].mean(axis=0), rtol=1e-6, atol=1e-6)


def test_padding_does_not_change_a_texts_features():
    states = _states(seq=5)
    mask = _mask([2, 5, 3])
    garbage = [s.copy() for s in states]
    for s in garbage:
        s[0, 2:] = 1e6  # padded positions of text 0 hold anything
    layers = middle_layers(6)
    np.testing.assert_array_equal(pool_middle_layers(states, mask, layers), pool_middle_layers(garbage, mask, layers))
    # the same text padded to a shorter batch (its own length): the same features
    alone = pool_middle_layers([s[:1, :2] for s in states], mask[:1, :2], layers)
    np.testing.assert_allclose(alone[0], pool_middle_layers(states, mask, layers)[0], rtol=1e-6, atol=1e-6)


def test_pool_middle_layers_is_the_mean_over_the_chosen_layers_of_the_token_means():
    states = _states(n_layers=6)
    mask = _mask([4, 1, 5])
    got = pool_middle_layers(states, mask, [3, 4, 5])
    expected = np.mean([[states[i][r, :n].mean(axis=0) for r, n in enumerate([4, 1, 5])] for i in (3, 4, 5)], axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # the other layers (token embeddings, first layers, last layer) play no part
    changed = [s.copy() for s in states]
    for i in (0, 1, 2, 6):
        changed[i] += 100.0
    np.testing.assert_array_equal(pool_middle_layers(changed, mask, [3, 4, 5]), got)
    # one layer: its masked token mean
    np.testing.assert_array_equal(pool_middle_layers(states, mask, [6]), masked_mean(states[6], mask))


def test_a_text_without_tokens_pools_to_zeros_not_nan_and_no_layer_is_an_error():
    states = _states()
    got = pool_middle_layers(states, _mask([0, 3, 5]), [3, 4, 5])
    assert np.isfinite(got).all() and not got[0].any()
    with pytest.raises(ValueError, match="at least one layer"):
        pool_middle_layers(states, _mask([1, 1, 1]), [])
