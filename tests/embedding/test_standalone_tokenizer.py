"""labelgate.embedding.standalone with the bundled MiniLM: the ONNX backends tokenize without sentence-transformers
(so without torch) when the export has a checked standalone tokenizer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelgate import embedding
from labelgate.config import DEFAULT_MODEL
from labelgate.embedding import standalone
from labelgate.embedding.onnx_export import _OnnxEncoder
from labelgate.errors import ModelLoadError

MODEL = DEFAULT_MODEL


# --- with the bundled MiniLM -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def texts(sample_csv: Path) -> list[str]:
    frame = pd.read_csv(sample_csv, dtype=str, keep_default_na=False)
    return [*frame["text"].tolist()[:60], "", "   ", "x " * 400]


@pytest.fixture(scope="module")
def st():
    return embedding.load_model(MODEL)


def test_the_standalone_tokenizer_gives_sentence_transformers_inputs(st, texts: list[str]) -> None:
    from labelgate.embedding.models import _features

    candidate = standalone.standalone_from(st)
    assert standalone.tokenizer_problem(st, candidate) is None
    for batch in (texts, texts[:7], texts[-3:], [texts[5]]):
        ref = _features(st, batch)
        got = candidate.features(batch)
        for name in standalone.INPUT_NAMES:
            np.testing.assert_array_equal(got[name], ref[name].numpy())
    assert candidate.features(["x " * 400])["input_ids"].shape == (1, st.max_seq_length)  # truncated as st does


def test_a_tokenizer_that_differs_is_reported_and_not_written(st, tmp_path: Path, monkeypatch) -> None:
    bad = standalone.standalone_from(st)
    bad.tokenizer.enable_truncation(max_length=16)  # shorter than the model's 256: the long probe text differs
    problem = standalone.tokenizer_problem(st, bad)
    assert problem is not None and "input_ids" in problem
    monkeypatch.setattr(standalone, "standalone_from", lambda _st: bad)
    export = tmp_path / "m-onnx.onnx"
    assert standalone.write_tokenizer(st, export, model=MODEL) == problem
    assert not standalone.tokenizer_file(export).exists()


@pytest.fixture(scope="module")
def bare_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the cached fp32 export (and its sidecar) without a standalone tokenizer beside it."""
    cached = embedding.export_onnx(MODEL)
    folder = tmp_path_factory.mktemp("export")
    copy = folder / cached.name
    shutil.copy(cached, copy)
    shutil.copy(cached.with_suffix(".json"), copy.with_suffix(".json"))
    return copy


def test_an_export_tokenizes_alone_once_its_tokenizer_is_written(st, bare_export: Path, texts: list[str]) -> None:
    without = _OnnxEncoder(bare_export)
    assert without.tokenizer is None and without.layers == (3, 4, 5)
    with pytest.raises(ModelLoadError, match="no standalone tokenizer"):
        without.run(None, texts[:2])
    reference = without.run_both(st, texts)
    assert standalone.write_tokenizer(st, bare_export, model=MODEL) is None
    alone = _OnnxEncoder(bare_export)
    assert alone.tokenizer is not None
    got = alone.run_both(None, texts)
    for ref, out in zip(reference, got):
        np.testing.assert_array_equal(out, ref)  # the same inputs, so the same bits


def test_an_onnx_run_imports_no_torch(tmp_path: Path, texts: list[str]) -> None:
    """Once the export and its tokenizer are cached, a new process embeds on ``onnx`` without importing torch or
    sentence-transformers, and gets the vectors and middle-layer features of this process, bit for bit."""
    embedding.prepare(MODEL, "onnx")  # exports if needed, and writes the tokenizer of an older export
    assert standalone.tokenizer_file(embedding.onnx_model_path(MODEL, "onnx")).exists()
    vectors, layers = embedding.encode_with_layers(MODEL, texts, backend="onnx")
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    code = (
        "import json, sys, numpy as np\n"
        "from labelgate import embedding\n"
        f"texts = json.loads(open({str(tmp_path / 'texts.json')!r}).read())\n"
        f"assert embedding.prepare({MODEL!r}, 'onnx') == 'onnx'\n"
        f"v, l = embedding.encode_with_layers({MODEL!r}, texts, backend='onnx')\n"
        f"np.save({str(tmp_path / 'v.npy')!r}, v); np.save({str(tmp_path / 'l.npy')!r}, l)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), vectors)
    np.testing.assert_array_equal(np.load(tmp_path / "l.npy"), layers)
