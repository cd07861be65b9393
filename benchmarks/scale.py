"""Detection at scale: synthetic clustered embeddings with injected label flips, duplicates and outliers.

Not a test: prints ONE JSON line. ::

    python benchmarks/scale.py --rows 1000000
    python benchmarks/scale.py --rows 100000 --classes 20 --dim 384 --noise 0.1 --seed 0 --folds 5

The data (seeded, generated in chunks into a float32 ``np.memmap`` in a temporary folder, deleted at the end):
``--classes`` class centres (a shared direction plus a class direction), 50 sub-clusters per class around
its centre, rows spread inside a sub-cluster along a 24-dimensional subspace of their class plus isotropic
noise, L2-normalised (a linear model reaches about 98% accuracy on the clean labels, as on an easy text
task). Injected, in disjoint sets of rows: ``--noise`` of the labels flipped to another class (the truth
of the label-issue figures); exact duplicates (same text and vector as an earlier row) and near duplicates
(an earlier row's vector plus noise, cosine about 0.98, own text), each ``--duplicates / 2`` of the rows;
``--outliers`` of the rows replaced by random directions. Texts are ``"row <i>"``.

Detection is the library's, end to end: :func:`labelgate.core.detect.detect_all` with the ``embedding``
member only (out-of-fold probabilities, class-adjusted confident learning), near-duplicate and outlier
search (approximate above :data:`labelgate.core.neighbours.EXACT_MAX_ROWS` rows), length checks without
a token budget.

Figures: seconds per stage (``generate``, then detect_all's ``label`` and ``neighbours``, whose sum is
``detect``; ``check`` is this script's exact comparison, not part of detection), peak RSS in GiB
(``ru_maxrss`` of this process, of its largest child, and their sum), label-issue precision / recall / F1
against the injected flips (outlier rows left out: they have no true class), recall of the injected
duplicates and outliers, and the neighbour search against an exact search over all rows for a seeded
sample of rows: ``nearest_recall`` (the row found nearest is a true nearest row: equal cosine) and
``near_duplicate_recall`` (rows whose exact most similar earlier row is at or above the near-duplicate
threshold and that were flagged as a near or exact duplicate).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelgate.core import neighbours as ann  # noqa: E402
from labelgate.core.detect import DetectorSettings, detect_all  # noqa: E402

SUBCLUSTERS = 50
SUBSPACE = 24
CHUNK = 100_000


def _unit(V: np.ndarray) -> np.ndarray:
    return V / np.linalg.norm(V, axis=1, keepdims=True)


def generate(path: Path, *, rows: int, classes: int, dim: int, seed: int) -> tuple[np.memmap, np.ndarray]:
    """Clean clustered embeddings in a float32 memmap at ``path`` and their true classes."""
    rng = np.random.default_rng(seed)
    common = _unit(rng.normal(size=(1, dim)))[0]
    centres = rng.normal(size=(classes, dim)) * (0.35 / np.sqrt(dim)) + 0.5 * common
    sub = (centres[:, None, :] + rng.normal(size=(classes, SUBCLUSTERS, dim)) * (0.8 / np.sqrt(dim))).astype(np.float32)
    basis = (rng.normal(size=(classes, SUBSPACE, dim)) / np.sqrt(SUBSPACE)).astype(np.float32)
    y = rng.integers(0, classes, rows)
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    for a in range(0, rows, CHUNK):
        b = min(a + CHUNK, rows)
        yy = y[a:b]
        V = sub[yy, rng.integers(0, SUBCLUSTERS, b - a)]
        V += rng.standard_normal(size=(b - a, dim), dtype=np.float32) * np.float32(0.3 / np.sqrt(dim))
        z = rng.standard_normal(size=(b - a, SUBSPACE), dtype=np.float32) * np.float32(0.5 * np.sqrt(SUBSPACE / dim))
        for c in range(classes):
            idx = np.flatnonzero(yy == c)
            V[idx] += z[idx] @ basis[c]
        X[a:b] = _unit(V)
    return X, y


def inject(X: np.memmap, y: np.ndarray, *, noise: float, duplicates: float, outliers: float, seed: int) -> dict:
    """Overwrite disjoint sets of rows with duplicates and outliers and flip labels; the truth of each set."""
    n, dim = X.shape
    classes = int(y.max()) + 1
    rng = np.random.default_rng(seed + 1)
    order = rng.permutation(n)
    n_dup = int(n * duplicates / 2)
    n_out = int(n * outliers)
    n_flip = int(n * noise)
    exact_rows, near_rows = np.sort(order[:n_dup]), np.sort(order[n_dup : 2 * n_dup])
    outlier_rows = np.sort(order[2 * n_dup : 2 * n_dup + n_out])
    flip_rows = np.sort(order[2 * n_dup + n_out : 2 * n_dup + n_out + n_flip])
    sources = np.sort(order[2 * n_dup + n_out + n_flip :])  # untouched rows: originals of the duplicates

    def source_before(rows: np.ndarray) -> np.ndarray:
        # a random untouched row before each duplicate (-1 when there is none: that row stays itself)
        count = np.searchsorted(sources, rows)
        pick = np.floor(rng.random(len(rows)) * count).astype(np.int64)
        return np.where(count > 0, sources[np.minimum(pick, np.maximum(count - 1, 0))], -1)

    exact_src, near_src = source_before(exact_rows), source_before(near_rows)
    keep = exact_src >= 0
    exact_rows, exact_src = exact_rows[keep], exact_src[keep]
    keep = near_src >= 0
    near_rows, near_src = near_rows[keep], near_src[keep]
    X[exact_rows] = X[exact_src]
    jitter = rng.standard_normal(size=(len(near_rows), dim), dtype=np.float32) * np.float32(0.2 / np.sqrt(dim))
    X[near_rows] = _unit(X[near_src] + jitter)
    X[outlier_rows] = _unit(rng.standard_normal(size=(len(outlier_rows), dim), dtype=np.float32))
    y[exact_rows], y[near_rows] = y[exact_src], y[near_src]
    given = y.copy()
    given[flip_rows] = (y[flip_rows] + rng.integers(1, classes, len(flip_rows))) % classes
    X.flush()
    return {
        "given": given,
        "exact": (exact_rows, exact_src),
        "near": (near_rows, near_src),
        "outliers": outlier_rows,
        "flips": flip_rows,
    }


def exact_check(X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine of each row's most similar other row and of its most similar earlier row (-1 for none)."""
    Q = np.asarray(X[rows], dtype=np.float32)
    nearest = np.full(len(rows), -np.inf, dtype=np.float32)
    earlier = np.full(len(rows), -1.0, dtype=np.float32)
    for a in range(0, len(X), 65536):
        S = Q @ np.asarray(X[a : a + 65536], dtype=np.float32).T
        cols = np.arange(a, a + S.shape[1])
        S[cols[None, :] == rows[:, None]] = -np.inf
        nearest = np.maximum(nearest, S.max(axis=1))
        S[cols[None, :] > rows[:, None]] = -np.inf
        earlier = np.maximum(earlier, S.max(axis=1))
    return nearest, earlier


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _rss_gib() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return {"self": round(own, 3), "children": round(children, 3), "total": round(own + children, 3)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--noise", type=float, default=0.1, help="fraction of labels flipped")
    ap.add_argument("--duplicates", type=float, default=0.002, help="fraction of rows that are duplicates")
    ap.add_argument("--outliers", type=float, default=0.001, help="fraction of rows that are outliers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--sample", type=int, default=1000, help="rows compared with an exact search")
    ap.add_argument("--workdir", type=Path, default=None, help="folder of the memmap (default: a temporary one)")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    seconds: dict[str, float] = {}
    workdir = Path(tempfile.mkdtemp(prefix="labelgate-scale-", dir=args.workdir))
    X = None
    try:
        started = time.perf_counter()
        X, y = generate(workdir / "vectors.npy", rows=args.rows, classes=args.classes, dim=args.dim, seed=args.seed)
        truth = inject(X, y, noise=args.noise, duplicates=args.duplicates, outliers=args.outliers, seed=args.seed)
        n = args.rows
        ids = [f"r{i}" for i in range(n)]
        texts = [f"row {i}" for i in range(n)]
        exact_rows, exact_src = truth["exact"]
        for i, j in zip(exact_rows.tolist(), exact_src.tolist()):
            texts[i] = texts[j]
        labels = [f"class_{c:02d}" for c in truth["given"].tolist()]
        seconds["generate"] = time.perf_counter() - started

        settings = DetectorSettings(members=("embedding",), n_folds=args.folds, seed=args.seed, max_text_tokens=None)
        started = time.perf_counter()
        found = detect_all(ids, texts, labels, X, settings=settings)
        seconds["detect"] = time.perf_counter() - started
        seconds.update({k: v for k, v in found.seconds.items()})
        rss = _rss_gib()

        started = time.perf_counter()
        issues = found.issues
        position = {rid: i for i, rid in enumerate(ids)}

        def flagged_rows(kind: str) -> np.ndarray:
            part = issues[(issues["issue_type"] == kind) & issues["is_issue"]]
            return np.array(sorted(position[r] for r in part["row_id"]), dtype=np.int64)

        outlier_set = np.zeros(n, dtype=bool)
        outlier_set[truth["outliers"]] = True
        flipped = np.zeros(n, dtype=bool)
        flipped[truth["flips"]] = True
        predicted = found.label_issues["is_label_issue"].to_numpy(bool)
        scored = ~outlier_set
        tp = int((predicted & flipped & scored).sum())
        n_pred, n_true = int((predicted & scored).sum()), int((flipped & scored).sum())
        precision, recall = _ratio(tp, n_pred), _ratio(tp, n_true)
        f1 = round(2 * precision * recall / (precision + recall), 4) if precision and recall else 0.0

        exact_flagged = np.isin(exact_rows, flagged_rows("exact_duplicate"))
        near_rows = truth["near"][0]
        dup_flagged = np.union1d(flagged_rows("near_duplicate"), flagged_rows("exact_duplicate"))
        near_flagged = np.isin(near_rows, dup_flagged)
        out_flagged = flagged_rows("outlier")
        out_hit = int(np.isin(truth["outliers"], out_flagged).sum())

        # the search against an exact one: a seeded sample of rows plus a sample of the injected duplicates
        rng = np.random.default_rng(args.seed + 2)
        sample = np.sort(rng.choice(n, size=min(args.sample, n), replace=False))
        dups = np.concatenate([exact_rows, near_rows])
        dup_sample = np.sort(rng.choice(dups, size=min(args.sample, len(dups)), replace=False))
        rows = np.union1d(sample, dup_sample)
        exact_nearest, exact_earlier = exact_check(X, rows)
        near = issues[issues["issue_type"] == "near_duplicate"].set_index("row_id")["score"]
        found_nearest = 1.0 - near.reindex([ids[i] for i in rows]).to_numpy(np.float64)
        in_sample = np.isin(rows, sample)
        nearest_hit = found_nearest[in_sample] >= exact_nearest[in_sample].astype(np.float64) - 1e-6
        should = exact_earlier >= settings.near_duplicate_threshold
        near_hit = np.isin(rows[should], dup_flagged)
        seconds["check"] = time.perf_counter() - started
        seconds["total"] = seconds["generate"] + seconds["detect"]
        result = {
            "benchmark": "scale",
            "rows": n,
            "classes": args.classes,
            "dim": args.dim,
            "folds": args.folds,
            "noise": args.noise,
            "seed": args.seed,
            "cpus": os.cpu_count(),
            "load_avg_1min_at_start": round(load, 2),
            "search": "approximate" if n > ann.EXACT_MAX_ROWS else "exact",
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "peak_rss_gib": rss,
            "label_issues": {
                "injected": n_true,
                "flagged": n_pred,
                "precision": precision,
                "recall": recall,
                "f1": f1,
            },
            "exact_duplicates": {
                "injected": len(exact_rows),
                "recall": _ratio(int(exact_flagged.sum()), len(exact_rows)),
            },
            "near_duplicates": {"injected": len(near_rows), "recall": _ratio(int(near_flagged.sum()), len(near_rows))},
            "outliers": {
                "injected": len(truth["outliers"]),
                "flagged": len(out_flagged),
                "recall": _ratio(out_hit, len(truth["outliers"])),
                "precision": _ratio(out_hit, len(out_flagged)),
            },
            "search_vs_exact": {
                "sample": int(in_sample.sum()),
                "nearest_recall": _ratio(int(nearest_hit.sum()), int(in_sample.sum())),
                "near_duplicate_rows": int(should.sum()),
                "near_duplicate_recall": _ratio(int(near_hit.sum()), int(should.sum())),
            },
        }
    finally:
        del X
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
