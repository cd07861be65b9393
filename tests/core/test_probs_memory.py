"""The ensemble's arithmetic in less memory gives the same bits: the mean of the members without stacking them, the
normalisation and the temperature scaling in place (what 100,000 rows x 150 classes needed; see
docs/benchmarks.md)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.core.probs import _mean, _normalise, temperature_scale

pytestmark = pytest.mark.unit


def _old_temperature_scale(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """temperature_scale as it was before it worked in place (the reference)."""
    from scipy.optimize import minimize_scalar

    def normalise(p: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1.0)
        return p / p.sum(axis=1, keepdims=True)

    logp = np.log(np.clip(probs, 1e-12, 1.0))

    def scaled(T: float) -> np.ndarray:
        z = logp / T
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def loss(T: float) -> float:
        return float(-np.log(np.clip(scaled(T)[np.arange(len(labels)), labels], 1e-12, 1.0)).mean())

    T = float(minimize_scalar(loss, bounds=(0.05, 20.0), method="bounded").x)
    return normalise(scaled(T)), T


@settings(max_examples=50, deadline=None)
@given(members=st.integers(1, 6), rows=st.integers(1, 40), classes=st.integers(2, 9), seed=st.integers(0, 10**6))
def test_the_mean_of_the_members_is_numpys_mean_bit_for_bit(members, rows, classes, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.dirichlet(np.ones(classes), size=rows) for _ in range(members)]
    want = np.mean(arrays, axis=0)
    got = _mean(arrays)
    assert got.tobytes() == want.tobytes()
    assert all(a is not got for a in arrays)  # a new array: the members are left as they were


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(2, 60), classes=st.integers(2, 7), seed=st.integers(0, 10**6))
def test_normalising_and_temperature_scaling_in_place_give_the_same_bits(rows, classes, seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(classes, 0.5), size=rows)
    probs[0, 0] = 0.0  # clipped to 1e-9
    labels = rng.integers(classes, size=rows)
    reference = np.clip(probs, 1e-9, 1.0)
    reference = reference / reference.sum(axis=1, keepdims=True)
    assert _normalise(probs).tobytes() == reference.tobytes()
    copy = probs.copy()
    assert _normalise(copy, inplace=True).tobytes() == reference.tobytes() and copy.tobytes() == reference.tobytes()
    got, temperature = temperature_scale(probs, labels)
    want, temperature_want = _old_temperature_scale(probs, labels)
    assert temperature == temperature_want and got.tobytes() == want.tobytes()
