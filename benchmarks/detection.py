"""Label-issue detection benchmark: the published recipe vs labelgate's detector, same embeddings, one run.

Not a test: prints ONE JSON line.

Real noise (a folder with ``train.csv``, ``train_truth.csv`` (id, true_label, is_label_error), ``test.csv``)::

    python benchmarks/detection.py --data ../shared/data/politeness-wikipedia
    python benchmarks/detection.py --train data/sample.csv --truth data/sample_truth.csv --test data/sample_test.csv

Synthetic noise (flip a fraction of the labels of any clean labelled file, seeded; the truth is the file)::

    python benchmarks/detection.py --synthetic ../shared/data/politeness-wikipedia/test.csv --noise 0.2
    python benchmarks/detection.py --synthetic data/sample_test.csv --noise 0.2 --test data/sample_test.csv

Both methods get the same all-MiniLM-L6-v2 embeddings (cached under ``--cache`` by model and text hash):

- ``recipe``: 10-fold logistic regression on the embeddings -> cleanlab ``find_label_issues`` (defaults,
  ``prune_by_noise_rate``), ranked by self-confidence (the published recipe).
- ``labelgate``: :func:`labelgate.core.detect.detect_all` with default :class:`CurateParams` (ensemble
  probabilities over automatic folds (``--folds K`` to fix them), class-adjusted confident learning, plus
  duplicates/outliers/lengths/leakage).

One run is one fold split; ``benchmarks/detection_seeds.py`` repeats it over seeds and summarises.

Figures per method: flagged rows, precision, recall, F1, precision@100 and @300 (the 100 / 300 lowest label
scores), the review queue's precision@100 and @300 (``queue_precision_at_*``: the flagged rows in the order a
reviewer sees them, likely mislabelled ones first: :func:`labelgate.core.ambiguity.queue_order`), the count and
precision of each kind of flagged label issue (``kinds``: ``mislabelled``, ``ambiguous``), suggestion accuracy on
true errors (all of them; and those flagged), seconds. ``proxy_accuracy``: test
accuracy of labelgate's proxy (:func:`labelgate.core.evaluate.proxy_score`, TF-IDF + logistic regression)
trained on the raw labels, on labelgate's auto-gated export (the auto policy applied to every issue),
and on the truth labels (oracle).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelgate import embedding  # noqa: E402
from labelgate.config import CurateParams  # noqa: E402
from labelgate.core.ambiguity import LABEL_KINDS, queue_order  # noqa: E402
from labelgate.core.detect import (  # noqa: E402
    detect_all,
    find_label_issues_cleanlab,
    out_of_fold_probs,
)
from labelgate.core.evaluate import proxy_score  # noqa: E402
from labelgate.core.policy import auto_decisions  # noqa: E402


def _cache_path(texts: list[str], key: str, cache: Path) -> Path:
    """``cache/<sha of key>-<sha of texts>.npy``."""
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:20]
    return cache / f"{hashlib.sha256(key.encode()).hexdigest()[:8]}-{digest}.npy"


def _cached(texts: list[str], key: str, cache: Path, compute) -> np.ndarray:
    """``compute(texts)``, cached in ``cache/<sha of key>-<sha of texts>.npy``."""
    path = _cache_path(texts, key, cache)
    if path.exists():
        return np.load(path)
    cache.mkdir(parents=True, exist_ok=True)
    vectors = compute(texts)
    np.save(path, vectors)
    return vectors


def embed(texts: list[str], model: str, cache: Path) -> np.ndarray:
    """Embeddings of ``texts`` (cached by model and texts)."""
    return _cached(texts, embedding.model_key(model), cache, lambda t: embedding.encode(model, t, batch_size=64))


def embed_both(texts: list[str], model: str, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and middle-layer features of ``texts``, cached like :func:`embed`; what is missing is computed as
    the embed stage computes it: both from one forward pass (:func:`labelgate.embedding.encode_with_layers`), the
    features alone with :func:`labelgate.embedding.encode_layers` where the backend cannot give them."""
    vectors_at = _cache_path(texts, embedding.model_key(model), cache)
    layers_at = _cache_path(texts, embedding.layers_key(model), cache)
    if not vectors_at.exists():
        vectors, layers = embedding.encode_with_layers(model, texts, batch_size=64)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(vectors_at, vectors)
        if layers is not None and not layers_at.exists():
            np.save(layers_at, layers)
    layers = _cached(
        texts, embedding.layers_key(model), cache, lambda t: embedding.encode_layers(model, t, batch_size=64)
    )
    return np.load(vectors_at), layers


