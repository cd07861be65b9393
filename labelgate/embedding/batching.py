"""Length-sorted, token-budgeted batches and the torch batch loops (fp32 or bf16; sentence vectors alone, or with
the middle-layer features of the same forward pass)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from labelgate.core.vectors import unit_rows
from labelgate.embedding.forward import forward_both
from labelgate.embedding.models import THREADS_ENV, _features, check_backend, compute_threads

#: ONNX backend: padded tokens per forward pass (at most ``batch_size`` texts); small batches of similar
#: length keep the activations in cache (measured on 2 cores: batches of ~8-16 short texts beat 64)
ONNX_TOKEN_BUDGET = 256
#: torch backend: the same for sentence-transformers' encode (measured idle: batches of ~32 short texts beat 64)
TORCH_TOKEN_BUDGET = 1024


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


def _encode_torch_both(
    st, texts: list[str], batch_size: int, progress: bool, *, layers: list[int], bf16: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Sentence vectors ``(n, dim)`` and middle-layer features ``(n, hidden)`` of ``texts`` from one forward pass
    per batch (:func:`~labelgate.embedding.forward.forward_both`), batched as :func:`_encode_torch` batches them."""
    import torch

    if THREADS_ENV in os.environ:
        torch.set_num_threads(compute_threads())
    st.eval()

    def run(batch: list[str]) -> tuple[np.ndarray, np.ndarray]:
        features = _features(st, batch)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            vectors, pooled = forward_both(st, features, layers)
        return vectors.float().numpy(), pooled.float().numpy()

    vectors, pooled = _run_batches_both(texts, batch_size, TORCH_TOKEN_BUDGET, progress, run)
    assert pooled is not None
    return vectors, pooled


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
    vectors, _ = _run_batches_both(texts, batch_size, budget, progress, lambda batch: (run(batch), None))
    return vectors


def _run_batches_both(
    texts: list[str],
    batch_size: int,
    budget: int,
    progress: bool,
    run: Callable[[list[str]], tuple[np.ndarray, np.ndarray | None]],
) -> tuple[np.ndarray, np.ndarray | None]:
    """``run`` over the token batches of ``texts``: (its first outputs stacked, each row L2-normalised; its second
    outputs stacked as they are, None when it gave None)."""
    parts = []
    extras = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(texts), desc="Embedding", unit="text")
    for sl in _token_batches(texts, batch_size, budget):
        vectors, extra = run(texts[sl])
        parts.append(vectors)
        if extra is not None:
            extras.append(extra)
        if bar is not None:
            bar.update(sl.stop - sl.start)
    if bar is not None:
        bar.close()
    return unit_rows(np.vstack(parts)), (np.vstack(extras).astype(np.float32, copy=False) if extras else None)


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
