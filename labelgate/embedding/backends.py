"""Which backend runs: native bfloat16 probing, the ONNX export checks, ``auto``'s choice, remembered failures;
and whether a backend gives the middle-layer features from its sentence pass (:func:`layers_unavailable`)."""

from __future__ import annotations

import functools
import gc
import os
import threading

import numpy as np

from labelgate.core.vectors import unit_rows
from labelgate.embedding.batching import _encode_torch, _encode_torch_both
from labelgate.embedding.forward import model_layers, one_pass_problem
from labelgate.embedding.layers import encode_layers
from labelgate.embedding.models import ONNX_BACKENDS, PROBE_TEXTS, _first_line, _warn, check_backend, load_model
from labelgate.embedding.onnx_export import FP32_MIN_COSINE, _onnx_encoder, onnx_model_path
from labelgate.embedding.standalone import tokenizer_file
from labelgate.errors import ModelLoadError
from labelgate.heap import trim_heap

#: environment variable: ``0`` keeps ``auto`` off bfloat16 (exact fp32 arithmetic, e.g. to compare machines)
BF16_ENV = "LABELGATE_EMBED_BF16"
#: torch-bf16 is used only when every probe text's cosine to the fp32 vector is at least this
BF16_MIN_COSINE = 0.999

_lock = threading.Lock()
#: (model, variant) -> reason the ONNX backend is not usable in this process
_broken: dict[tuple[str, str], str] = {}
#: (model, resolved backend) -> None when it gives the middle-layer features with the sentence vectors, else why not
_layers_reason: dict[tuple[str, str], str | None] = {}


#: x86 CPU flags (``/proc/cpuinfo``) of which oneDNN's bfloat16 check needs at least one
BF16_CPU_FLAGS = ("avx512bw", "avx512_bf16", "amx_bf16", "avx_ne_convert")


def cpu_flags_rule_out_bf16(cpuinfo: str | None = None) -> bool:
    """True when ``cpuinfo`` (default: ``/proc/cpuinfo``) shows an x86 CPU with none of :data:`BF16_CPU_FLAGS`:
    then torch's check would say no, and :func:`bf16_supported` answers without importing torch (about 3 s, and
    the ONNX backend needs no torch at all). False when it cannot tell (no such file, not x86): ask torch."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                cpuinfo = fh.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags") and ":" in line:
            flags = set(line.split(":", 1)[1].split())
            return "sse2" in flags and not flags & set(BF16_CPU_FLAGS)
    return False


def bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (AMX or AVX512-BF16 via oneDNN; without it
    bf16 autocast is slower than fp32) and ``$LABELGATE_EMBED_BF16`` is not ``0``."""
    if os.environ.get(BF16_ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    if cpu_flags_rule_out_bf16():
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


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (unit_rows(a) * unit_rows(b)).sum(axis=1)


def _one_pass_check(model: str, *, bf16: bool) -> tuple[float, float]:
    """(min, mean) cosine of the middle-layer features of the one-pass torch forward (fp32, or bf16 autocast) to
    :func:`encode_layers` on the probe texts; its sentence vectors are checked against the fp32 ones of
    sentence-transformers' own encode too.

    Raises:
        ModelLoadError: the model's pipeline cannot give both from one pass (the reason), or a cosine is below
            :data:`FP32_MIN_COSINE` (fp32) / :data:`BF16_MIN_COSINE` (bf16).
    """
    st = load_model(model)
    problem = one_pass_problem(st)
    if problem is not None:
        raise ModelLoadError(problem)
    texts = list(PROBE_TEXTS)
    vectors, layers = _encode_torch_both(st, texts, 64, False, layers=model_layers(st, model=model), bf16=bf16)
    floor = BF16_MIN_COSINE if bf16 else FP32_MIN_COSINE
    sentence = _cosines(vectors, _encode_torch(st, texts, 64, False))
    if float(sentence.min()) < floor:
        raise ModelLoadError(
            f"one-pass sentence vectors differ from encode's (min cosine {sentence.min():.6f} < {floor})"
        )
    cos = _cosines(layers, encode_layers(model, texts))
    if float(cos.min()) < floor:
        raise ModelLoadError(f"one-pass middle layers differ from encode_layers (min cosine {cos.min():.6f})")
    return float(cos.min()), float(cos.mean())


def layers_unavailable(model: str, backend: str) -> str | None:
    """None when :func:`~labelgate.embedding.encode_with_layers` on ``backend`` (resolved: ``torch``,
    ``torch-bf16``, ``onnx``, ``onnx-int8``) gives the middle-layer features from the sentence pass, equivalent to
    :func:`encode_layers` (checked once per process on the probe texts); else the reason, remembered.

    ``onnx-int8`` never does (its features would be lossy but share the fp32 cache key): the caller computes them
    with :func:`encode_layers`. Never raises: a model that cannot give them is a reason, not an error.
    """
    key = (model, backend)
    if key in _layers_reason:
        return _layers_reason[key]
    reason: str | None
    try:
        with _lock:
            if backend == "onnx-int8":
                reason = "int8 middle-layer features would be lossy; they are computed in fp32 apart"
            elif backend == "onnx":
                has = _onnx_encoder(model, backend).has_layers
                reason = None if has else "the ONNX export has no middle-layer output (see its .json and the log)"
            elif backend in ("torch", "torch-bf16"):
                _one_pass_check(model, bf16=backend == "torch-bf16")
                reason = None
            else:
                reason = f"backend {backend!r} is not resolved (see resolve_backend)"
    except Exception as err:  # a model, export or check failure of any library: the second pass still works
        reason = _first_line(err)
    _layers_reason[key] = reason
    return reason


def clear_caches() -> None:
    """Forget the loaded ONNX sessions and remembered ONNX failures and checks of this process (e.g. after
    changing ``$LABELGATE_CACHE_DIR`` or installing onnx); the torch models stay loaded."""
    with _lock:
        _onnx_encoder.cache_clear()
        _bf16_check.cache_clear()
        _broken.clear()
        _layers_reason.clear()


def release_sessions() -> None:
    """Let go of this process's loaded ONNX sessions (MiniLM's weights and work buffers: about 0.15 GiB) and hand the
    freed heap back to the OS where the C library can (glibc's ``malloc_trim``; measured after 8,000 texts: 0.06 GiB
    from the sessions, 0.07 more from the trim). The next encode loads the cached export again (well under a second);
    remembered checks stay. The embed stage calls this when it is done, so the stages after it do not carry them."""
    with _lock:
        _onnx_encoder.cache_clear()
    gc.collect()
    trim_heap()


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


def _model_needed(model: str, backend: str) -> bool:
    """Whether resolving ``backend`` (not ``torch``) loads the sentence-transformers model: not when it can only
    become an ONNX export that is cached with its standalone tokenizer (the export's file name fingerprints the
    model's files, so the model is there; encoding then needs no torch)."""
    if backend == "auto":
        variant = None if bf16_supported() else "onnx"
    else:
        variant = backend if backend in ONNX_BACKENDS else None
    if variant is None:
        return True
    try:
        path = onnx_model_path(model, variant)
    except Exception:  # e.g. the default model's package is missing: loading says so
        return True
    return not (path.exists() and tokenizer_file(path).exists())


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
    if _model_needed(model, backend):
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
