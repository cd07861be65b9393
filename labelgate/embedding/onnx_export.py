"""ONNX export of a sentence-transformers pipeline (fused fp32 or dynamic int8), verified, cached on disk,
and the ONNX Runtime sessions that run it."""

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
from labelgate.embedding.models import (
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
from labelgate.errors import ConfigError, ModelLoadError

#: environment variable naming the folder of exported ONNX models (default: the user cache dir)
CACHE_ENV = "LABELGATE_CACHE_DIR"
#: an fp32 export is used only when every probe text's cosine to the torch vector is at least this
FP32_MIN_COSINE = 0.9999
#: sanity floor of the int8 export on the probe texts (it is lossy by design; see the package docstring)
INT8_MIN_COSINE = 0.95
#: bump to invalidate every cached export (part of the cache file name)
EXPORT_FORMAT = 1
ONNX_OPSET = 17


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
    if variant not in ("onnx", "onnx-int8"):
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
    """An ONNX Runtime session over an exported sentence-transformers pipeline."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        self.path = path
        self.session = ort.InferenceSession(str(path), _session_options(ort), providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name

    def run(self, st, texts: list[str]) -> np.ndarray:
        feats = _features(st, texts)
        feed = {name: np.ascontiguousarray(np.asarray(feats[name], dtype=np.int64)) for name in self.inputs}
        return np.asarray(self.session.run([self.output], feed)[0], dtype=np.float32)


def _export_pipeline(st, dest: Path) -> None:
    """``torch.onnx.export`` the whole pipeline of ``st`` (tensors in, sentence embedding out) to ``dest``."""
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
            return self.st(dict(zip(names, tensors)))["sentence_embedding"]

    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["sentence_embedding"] = {0: "batch"}
    with torch.no_grad(), _quiet_export():
        torch.onnx.export(
            Pipeline().eval(),
            tuple(feats[n] for n in names),
            str(dest),
            input_names=names,
            output_names=["sentence_embedding"],
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


def export_onnx(model: str, variant: str = "onnx", *, force: bool = False) -> Path:
    """Export ``model`` to ONNX as ``variant`` (``onnx`` fp32 or ``onnx-int8``) unless cached; return the file.

    The export runs locally from the loaded torch weights (no download), is verified on
    :data:`PROBE_TEXTS` against the torch vectors and only then moved into place atomically, so
    concurrent processes never see a partial file. A sidecar ``.json`` records the checks.

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
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        try:
            # eager attention exports as plain MatMul/Softmax, which the optimizer fuses into one Attention op
            export_st = _load(model, attn_implementation="eager")
        except ModelLoadError:
            export_st = st
        try:
            _export_pipeline(export_st, raw)
        except ModelLoadError:
            raise
        except Exception as err:
            raise ModelLoadError(
                f"cannot export embedding model {model!r} to ONNX: {_first_line(err)}; use the torch backend"
            ) from err
        del export_st
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
        failures = []
        for kind, path in candidates:
            try:
                cos_min, cos_mean = _agreement(st, _OnnxEncoder(path))
            except Exception as err:
                failures.append(f"{kind}: {_first_line(err)}")
                continue
            if cos_min < floor:
                failures.append(f"{kind}: min cosine to torch {cos_min:.6f} < {floor}")
                continue
            meta = {
                "model": model_key(model),
                "variant": variant,
                "graph": kind,
                "probe_cosine_min": round(cos_min, 7),
                "probe_cosine_mean": round(cos_mean, 7),
                "export_seconds": round(time.perf_counter() - started, 2),
                "versions": _versions(),
            }
            side = dest.with_suffix(".json")
            tmp_side = Path(tmp) / "meta.json"
            tmp_side.write_text(json.dumps(meta, indent=2) + "\n")
            os.replace(tmp_side, side)
            os.replace(path, dest)  # atomic: readers see no file or a complete, verified one
            _log.info("exported %s to %s (%s graph, probe cosine min %.6f)", model, dest, kind, cos_min)
            return dest
    raise ModelLoadError(
        f"the {variant} export of embedding model {model!r} does not reproduce the torch vectors "
        f"({'; '.join(failures)}); use the torch backend"
    )


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