def embed_layers(texts: list[str], model: str, cache: Path) -> np.ndarray:
    """Middle-layer features of ``texts``, cached like :func:`embed` (see :func:`embed_both`)."""
    return embed_both(texts, model, cache)[1]


def read(path: Path) -> pd.DataFrame:
    """The file's id, text and label columns; rows with a blank text or label are dropped (as validation does)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "text" in df.columns:
        df = df[(df["text"].str.strip() != "") & (df["label"].str.strip() != "")]
        df = df.assign(label=df["label"].str.strip())
    return df.reset_index(drop=True)


def flip_labels(labels: pd.Series, fraction: float, seed: int) -> pd.Series:
    """Flip ``fraction`` of the labels (rounded) to another class chosen uniformly at random."""
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels))
    out = labels.copy().reset_index(drop=True)
    chosen = rng.choice(len(out), size=round(fraction * len(out)), replace=False)
    for i in chosen:
        others = [c for c in classes if c != out[i]]
        out[i] = others[rng.integers(len(others))]
    return out


def _precision_at(order: np.ndarray, is_error: np.ndarray, k: int) -> float | None:
    """The share of real errors among the first ``k`` rows of ``order`` (fewer when it is shorter; None when empty)."""
    top = order[:k]
    return round(float(is_error[top].mean()), 4) if len(top) else None


def queue_figures(found: pd.DataFrame, is_error: np.ndarray) -> dict:
    """The review queue's figures (:func:`labelgate.core.ambiguity.queue_order`: likely mislabelled rows first by
    label score, then ambiguous ones): ``queue_precision_at_100`` / ``_300``, and per kind its flagged ``count`` and
    ``precision`` (share of real errors) under ``kinds``."""
    flags = found["is_label_issue"].to_numpy(bool)
    kinds = found["label_kind"].to_numpy(object)
    order = queue_order(label_scores=found["label_score"].to_numpy(float), kinds=kinds, flags=flags)
    by_kind = {}
    for kind in LABEL_KINDS:
        mask = flags & (kinds == kind)
        by_kind[kind] = {
            "count": int(mask.sum()),
            "precision": round(float(is_error[mask].mean()), 4) if mask.any() else None,
        }
    return {
        "queue_precision_at_100": _precision_at(order, is_error, 100),
        "queue_precision_at_300": _precision_at(order, is_error, 300),
        "kinds": by_kind,
    }


def score(found: pd.DataFrame, truth: np.ndarray, is_error: np.ndarray) -> dict:
    """Detection figures of ``found`` (:data:`labelgate.core.detect.LABEL_ISSUE_COLUMNS`) against the truth:
    ``precision_at_100`` / ``_300`` rank every row by label score alone (the ranking before label kinds),
    ``queue_*`` and ``kinds`` the review queue (:func:`queue_figures`)."""
    flags = found["is_label_issue"].to_numpy(bool)
    tp = int((flags & is_error).sum())
    precision = tp / max(int(flags.sum()), 1)
    recall = tp / max(int(is_error.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    order = np.argsort(found["label_score"].to_numpy(float), kind="stable")
    suggested = found["suggested_label"].to_numpy(object)
    right = suggested == truth
    return {
        "flagged": int(flags.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "precision_at_100": _precision_at(order, is_error, 100),
        "precision_at_300": _precision_at(order, is_error, 300),
        **queue_figures(found, is_error),
        "suggestion_accuracy": round(float(right[is_error].mean()), 4),
        "suggestion_accuracy_flagged": round(float(right[is_error & flags].mean()), 4)
        if (is_error & flags).any()
        else None,
    }


def labelgate_detect(
    train: pd.DataFrame,
    X: np.ndarray,
    params: CurateParams,
    *,
    layer_vectors: np.ndarray | None = None,
    test: pd.DataFrame | None = None,
    test_vectors: np.ndarray | None = None,
):
    """labelgate's detection of ``train`` (id, text, label) with ``params``: :func:`detect_all` with token counts,
    and the leakage check against ``test`` when given."""
    from labelgate.core.tokens import CachedCounter
    from labelgate.tokenizers import get_counter

    counter = CachedCounter(get_counter(params.token_counter))
    leak = {}
    if test is not None:  # a test file without ids (banking77's) gets positional ones, as ingest would name them
        test_ids = list(test["id"]) if "id" in test.columns else [f"test-{i}" for i in range(len(test))]
        leak = {"test_ids": test_ids, "test_texts": list(test["text"])}
    return detect_all(
        list(train["id"]),
        list(train["text"]),
        list(train["label"]),
        X,
        settings=params.detector_settings(),
        token_counts=counter.count_many(list(train["text"])),
        token_counter_name=counter.name,
        test_vectors=test_vectors,
        layer_vectors=layer_vectors,
        **leak,
    )


def gated(train: pd.DataFrame, issues: pd.DataFrame, params: CurateParams) -> tuple[pd.DataFrame, dict]:
    """The rows the auto gate exports (decisions applied, leaks excluded) and the decision counts."""
    decisions = auto_decisions(
        issues,
        settings=params.gate_settings(),
        n_classes=train["label"].nunique(),
    ).set_index("row_id")
    out = train.set_index("id")
    out = out.assign(action="keep")
    out.loc[decisions.index, "action"] = decisions["action"]
    relabel = decisions.index[decisions["action"] == "relabel"]
    out.loc[relabel, "label"] = decisions.loc[relabel, "label"]
    leaks = issues.loc[(issues["issue_type"] == "leakage") & issues["is_issue"], "row_id"]
    out.loc[out.index.isin(leaks), "action"] = "exclude"
    counts = {a: int((decisions["action"] == a).sum()) for a in ("relabel", "exclude", "keep")}
    return out[out["action"] != "exclude"].reset_index(), counts


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, help="folder with train.csv, train_truth.csv, test.csv")
    ap.add_argument("--train", type=Path, help="real mode: the noisy file (default DIR/train.csv)")
    ap.add_argument("--truth", type=Path, help="real mode: id,true_label file (default DIR/train_truth.csv)")
    ap.add_argument("--synthetic", type=Path, help="a clean labelled file (id,text,label) to add noise to")
    ap.add_argument("--noise", type=float, default=0.2, help="synthetic: fraction of labels flipped")
    ap.add_argument(
        "--test", type=Path, help="clean test file (default DIR/test.csv; synthetic: 30%% of the file held out)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipe-folds", type=int, default=10)
    ap.add_argument("--folds", type=int, help="labelgate's folds (default: CurateParams', i.e. automatic)")
    ap.add_argument("--members", help="labelgate detector members, comma-separated (default: CurateParams')")
    ap.add_argument("--model", default=CurateParams().model)
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "labelgate-bench-cache")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    if args.data or args.train:
        train_path = args.train or args.data / "train.csv"
        train = read(train_path)
        truth = read(args.truth or args.data / "train_truth.csv").set_index("id").loc[train["id"]]
        test = read(args.test or args.data / "test.csv")
        true_labels = truth["true_label"].to_numpy(object)
        source = {"mode": "real", "data": str(args.data or train_path)}
    elif args.synthetic:
        clean = read(args.synthetic)
        if args.test and args.test.resolve() != args.synthetic.resolve():
            train, test = clean, read(args.test)
        else:
            rng = np.random.default_rng(args.seed)
            held = rng.random(len(clean)) < 0.3
            train, test = clean[~held].reset_index(drop=True), clean[held].reset_index(drop=True)
        true_labels = train["label"].to_numpy(object)
        train = train.assign(label=flip_labels(train["label"], args.noise, args.seed).to_numpy())
        source = {"mode": "synthetic", "data": str(args.synthetic), "noise": args.noise, "seed": args.seed}
    else:
        ap.error("pass --data DIR (or --train/--truth/--test) or --synthetic FILE")
    is_error = train["label"].to_numpy(object) != true_labels

    started = time.perf_counter()
    params = CurateParams(seed=args.seed, n_folds=args.folds)
    if args.members:
        params = params.model_copy(update={"detector_members": args.members.split(",")})
    layer_vectors = None
    if "layers" in params.detector_members:  # as the embed stage does: both from one forward pass
        X, layer_vectors = embed_both(list(train["text"]), args.model, args.cache)
    else:
        X = embed(list(train["text"]), args.model, args.cache)
    X_test = embed(list(test["text"]), args.model, args.cache)
    embed_s = time.perf_counter() - started

    started = time.perf_counter()
    recipe_probs = out_of_fold_probs(X, train["label"], n_folds=args.recipe_folds, seed=args.seed)
    recipe = find_label_issues_cleanlab(train["id"], recipe_probs)
    recipe_s = time.perf_counter() - started

    started = time.perf_counter()
    found = labelgate_detect(train, X, params, layer_vectors=layer_vectors, test=test, test_vectors=X_test)
    labelgate_s = time.perf_counter() - started

    export, decisions = gated(train, found.issues, params)
    export_keep, _ = gated(train, found.issues, params.model_copy(update={"exclude_below_chance": False}))
    flagged_types = found.issues[found.issues["is_issue"]].groupby("issue_type")["row_id"].nunique().to_dict()

    def proxy(name: str, texts, labels) -> float:
        return round(proxy_score(name, list(texts), list(labels), list(test["text"]), list(test["label"])).accuracy, 4)

    result = {
        "benchmark": "detection",
        **source,
        "rows": len(train),
        "true_errors": int(is_error.sum()),
        "noise_rate": round(float(is_error.mean()), 4),
        "embedding_model": embedding.model_key(args.model),
        "recipe": {
            **score(recipe, true_labels, is_error),
            "method": f"{recipe_probs.method} + cleanlab find_label_issues(prune_by_noise_rate), self_confidence",
            "seconds": round(recipe_s, 2),
        },
        "labelgate": {
            **score(found.label_issues, true_labels, is_error),
            "method": f"{found.probs.method} + class-adjusted confident learning",
            "seconds": round(labelgate_s, 2),
            "seconds_by_stage": {k: round(v, 2) for k, v in found.seconds.items()},
            "fitted": found.probs.chosen,
            "folds": found.probs.n_folds,
            "flagged_by_type": flagged_types,
        },
        "proxy_accuracy": {
            "raw": proxy("raw", train["text"], train["label"]),
            "labelgate_auto_gate": proxy("cleaned", export["text"], export["label"]),
            "oracle": proxy("oracle", train["text"], true_labels),
            "auto_gate_rows": len(export),
            "auto_gate_decisions": decisions,
            "labelgate_gate_keeping_unsure": proxy("cleaned", export_keep["text"], export_keep["label"]),
        },
        "embed_seconds": round(embed_s, 2),
    }
    result["f1_gain_vs_recipe"] = round(result["labelgate"]["f1"] - result["recipe"]["f1"], 4)
    print(json.dumps(result, sort_keys=False))
    return result


if __name__ == "__main__":
    main()
