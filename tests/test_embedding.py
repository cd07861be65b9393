"""labelgate.embedding with the real bundled MiniLM: vectors, backends, cache keys, ONNX export, errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelgate import embedding
from labelgate.config import DEFAULT_MODEL, CurateParams
from labelgate.errors import ConfigError, ModelLoadError

MODEL = DEFAULT_MODEL


@pytest.fixture(scope="module")
def texts(sample_csv: Path) -> list[str]:
    """48 real support tickets of varied length (plus an empty and a whitespace-only text)."""
    frame = pd.read_csv(sample_csv, dtype=str, keep_default_na=False)
    return [*frame["text"].tolist()[:46], "", "   "]


@pytest.fixture(scope="module")
def torch_vectors(texts: list[str]) -> np.ndarray:
    return embedding.encode(MODEL, texts, backend="torch")


@pytest.fixture
def fresh_backends():
    """Forget ONNX sessions/failures before and after a test that changes where exports live."""
    embedding.clear_caches()
    yield
    embedding.clear_caches()


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# --- cache keys -----------------------------------------------------------------------------------------


def test_model_key_of_default_is_stable_across_spellings_and_fp32_backends() -> None:
    backends = ("torch", "torch-bf16", "onnx", "auto")
    keys = {embedding.model_key(m, b) for m in (MODEL, embedding.DEFAULT_MODEL_KEY) for b in backends}
    assert keys == {"sentence-transformers/all-MiniLM-L6-v2"}
    assert embedding.model_key(MODEL) == embedding.DEFAULT_MODEL_KEY


def test_int8_vectors_never_share_the_fp32_key() -> None:
    int8 = embedding.model_key(MODEL, "onnx-int8")
    assert int8 != embedding.model_key(MODEL)
    assert int8 == "sentence-transformers/all-MiniLM-L6-v2#onnx-int8"


def test_model_key_of_a_local_folder_is_its_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    assert embedding.model_key("my-model") == f"path:{folder.resolve()}"
    assert embedding.model_key("some-org/remote-name") == "some-org/remote-name"


def test_unknown_backend_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="'tensorrt'"):
        embedding.model_key(MODEL, "tensorrt")
    with pytest.raises(ConfigError, match="'tensorrt'"):
        embedding.encode(MODEL, ["x"], backend="tensorrt")


def test_run_parameters_default_to_the_auto_backend() -> None:
    assert CurateParams().embed_backend == "auto"
    assert CurateParams(embed_backend="torch-bf16").embed_backend == "torch-bf16"
    with pytest.raises(ValueError, match="embed_backend"):
        CurateParams(embed_backend="gpu")


# --- loading errors -------------------------------------------------------------------------------------


def test_missing_model_folder_is_a_clear_model_load_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="no-such-model") as info:
        embedding.load_model(str(missing))
    assert "never downloaded" in str(info.value)
    assert "\n" not in str(info.value)


def test_folder_that_is_not_a_model_is_a_model_load_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match="cannot load embedding model"):
        embedding.load_model(str(tmp_path))


def test_unknown_model_name_is_not_looked_up_online() -> None:
    with pytest.raises(ModelLoadError, match="no-such-org/no-such-model"):
        embedding.load_model("no-such-org/no-such-model")


# --- vectors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_vectors_are_unit_float32_rows_in_input_order(backend: str, texts: list[str]) -> None:
    vectors = embedding.encode(MODEL, texts, backend=backend)
    assert vectors.shape == (len(texts), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # input order: embedding one text alone gives that text's row
    alone = embedding.encode(MODEL, [texts[7]], backend=backend)
    assert _cosines(alone, vectors[7:8])[0] > 0.99999


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_encoding_is_deterministic(backend: str, texts: list[str]) -> None:
    first = embedding.encode(MODEL, texts, backend=backend)
    again = embedding.encode(MODEL, texts, backend=backend)
    np.testing.assert_array_equal(first, again)


def test_batch_size_and_order_do_not_change_vectors(texts: list[str], torch_vectors: np.ndarray) -> None:
    shuffled = list(reversed(texts))
    vectors = embedding.encode(MODEL, shuffled, batch_size=5, backend="auto")[::-1]
    assert _cosines(vectors, torch_vectors).min() > 0.9999


def test_empty_input_gives_an_empty_matrix() -> None:
    for backend in ("torch", "auto"):
        empty = embedding.encode(MODEL, [], backend=backend)
        assert empty.shape == (0, 384) and empty.dtype == np.float32


def test_on_batch_reports_progress_up_to_the_total(texts: list[str]) -> None:
    seen: list[int] = []
    embedding.encode(MODEL, texts, batch_size=2, on_batch=seen.append, backend="auto")
    assert seen == sorted(seen) and seen[-1] == len(texts) and len(seen) == 2  # chunks of 2 * 16 texts


def test_auto_picks_the_fastest_fp32_equivalent_backend() -> None:
    expected = "torch-bf16" if embedding.bf16_supported() else "onnx"  # onnx + onnxruntime are dependencies
    assert embedding.resolve_backend(MODEL, "auto") == expected


def test_onnx_backend_reproduces_torch_vectors(texts: list[str], torch_vectors: np.ndarray) -> None:
    assert embedding.resolve_backend(MODEL, "onnx") == "onnx"
    vectors = embedding.encode(MODEL, texts, backend="onnx")
    cos = _cosines(vectors, torch_vectors)
    assert cos.min() >= 0.9999, cos.min()  # numerically the same vectors: they share the cache key


def test_released_sessions_load_again_on_the_next_encode_with_the_same_vectors(texts: list[str]) -> None:
    from labelgate.embedding.onnx_export import _onnx_encoder

    before = embedding.encode(MODEL, texts, backend="onnx")
    assert _onnx_encoder.cache_info().currsize >= 1
    embedding.release_sessions()
    assert _onnx_encoder.cache_info().currsize == 0
    np.testing.assert_array_equal(embedding.encode(MODEL, texts, backend="onnx"), before)
    assert _onnx_encoder.cache_info().currsize == 1


@pytest.mark.skipif(not embedding.bf16_supported(), reason="no native bfloat16 on this CPU")
def test_torch_bf16_reproduces_fp32_vectors(texts: list[str], torch_vectors: np.ndarray) -> None:
    vectors = embedding.encode(MODEL, texts, backend="torch-bf16")
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = _cosines(vectors, torch_vectors)
    assert cos.min() >= embedding.BF16_MIN_COSINE, cos.min()  # equivalent: shares the fp32 cache key


def test_bf16_can_be_switched_off(monkeypatch: pytest.MonkeyPatch, fresh_backends: None) -> None:
    monkeypatch.setenv(embedding.BF16_ENV, "0")
    assert not embedding.bf16_supported()
    assert embedding.resolve_backend(MODEL, "auto") == "onnx"
    with pytest.raises(ModelLoadError, match="'torch-bf16' unavailable"):
        embedding.resolve_backend(MODEL, "torch-bf16")


def test_auto_falls_back_to_torch_with_a_warning_when_export_is_impossible(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_backends: None,
    texts: list[str],
    torch_vectors: np.ndarray,
) -> None:
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("the export folder cannot be created under a file")
    monkeypatch.setenv(embedding.CACHE_ENV, str(blocker))
    monkeypatch.setenv(embedding.BF16_ENV, "0")  # bf16 needs no export: rule it out to reach the torch fallback
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]  (prefect's logging setup replaces caplog's)
    logger = logging.getLogger("labelgate.embedding")
    logger.addHandler(handler)
    try:
        assert embedding.resolve_backend(MODEL, "auto") == "torch"
        vectors = embedding.encode(MODEL, texts[:6], backend="auto")
    finally:
        logger.removeHandler(handler)
    warned = [r.getMessage() for r in records if "ONNX embedding backend unavailable" in r.getMessage()]
    assert len(warned) == 1 and "using torch" in warned[0]  # once per process, not per call
    assert _cosines(vectors, torch_vectors[:6]).min() > 0.99999
    with pytest.raises(ModelLoadError, match="'onnx' unavailable"):
        embedding.encode(MODEL, texts[:2], backend="onnx")  # an explicit choice is never silently replaced


# --- ONNX export (fresh, in a private cache dir) --------------------------------------------------------


@pytest.mark.slow
def test_export_is_verified_cached_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_backends: None
) -> None:
    monkeypatch.setenv(embedding.CACHE_ENV, str(tmp_path))
    path = embedding.export_onnx(MODEL)
    assert path.parent == tmp_path / "onnx" and path.name.endswith("-onnx.onnx")
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["graph"] == "fused"  # attention/LayerNorm/GELU fused by the transformer optimizer
    assert info["probe_cosine_min"] >= embedding.FP32_MIN_COSINE
    # the second output: the middle-layer features of the same pass, checked against encode_layers
    assert info["outputs"] == ["sentence_embedding", embedding.LAYERS_OUTPUT] and info["layers"] == [3, 4, 5]
    assert info["layers_probe_cosine_min"] >= embedding.FP32_MIN_COSINE
    assert embedding.onnx_export_info(MODEL) == info
    mtime = path.stat().st_mtime_ns
    assert embedding.export_onnx(MODEL) == path and path.stat().st_mtime_ns == mtime  # cached: not re-exported
    assert [p.name for p in (tmp_path / "onnx").iterdir() if p.name.startswith(".")] == []  # no temp leftovers
    assert embedding.onnx_model_path(MODEL, "onnx-int8") != path


@pytest.mark.slow
def test_int8_backend_is_lossy_and_keyed_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_backends: None, texts: list[str], torch_vectors
) -> None:
    monkeypatch.setenv(embedding.CACHE_ENV, str(tmp_path))
    vectors = embedding.encode(MODEL, texts, backend="onnx-int8")
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = _cosines(vectors, torch_vectors)
    # dynamic int8 keeps the mean at about 0.99 but single texts drop to about 0.97: that is why it is
    # opt-in and never shares the fp32 cache key
    assert cos.mean() >= 0.98, cos.mean()
    assert cos.min() >= embedding.INT8_MIN_COSINE, cos.min()
    assert embedding.onnx_export_info(MODEL, "onnx-int8")["graph"] == "int8"
    # int8 layer features would be lossy under the fp32 layers key: the int8 graph has no such output
    assert embedding.onnx_export_info(MODEL, "onnx-int8")["outputs"] == ["sentence_embedding"]
    again, layers = embedding.encode_with_layers(MODEL, texts, backend="onnx-int8")
    assert layers is None and np.array_equal(again, vectors)
    assert "lossy" in (embedding.layers_unavailable(MODEL, "onnx-int8") or "")


def test_the_export_format_is_part_of_the_cache_file_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bumping EXPORT_FORMAT (2: the middle-layer output) makes every older cached export a miss."""
    from labelgate.embedding import onnx_export

    current = embedding.onnx_model_path(MODEL)
    monkeypatch.setattr(onnx_export, "EXPORT_FORMAT", embedding.EXPORT_FORMAT - 1)
    assert embedding.onnx_model_path(MODEL) != current


@pytest.mark.slow
def test_an_export_whose_layer_output_fails_the_check_keeps_the_sentence_output_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_backends: None, texts: list[str], torch_vectors
) -> None:
    from labelgate.embedding import onnx_export

    monkeypatch.setenv(embedding.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(onnx_export, "_layers_agreement", lambda *a: (0.5, 0.9))
    info = json.loads(embedding.export_onnx(MODEL).with_suffix(".json").read_text())
    assert info["outputs"] == ["sentence_embedding"] and "layers" not in info
    vectors, layers = embedding.encode_with_layers(MODEL, texts, backend="onnx")
    assert layers is None  # the layers stage computes them with encode_layers
    assert _cosines(vectors, torch_vectors).min() >= embedding.FP32_MIN_COSINE
    assert "no middle-layer output" in (embedding.layers_unavailable(MODEL, "onnx") or "")
