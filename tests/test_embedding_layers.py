"""Middle-layer features of the detector's ``layers`` member (the real bundled MiniLM, offline)."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate import embedding, store
from labelgate.config import CurateParams
from labelgate.errors import ModelLoadError
from labelgate.tasks.layers import layer_vectors

pytestmark = pytest.mark.flow

TEXTS = [
    "Could you please take a look at the references when you have a moment?",
    "Why did you revert my edit again?",
    "thanks!!",
    "This is plainly wrong and you know it.",
    "",
]


def test_middle_layers_are_the_upper_middle_without_the_last():
    assert embedding.middle_layers(6) == [3, 4, 5]
    assert embedding.middle_layers(12) == [6, 7, 8, 9, 10, 11]
    assert embedding.middle_layers(2) == [2]
    assert embedding.middle_layers(1) == [1]


def test_encode_layers_shape_and_batch_independence():
    model = CurateParams().model
    full = embedding.encode_layers(model, TEXTS, batch_size=64)
    assert full.shape == (len(TEXTS), 384) and full.dtype == np.float32
    assert np.isfinite(full).all()
    # a text's features do not depend on what it was batched with (padding is masked)
    alone = np.vstack([embedding.encode_layers(model, [t], batch_size=1) for t in TEXTS])
    np.testing.assert_allclose(alone, full, atol=1e-4)
    # they are not the sentence embedding (a different layer mix, not normalised)
    sentence = embedding.encode(model, TEXTS, backend="torch")
    assert not np.allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-3)
    assert full.shape[1] == sentence.shape[1]
    assert embedding.encode_layers(model, []).shape == (0, 384)


def test_encode_layers_names_a_model_it_cannot_load():
    with pytest.raises(ModelLoadError, match="no-such-model"):
        embedding.encode_layers("no-such-model", ["x"])


def test_layer_vectors_are_cached_under_their_own_key(tmp_path, monkeypatch):
    db = str(tmp_path / "l.duckdb")
    with store.connect(db) as con:
        store.migrate(con)
    params = CurateParams()
    hashes = ["h1", "h2", "h1"]
    text_of = {"h1": TEXTS[0], "h2": TEXTS[1]}
    first = layer_vectors(db, params, hashes, text_of)
    assert first.shape == (3, 384)
    np.testing.assert_array_equal(first[0], first[2])
    with store.connect(db) as con:
        assert store.cached_hashes(con, embedding.layers_key(params.model), ["h1", "h2"]) == {"h1", "h2"}
        assert not store.cached_hashes(con, embedding.model_key(params.model), ["h1", "h2"])
    calls = []
    monkeypatch.setattr(embedding, "encode_layers", lambda *a, **k: calls.append(a))
    again = layer_vectors(db, params, hashes, text_of)  # everything cached: no model call
    assert calls == []
    np.testing.assert_array_equal(again, first)


# --- one forward pass: the sentence vectors and the middle-layer features together (issue 16) -----------------


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_one_pass_gives_the_sentence_vectors_and_the_middle_layers(backend: str) -> None:
    """The same sentence vectors as encode (bitwise: the same batches, the same forward), and the features of
    encode_layers (its own fp32 pass) up to float rounding: torch fp32 pools the same states; auto is bf16 (checked
    at >= 0.999) or the onnx export's second output (>= 0.9999)."""
    model = CurateParams().model
    vectors, layers = embedding.encode_with_layers(model, TEXTS, batch_size=2, backend=backend)
    assert np.array_equal(vectors, embedding.encode(model, TEXTS, batch_size=2, backend=backend))
    assert layers is not None and layers.shape == (len(TEXTS), 384) and layers.dtype == np.float32
    reference = embedding.encode_layers(model, TEXTS)
    if backend == "torch":
        np.testing.assert_allclose(layers, reference, rtol=1e-5, atol=1e-5)
    assert _cos(layers, reference).min() >= embedding.BF16_MIN_COSINE
    assert embedding.layers_unavailable(model, embedding.resolve_backend(model, backend)) is None
    empty_vectors, empty_layers = embedding.encode_with_layers(model, [], backend=backend)
    assert empty_vectors.shape == (0, 384) and empty_layers is not None and empty_layers.shape == (0, 384)


def test_the_embed_stage_caches_the_layers_so_the_layers_stage_computes_nothing(tmp_path, monkeypatch):
    from labelgate.tasks.embed import embed_texts, wants_layers

    db = str(tmp_path / "one-pass.duckdb")
    with store.connect(db) as con:
        store.migrate(con)
    params = CurateParams()
    assert wants_layers(params)
    text_of = {f"h{i}": t for i, t in enumerate(TEXTS)}
    embed_texts(db, params, list(text_of), text_of, with_layers=True)
    with store.connect(db) as con:
        assert store.cached_hashes(con, embedding.layers_key(params.model), list(text_of)) == set(text_of)
        assert store.cached_hashes(con, embedding.model_key(params.model), list(text_of)) == set(text_of)
    calls = []
    monkeypatch.setattr(embedding, "encode_layers", lambda *a, **k: calls.append(a))
    cached = layer_vectors(db, params, list(text_of), text_of)
    assert calls == []  # the second pass did not run
    assert _cos(cached, np.vstack([embedding.encode_with_layers(params.model, [t])[1] for t in TEXTS])).min() > 0.9999
    # without the member the embed stage caches the sentence vectors alone (the layers stage would compute them)
    other = str(tmp_path / "no-layers.duckdb")
    with store.connect(other) as con:
        store.migrate(con)
    embed_texts(other, params, list(text_of), text_of)
    with store.connect(other) as con:
        assert not store.cached_hashes(con, embedding.layers_key(params.model), list(text_of))
