"""ONNX export of a sentence-transformers pipeline (fused fp32 or dynamic int8), verified, cached on disk,
and the ONNX Runtime sessions that run it.

The fp32 export (``onnx``) has two outputs: ``sentence_embedding`` and ``middle_layers``, the ``layers`` detector
member's features pooled from the same forward pass (:func:`labelgate.embedding.forward.forward_both`), each
checked on the probe texts (against sentence-transformers' vectors and :func:`labelgate.embedding.encode_layers`)
before it is used. A model whose pipeline cannot give them (:func:`~labelgate.embedding.forward.one_pass_problem`)
or whose layers output fails the check is exported with the sentence embedding alone. The int8 export
(``onnx-int8``) always has the sentence embedding alone: int8 layer features would be lossy, and they are cached
under the fp32 key, so an int8 run computes them apart (:func:`~labelgate.embedding.encode_layers`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from labelgate.core.vectors import unit_rows
from labelgate.embedding.batching import _run_batches, _run_batches_both
from labelgate.embedding.forward import forward_both, model_layers, one_pass_problem
from labelgate.embedding.layers import encode_layers
from labelgate.embedding.models import (
    ONNX_BACKENDS,
    PROBE_TEXTS,
    _features,
    _first_line,
    _hf_config,
    _load,
    _log,
    _source,
    compute_threads,
    load_model,
    model_key,
)
from labelgate.embedding.standalone import load_tokenizer, tokenizer_file, write_tokenizer
from labelgate.errors import ConfigError, ModelLoadError

#: environment variable naming the folder of exported ONNX models (default: the user cache dir)
CACHE_ENV = "LABELGATE_CACHE_DIR"
#: an fp32 export is used only when every probe text's cosine to the torch vector is at least this
FP32_MIN_COSINE = 0.9999
#: sanity floor of the int8 export on the probe texts (it is lossy by design; see the package docstring)
INT8_MIN_COSINE = 0.95
#: bump to invalidate every cached export (part of the cache file name); 2: the fp32 graph's ``middle_layers`` output
EXPORT_FORMAT = 2
ONNX_OPSET = 17
#: name of the fp32 export's second output (the middle-layer features)
LAYERS_OUTPUT = "middle_layers"
#: ONNX backend: padded tokens per forward pass (at most ``batch_size`` texts); small batches of similar
#: length keep the activations in cache (measured on 2 cores: batches of ~8-16 short texts beat 64)
ONNX_TOKEN_BUDGET = 256


def onnx_cache_dir() -> Path:
    """Folder of the exported models: ``$LABELGATE_CACHE_DIR``, else ``$XDG_CACHE_HOME/labelgate``, else
    ``~/.cache/labelgate``; the files live in its ``onnx/`` subfolder."""
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "labelgate"
    )
    return Path(base).expanduser() / "onnx"


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("torch", "transformers", "sentence-transformers", "onnxruntime", "onnx"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "-"
    return out


def onnx_model_path(model: str, variant: str = "onnx") -> Path:
    """Cache file of ``model`` exported as ``variant`` (``onnx`` or ``onnx-int8``).

    The name carries a fingerprint of the model files (path, size, mtime), the library versions and
    :data:`EXPORT_FORMAT`, so a changed model or library gets a fresh export.
    """
    if variant not in ONNX_BACKENDS:
        raise ConfigError(f"no ONNX export for backend {variant!r}; choose onnx or onnx-int8")
    source = _source(model)
    h = hashlib.sha256(json.dumps([EXPORT_FORMAT, ONNX_OPSET, model_key(model), source, _versions()]).encode())
    folder = Path(source)
    if folder.is_dir():
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_key(model).rsplit("/", 1)[-1])[:60] or "model"
    return onnx_cache_dir() / f"{slug}-{h.hexdigest()[:16]}-{variant}.onnx"


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the exporter, optimizer and quantiser (tracer warnings, INFO and WARNING logs) while they run."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _session_options(ort):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = compute_threads()
    so.inter_op_num_threads = 1
    # idle worker threads sleep instead of spinning: on a shared 2-core machine spinning threads steal the
    # CPU from the ones doing work (measured: ~1.5x faster under load, a few % slower on an idle machine)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


class _OnnxEncoder:
    """An ONNX Runtime session over an exported sentence-transformers pipeline (``has_layers``: the graph also
    outputs the middle-layer features, pooled from ``layers``).

    ``tokenizer`` is the export's standalone tokenizer (:mod:`labelgate.embedding.standalone`) when one was saved
    beside it: the encoder then tokenizes without sentence-transformers, and its methods take ``st=None``.
    Without it they need the loaded model ``st`` to tokenize."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        self.path = path
        self.session = ort.InferenceSession(str(path), _session_options(ort), providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        self.output = outputs[0]
        self.has_layers = LAYERS_OUTPUT in outputs
        self.tokenizer = load_tokenizer(tokenizer_file(path))
        if self.tokenizer is not None and not set(self.inputs) <= set(self.tokenizer.features(["a"])):
            self.tokenizer = None  # the graph needs an input only sentence-transformers gives
        try:
            self.layers: tuple[int, ...] = tuple(json.loads(path.with_suffix(".json").read_text()).get("layers") or ())
        except (OSError, ValueError):
            self.layers = ()

    def _feed(self, st, texts: list[str]) -> dict[str, np.ndarray]:
        if self.tokenizer is not None:
            feats: Any = self.tokenizer.features(texts)
        elif st is None:
            raise ModelLoadError(f"the ONNX export {self.path.name} has no standalone tokenizer: pass the model")
        else:
            feats = _features(st, texts)
        return {name: np.ascontiguousarray(np.asarray(feats[name], dtype=np.int64)) for name in self.inputs}

    def run(self, st, texts: list[str]) -> np.ndarray:
        """The sentence vectors of ``texts`` ``(n, dim)`` (as the graph outputs them)."""
        return np.asarray(self.session.run([self.output], self._feed(st, texts))[0], dtype=np.float32)

    def run_both(self, st, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The sentence vectors ``(n, dim)`` and middle-layer features ``(n, hidden)`` of ``texts`` (needs
        ``has_layers``)."""
        vectors, layers = self.session.run([self.output, LAYERS_OUTPUT], self._feed(st, texts))
        return np.asarray(vectors, dtype=np.float32), np.asarray(layers, dtype=np.float32)


def _encode_onnx(st, encoder: _OnnxEncoder, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
    return _run_batches(texts, batch_size, ONNX_TOKEN_BUDGET, progress, lambda batch: encoder.run(st, batch))


def _encode_onnx_both(
    st, encoder: _OnnxEncoder, texts: list[str], batch_size: int, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Sentence vectors and middle-layer features from one run of the two-output graph per batch."""
    vectors, layers = _run_batches_both(
        texts, batch_size, ONNX_TOKEN_BUDGET, progress, lambda batch: encoder.run_both(st, batch)
    )
    assert layers is not None
    return vectors, layers


def _export_pipeline(st, dest: Path, layers: list[int] | None = None) -> None:
    """``torch.onnx.export`` the whole pipeline of ``st`` (tensors in, sentence embedding out) to ``dest``; with
    ``layers`` (the ``hidden_states`` indices to pool) a second output :data:`LAYERS_OUTPUT` of the middle-layer
    features, from the same forward pass (:func:`~labelgate.embedding.forward.forward_both`)."""
    import torch

    feats = _features(st, list(PROBE_TEXTS[:2]))
    names = [k for k, v in feats.items() if isinstance(v, torch.Tensor)]
    if not names or "input_ids" not in names:
        raise ModelLoadError(f"model inputs {sorted(feats)} are not token ids: only text models export to ONNX")

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors):
            if layers is None:
                return self.st(dict(zip(names, tensors)))["sentence_embedding"]
            return forward_both(self.st, dict(zip(names, tensors)), layers)

    outputs = ["sentence_embedding"] if layers is None else ["sentence_embedding", LAYERS_OUTPUT]
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes.update({name: {0: "batch"} for name in outputs})
    with torch.no_grad(), _quiet_export():
        torch.onnx.export(
            Pipeline().eval(),
            tuple(feats[n] for n in names),
            str(dest),
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
            dynamo=False,  # the TorchScript exporter: needs only the onnx package (no onnxscript)
        )


def _fuse(src: Path, dest: Path, config) -> bool:
    """Fuse attention/LayerNorm/GELU with ONNX Runtime's transformer optimizer; False when it does not apply."""
    model_type = getattr(config, "model_type", "")
    if model_type not in ("bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "camembert", "electra"):
        return False
    from onnxruntime.transformers import optimizer

    with _quiet_export():
        fused = optimizer.optimize_model(
            str(src),
            model_type="bert",
            num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
            hidden_size=int(getattr(config, "hidden_size", 0) or 0),
            opt_level=1,  # basic, hardware-independent graph rewrites + python fusions
        )
        fused.save_model_to_file(str(dest))
    return True


def _quantize(src: Path, dest: Path) -> None:
    """Dynamic int8 quantisation of the weight matrices (per output channel; activations stay dynamic)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_export():
        quantize_dynamic(
            str(src),
            str(dest),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            extra_options={"MatMulConstBOnly": True},  # never quantise activation x activation products
        )


def _agreement(st, encoder: _OnnxEncoder) -> tuple[float, float]:
    """(min, mean) cosine of the encoder's vectors to sentence-transformers' torch vectors on the probe texts."""
    texts = list(PROBE_TEXTS)
    ref = np.asarray(st.encode(texts, normalize_embeddings=True, convert_to_numpy=True), dtype=np.float32)
    got = unit_rows(encoder.run(st, texts))
    cos = (ref * got).sum(axis=1)
    return float(cos.min()), float(cos.mean())


def _layers_agreement(st, encoder: _OnnxEncoder, reference: np.ndarray) -> tuple[float, float]:
    """(min, mean) cosine of the encoder's middle-layer features to ``reference`` (:func:`encode_layers` of the
    probe texts)."""
    _, got = encoder.run_both(st, list(PROBE_TEXTS))
    cos = (unit_rows(reference) * unit_rows(got)).sum(axis=1)
    return float(cos.min()), float(cos.mean())


def _pooled_layers(export_st, model: str) -> list[int] | None:
    """The layers the fp32 export pools into its second output, or None when the model's pipeline cannot give
    them from its forward pass (:func:`~labelgate.embedding.forward.one_pass_problem`)."""
    try:
        problem = one_pass_problem(export_st)
        if problem is not None:
            _log.info("ONNX export of %s without the middle-layer output: %s", model, problem)
            return None
        return model_layers(export_st, model=model)
    except ModelLoadError as err:
        _log.info("ONNX export of %s without the middle-layer output: %s", model, _first_line(err))
        return None


def export_onnx(model: str, variant: str = "onnx", *, force: bool = False) -> Path:
    """Export ``model`` to ONNX as ``variant`` (``onnx`` fp32 or ``onnx-int8``) unless cached; return the file.

    The export runs locally from the loaded torch weights (no download), is verified on
    :data:`PROBE_TEXTS` against the torch vectors and only then moved into place atomically, so
    concurrent processes never see a partial file. A sidecar ``.json`` records the checks.

    The fp32 export also outputs the middle-layer features (:data:`LAYERS_OUTPUT`), verified against
    :func:`~labelgate.embedding.encode_layers` (cosine >= :data:`FP32_MIN_COSINE` on every probe text); when the
    model cannot give them, or they fail the check, the model is exported with the sentence embedding alone.

    Raises:
        ModelLoadError: the onnx/onnxruntime packages are missing, the export fails, or its vectors
            disagree with torch (the message says which and suggests ``torch``).
    """
    dest = onnx_model_path(model, variant)
    if dest.exists() and not force:
        return dest
    try:
        import onnx  # noqa: F401  (torch.onnx.export and the quantiser need it)
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise ModelLoadError(
            f"the {variant} embedding backend needs the packages onnx and onnxruntime ({err}); "
            "run `pip install onnx onnxruntime` or use the torch backend"
        ) from err
    st = load_model(model)
    started = time.perf_counter()
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        # eager attention exports as plain MatMul/Softmax, which the optimizer fuses into one Attention op
        export_st = _load(model, attn_implementation="eager")
    except ModelLoadError:
        export_st = st
    layers = _pooled_layers(export_st, model) if variant == "onnx" else None  # int8 layer features: lossy
    failures: list[str] = []
    for pooled in [layers, None] if layers is not None else [None]:
        if _export_verified(model, variant, st, export_st, dest, pooled, started, failures):
            write_tokenizer(st, dest, model=model)  # so later runs tokenize without torch
            return dest
    raise ModelLoadError(
        f"the {variant} export of embedding model {model!r} does not reproduce the torch vectors "
        f"({'; '.join(failures)}); use the torch backend"
    )


def _export_verified(
    model: str,
    variant: str,
    st,
    export_st,
    dest: Path,
    layers: list[int] | None,
    started: float,
    failures: list[str],
) -> bool:
    """One export of ``export_st`` (with the middle-layer output when ``layers``), its candidate graphs verified
    in turn; the first that passes is moved to ``dest`` (True). Each failure is appended to ``failures``.

    Raises:
        ModelLoadError: the export of the sentence embedding alone fails, or int8 quantisation fails.
    """
    outputs = "sentence + middle layers" if layers is not None else "sentence"
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        try:
            _export_pipeline(export_st, raw, layers)
        except Exception as err:
            if layers is not None:  # the middle-layer output is an extra: export the sentence embedding alone
                failures.append(f"{outputs} export: {_first_line(err)}")
                _log.info("ONNX export of %s with the middle-layer output failed: %s", model, _first_line(err))
                return False
            if isinstance(err, ModelLoadError):
                raise
            raise ModelLoadError(
                f"cannot export embedding model {model!r} to ONNX: {_first_line(err)}; use the torch backend"
            ) from err
        candidates: list[tuple[str, Path]] = []
        if variant == "onnx":
            fused = Path(tmp) / "fused.onnx"
            try:
                if _fuse(raw, fused, _hf_config(st)):
                    candidates.append(("fused", fused))
            except Exception as err:  # fusion is an optimisation: the plain export still works
                _log.info("ONNX fusion skipped for %s: %s", model, _first_line(err))
            candidates.append(("plain", raw))
            floor = FP32_MIN_COSINE
        else:
            quant = Path(tmp) / "int8.onnx"
            try:
                _quantize(raw, quant)
            except Exception as err:
                raise ModelLoadError(
                    f"cannot quantise embedding model {model!r} to int8: {_first_line(err)}; use onnx or torch"
                ) from err
            candidates.append(("int8", quant))
            floor = INT8_MIN_COSINE
        reference = encode_layers(model, list(PROBE_TEXTS)) if layers is not None else None
        for kind, path in candidates:
            try:
                encoder = _OnnxEncoder(path)
                cos_min, cos_mean = _agreement(st, encoder)
                layer_cos = None if reference is None else _layers_agreement(st, encoder, reference)
            except Exception as err:
                failures.append(f"{kind} ({outputs}): {_first_line(err)}")
                continue
            if cos_min < floor:
                failures.append(f"{kind} ({outputs}): min cosine to torch {cos_min:.6f} < {floor}")
                continue
            if layer_cos is not None and layer_cos[0] < FP32_MIN_COSINE:
                failures.append(
                    f"{kind} ({outputs}): middle layers' min cosine to encode_layers {layer_cos[0]:.6f} "
                    f"< {FP32_MIN_COSINE}"
                )
                continue
            meta = {
                "model": model_key(model),
                "variant": variant,
                "graph": kind,
                "outputs": ["sentence_embedding"] + ([LAYERS_OUTPUT] if layers is not None else []),
                "probe_cosine_min": round(cos_min, 7),
                "probe_cosine_mean": round(cos_mean, 7),
                **(
                    {
                        "layers": layers,
                        "layers_probe_cosine_min": round(layer_cos[0], 7),
                        "layers_probe_cosine_mean": round(layer_cos[1], 7),
                    }
                    if layer_cos is not None
                    else {}
                ),
                "export_seconds": round(time.perf_counter() - started, 2),
                "versions": _versions(),
            }
            side = dest.with_suffix(".json")
            tmp_side = Path(tmp) / "meta.json"
            tmp_side.write_text(json.dumps(meta, indent=2) + "\n")
            os.replace(tmp_side, side)
            os.replace(path, dest)  # atomic: readers see no file or a complete, verified one
            _log.info("exported %s to %s (%s graph, %s, probe cosine min %.6f)", model, dest, kind, outputs, cos_min)
            return True
    return False


def onnx_export_info(model: str, variant: str = "onnx") -> dict[str, Any] | None:
    """The sidecar record of a cached export (graph kind, probe cosines, versions), or None if not exported."""
    side = onnx_model_path(model, variant).with_suffix(".json")
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=4)
def _onnx_encoder(model: str, variant: str) -> _OnnxEncoder:
    path = export_onnx(model, variant)
    try:
        return _OnnxEncoder(path)
    except Exception as err:  # a damaged cache file: export again once
        _log.warning("cached ONNX model %s is unusable (%s); exporting again", path, _first_line(err))
        return _OnnxEncoder(export_onnx(model, variant, force=True))
