"""Embedding throughput: sentence-transformers' default ``encode`` against labelgate's backends.

Usage::

    python benchmarks/embed.py                     # politeness train.csv (3038 texts) if present, else the sample
    python benchmarks/embed.py --n 1000 --repeats 5
    python benchmarks/embed.py --variants st-default,onnx --batch-size 32
    python benchmarks/embed.py --busy 4            # the same with 4 busy-loop processes competing for the CPUs

Each variant runs in its own worker process (as a real run would: process-wide settings such as the
OpenMP wait policy are fixed when torch is first imported), all on the same texts. The variants are
timed interleaved, one after the other in each round with the order rotating between rounds, so a load
change on a shared machine hits all of them alike. Reported per variant: median sentences/s over the
rounds; ``speedup`` = median of the per-round ratios to ``st-default`` (paired, robust to load drift);
``cpu_ms_per_text`` = the worker's CPU time per text (all threads; much less noisy than wall time on a
busy machine); min/mean cosine of its vectors to sentence-transformers' fp32 torch vectors (those of
``st-default``, normalised). One JSON line goes to stdout; progress to stderr. Model loading, ONNX
export (first use only, cached) and a warm-up batch happen before the timed rounds (``setup_seconds``).

Variants:
    st-default  ``SentenceTransformer(model).encode(texts)`` with every default (batch 32, torch's
                OpenMP settings untouched): the baseline
    torch       ``labelgate.embedding.encode(backend="torch")``: length-sorted batches, passive OpenMP threads
    torch-bf16  ``backend="torch-bf16"``: the same under bfloat16 autocast (native AMX/AVX512-BF16 CPUs only;
                labelgate's default there)
    onnx        ``backend="onnx"``: the local fused fp32 ONNX export on ONNX Runtime (the default elsewhere)
    onnx-int8   ``backend="onnx-int8"``: the same with dynamic int8 weights (lossy, opt-in)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_TRAIN = REPO.parent / "shared" / "data" / "politeness-wikipedia" / "train.csv"
SAMPLE = REPO / "data" / "sample.csv"
VARIANTS = ("st-default", "torch", "torch-bf16", "onnx", "onnx-int8")


def _log(message: str) -> None:
    sys.stderr.write(f"[embed-bench] {message}\n")
    sys.stderr.flush()


def load_texts(csv: Path | None, n: int | None) -> tuple[list[str], str]:
    """The benchmark texts: ``csv``'s ``text`` column (default: shared politeness train, else the sample),
    non-blank, cycled or cut to ``n`` when given."""
    import pandas as pd

    path = csv or (SHARED_TRAIN if SHARED_TRAIN.exists() else SAMPLE)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    texts = [t for t in frame["text"].tolist() if t.strip()]
    if n is not None:
        texts = [texts[i % len(texts)] for i in range(n)]
    return texts, str(path)


def _spin(seconds: float) -> None:
    """A CPU-bound busy loop (simulated load of other users of the machine), bounded in time."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _worker(conn, variant: str, model: str, texts: list[str], batch_size: int, env: dict[str, str | None]) -> None:
    """One variant in a fresh process: set up, then time one full encode per "run" message."""
    for key, value in env.items():  # before torch is imported: OpenMP reads these once, at start
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        started = time.perf_counter()
        if variant == "st-default":
            import torch  # noqa: F401  (first: OpenMP starts with the untouched environment)
            from sentence_transformers import SentenceTransformer

            from labelgate.embedding import _quiet_hf, _source

            _quiet_hf()  # logging/progress-bar settings only
            st = SentenceTransformer(_source(model), device="cpu")

            def run() -> np.ndarray:
                return np.asarray(st.encode(texts), dtype=np.float32)

            st.encode(texts[:32])
        else:
            from labelgate import embedding

            embedding.load_model(model)
            embedding.resolve_backend(model, variant)  # exports on first use (cached afterwards)

            def run() -> np.ndarray:
                return embedding.encode(model, texts, batch_size=batch_size, backend=variant)

            embedding.encode(model, texts[:32], batch_size=batch_size, backend=variant)
        conn.send(("ready", round(time.perf_counter() - started, 2)))
        first = True
        while conn.recv() == "run":
            wall, cpu = time.perf_counter(), time.process_time()
            vectors = run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            conn.send(("done", wall, cpu, vectors if first else None))
            first = False
    except Exception as err:  # reported by the parent as this variant's error
        conn.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, help="CSV with a 'text' column (default: politeness train or sample)")
    parser.add_argument("--n", type=int, help="number of texts (cycled if the file has fewer)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per variant (medians reported)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size of labelgate's backends")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--model", default=None, help="model name or path (default: bundled all-MiniLM-L6-v2)")
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        help="start this many CPU-bound busy-loop processes during the timed rounds, to measure a shared, "
        "loaded machine reproducibly (they stop with the benchmark, at the latest after --busy-seconds)",
    )
    parser.add_argument("--busy-seconds", type=float, default=3600.0, help="upper bound of the busy loops' life")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
    variants = ["st-default"] + [v for v in dict.fromkeys(variants) if v != "st-default"]
    base_env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"), "TOKENIZERS_PARALLELISM": "false"}

    from labelgate import embedding
    from labelgate.config import DEFAULT_MODEL

    model = args.model or DEFAULT_MODEL
    texts, source = load_texts(args.csv, args.n)
    _log(f"{len(texts)} texts from {source}; variants {', '.join(variants)}; {args.repeats} rounds")
    load_avg_start = os.getloadavg()

    ctx = mp.get_context("spawn")
    workers: dict[str, Any] = {}
    setup: dict[str, float] = {}
    errors: dict[str, str] = {}
    for variant in variants:  # one at a time: exports never race
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child, variant, model, texts, args.batch_size, base_env), daemon=True)
        proc.start()
        child.close()
        reply = parent.recv()
        if reply[0] == "ready":
            setup[variant] = reply[1]
            workers[variant] = (proc, parent)
            _log(f"{variant}: ready in {reply[1]} s")
        else:
            errors[variant] = reply[1]
            _log(f"{variant}: FAILED {reply[1]}")
            proc.join(timeout=10)
    if "st-default" not in workers:
        raise SystemExit(f"baseline failed: {errors.get('st-default')}")

    live = [v for v in variants if v in workers]
    spinners = [ctx.Process(target=_spin, args=(args.busy_seconds,), daemon=True) for _ in range(max(0, args.busy))]
    for proc in spinners:
        proc.start()
    if spinners:
        _log(f"{len(spinners)} busy-loop processes started")
    wall: dict[str, list[float]] = {v: [] for v in live}
    cpu: dict[str, list[float]] = {v: [] for v in live}
    vectors: dict[str, np.ndarray] = {}
    try:
        for round_no in range(args.repeats):
            k = round_no % len(live)
            for variant in live[k:] + live[:k]:
                proc, conn = workers[variant]
                conn.send("run")
                reply = conn.recv()
                if reply[0] != "done":
                    raise SystemExit(f"{variant} failed: {reply[1]}")
                wall[variant].append(reply[1])
                cpu[variant].append(reply[2])
                if reply[3] is not None:
                    vectors[variant] = reply[3]
                _log(f"round {round_no + 1} {variant}: {len(texts) / reply[1]:.1f} sentences/s")
    finally:
        for proc in spinners:
            proc.terminate()
            proc.join(timeout=10)
    for proc, conn in workers.values():
        conn.send("stop")
        proc.join(timeout=30)

    ref = vectors["st-default"]
    ref = ref / np.maximum(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12)
    base = wall["st-default"]
    out: dict[str, Any] = {}
    for v in live:
        unit = vectors[v] / np.maximum(np.linalg.norm(vectors[v], axis=1, keepdims=True), 1e-12)
        cos = (unit * ref).sum(axis=1)
        out[v] = {
            "sentences_per_s": round(len(texts) / statistics.median(wall[v]), 1),
            "runs": [round(len(texts) / w, 1) for w in wall[v]],
            "speedup": round(statistics.median(b / w for w, b in zip(wall[v], base)), 2),
            "cpu_ms_per_text": round(1000 * statistics.median(cpu[v]) / len(texts), 2),
            "cos_min": round(float(cos.min()), 6),
            "cos_mean": round(float(cos.mean()), 6),
            "setup_seconds": setup[v],
        }
    exports = {}
    for v in live:
        info = embedding.onnx_export_info(model, v) if v in ("onnx", "onnx-int8") else None
        if info:
            exports[v] = {k: info[k] for k in ("graph", "probe_cosine_min", "export_seconds") if k in info}
    result = {
        "benchmark": "embed",
        "model": embedding.model_key(model),
        "texts": len(texts),
        "source": source,
        "repeats": args.repeats,
        "batch_size": args.batch_size,
        "busy_processes": args.busy,
        "threads": embedding.compute_threads(),
        "cpus": os.cpu_count(),
        "load_avg_start": [round(x, 2) for x in load_avg_start],
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "baseline": "st-default",
        "variants": out,
        "failed": errors,
        "onnx_export": exports,
        "python": platform.python_version(),
    }
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
