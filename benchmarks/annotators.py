"""Multi-annotator benchmark: majority vote vs CROWDLAB (recipe probabilities) vs labelgate's consensus.

Not a test: prints ONE JSON line.

    python benchmarks/annotators.py --data ../shared/data/politeness-wikipedia

Reads ``annotations.csv`` (id, text, annotator, label: one row per label) as the input; ``train_truth.csv``
(id, true_label: the 5-annotator consensus) and ``annotators_truth.csv`` (annotator, accuracy_vs_consensus)
are read only to score.

- ``majority_vote``: :func:`labelgate.core.annotators.majority_vote` (ties: the most frequent class overall).
- ``crowdlab``: cleanlab ``get_label_quality_multiannotator`` with the published recipe's probabilities
  (10-fold logistic regression on the MiniLM embeddings, trained on the majority-vote labels).
- ``labelgate``: :func:`labelgate.core.annotators.consensus` (Dawid-Skene EM) with labelgate's out-of-fold
  ensemble (:func:`labelgate.core.probs.ensemble_oof_probs`, trained on the majority-vote labels) as the prior.

Figures: consensus accuracy against ``true_label`` (all items, and by number of labels), Spearman correlation of
each method's annotator quality with ``accuracy_vs_consensus`` over annotators with at least ``--min-labels``
labels in the input; labelgate's multi-annotator label issues (:func:`consensus_label_issues`) scored against the
items whose consensus is wrong: flagged precision/recall/F1 and precision@100/@300 of the queue (lowest scores).
``low_agreement``: per ``--min-agreement`` value, the items the gate's low-agreement rule selects
(:func:`labelgate.core.annotators.low_agreement_mask`, from the labels and the consensus alone) and labelgate's
consensus accuracy on the items kept by ``--low-agreement exclude``, on the low-agreement items and on all items.
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
sys.path.insert(0, str(REPO / "benchmarks"))

from detection import embed, embed_layers  # noqa: E402

from labelgate.config import CurateParams  # noqa: E402
from labelgate.core.annotators import (  # noqa: E402
    consensus,
    consensus_label_issues,
    encode,
    low_agreement_mask,
    majority_vote,
)
from labelgate.core.probs import Probabilities, ensemble_oof_probs, out_of_fold_probs  # noqa: E402


def spearman(a: pd.Series, b: pd.Series) -> float:
    from scipy.stats import spearmanr

    return round(float(spearmanr(a, b).statistic), 4)


def accuracy(pred: pd.Series, truth: pd.Series) -> dict:
    right = pred.to_numpy(object) == truth.loc[pred.index].to_numpy(object)
    return round(float(right.mean()), 4)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with annotations.csv and the truth files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--recipe-folds", type=int, default=10)
    ap.add_argument("--min-labels", type=int, default=20)
    ap.add_argument("--model", default=CurateParams().model)
    ap.add_argument("--smoothing", type=float, default=None)
    ap.add_argument("--model-weight", type=float, default=None)
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "labelgate-bench-cache")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    raw = pd.read_csv(args.data / "annotations.csv", dtype=str, keep_default_na=False)
    annotations = raw.rename(columns={"id": "item_id"})
    truth = pd.read_csv(args.data / "train_truth.csv", dtype=str, keep_default_na=False).set_index("id")["true_label"]
    annot_truth = pd.read_csv(args.data / "annotators_truth.csv").set_index("annotator")["accuracy_vs_consensus"]

    enc = encode(annotations)
    items = pd.Series(enc.items)
    texts = list(annotations.drop_duplicates("item_id").set_index("item_id").loc[items, "text"])
    majority = majority_vote(annotations)
    n_labels = pd.Series(enc.counts.sum(axis=1), index=majority.index)

    started = time.perf_counter()
    X = embed(texts, args.model, args.cache)
    F = embed_layers(texts, args.model, args.cache)
    embed_s = time.perf_counter() - started

    # CROWDLAB with the recipe's probabilities
    started = time.perf_counter()
    recipe = out_of_fold_probs(X, list(majority), n_folds=args.recipe_folds, seed=args.seed)
    from cleanlab.multiannotator import get_label_quality_multiannotator

    grid = np.full((len(enc.items), len(enc.annotators)), np.nan)
    grid[enc.item, enc.annotator] = enc.label
    wide = pd.DataFrame(grid, columns=enc.annotators)
    crowd = get_label_quality_multiannotator(wide, recipe.probs, verbose=False)
    crowd_labels = pd.Series(
        np.asarray(enc.classes, dtype=object)[crowd["label_quality"]["consensus_label"].to_numpy(int)],
        index=majority.index,
    )
    crowd_quality = crowd["annotator_stats"]["annotator_quality"]
    crowdlab_s = time.perf_counter() - started

    started = time.perf_counter()
    key = hashlib.sha256(("\x00".join(texts) + "\x01" + "\x00".join(majority) + str(args.seed)).encode()).hexdigest()
    cached = args.cache / f"annotators-prior-{key[:20]}.npz"
    if cached.exists():
        stored = np.load(cached, allow_pickle=False)
        model = Probabilities(
            probs=stored["probs"],
            classes=list(stored["classes"]),
            labels=stored["labels"],
            method=str(stored["method"]),
        )
    else:
        model = ensemble_oof_probs(X, list(majority), texts=texts, layer_features=F, seed=args.seed)
        np.savez(cached, probs=model.probs, classes=np.asarray(model.classes), labels=model.labels, method=model.method)
    options = {}
    if args.smoothing is not None:
        options["smoothing"] = args.smoothing
    if args.model_weight is not None:
        options["model_weight"] = args.model_weight
    result_lg = consensus(annotations, model_probs=model.probs, classes=model.classes, **options)
    lg_labels = result_lg.items.set_index("item_id")["consensus_label"]
    lg_quality = result_lg.annotators.set_index("annotator")["quality"]
    labelgate_s = time.perf_counter() - started
    no_model = consensus(annotations, **options)
    model_only = pd.Series(np.asarray(model.classes, dtype=object)[model.probs.argmax(1)], index=majority.index)

    counts = result_lg.annotators.set_index("annotator")["n_labels"]
    rated = counts.index[(counts >= args.min_labels) & counts.index.isin(annot_truth.index)]

    def by_labels(pred: pd.Series) -> dict:
        return {str(n): accuracy(pred[n_labels == n], truth) for n in sorted(set(n_labels.astype(int)))}

    issues = consensus_label_issues(result_lg, model.probs)
    wrong = issues["given_label"].to_numpy(object) != truth.loc[issues["row_id"]].to_numpy(object)
    flagged = issues["is_label_issue"].to_numpy(bool)
    order = np.argsort(issues["label_score"].to_numpy(float), kind="stable")
    hits = int((wrong & flagged).sum())
    precision, recall = hits / max(int(flagged.sum()), 1), hits / max(int(wrong.sum()), 1)
    queue = {
        "wrong_consensus": int(wrong.sum()),
        "flagged": int(flagged.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if hits else 0.0,
        "precision_at_100": round(float(wrong[order[:100]].mean()), 4),
        "precision_at_300": round(float(wrong[order[:300]].mean()), 4),
    }
    low_agreement = {}
    for minimum in (0.5, 0.51, 0.67):
        low = pd.Series(low_agreement_mask(result_lg.items, min_agreement=minimum), index=lg_labels.index)
        low_agreement[str(minimum)] = {
            "items": int(low.sum()),
            "share": round(float(low.mean()), 4),
            "accuracy_kept": accuracy(lg_labels[~low], truth),
            "accuracy_low": accuracy(lg_labels[low], truth) if low.any() else None,
            "accuracy_all": accuracy(lg_labels, truth),
        }
    best_baseline = max(accuracy(majority, truth), accuracy(crowd_labels, truth))
    result = {
        "benchmark": "annotators",
        "data": str(args.data),
        "items": len(enc.items),
        "labels": len(enc.label),
        "annotators": len(enc.annotators),
        "consensus_accuracy": {
            "majority_vote": accuracy(majority, truth),
            "crowdlab_recipe_probs": accuracy(crowd_labels, truth),
            "labelgate": accuracy(lg_labels, truth),
            "dawid_skene_no_model": accuracy(no_model.items.set_index("item_id")["consensus_label"], truth),
            "model_only": accuracy(model_only, truth),
        },
        "consensus_accuracy_by_n_labels": {
            "majority_vote": by_labels(majority),
            "crowdlab_recipe_probs": by_labels(crowd_labels),
            "labelgate": by_labels(lg_labels),
        },
        "gain_vs_best_baseline": round(accuracy(lg_labels, truth) - best_baseline, 4),
        "annotator_quality_spearman": {
            "annotators_rated": len(rated),
            "min_labels": args.min_labels,
            "crowdlab_recipe_probs": spearman(crowd_quality.loc[rated], annot_truth.loc[rated]),
            "labelgate": spearman(lg_quality.loc[rated], annot_truth.loc[rated]),
            "labelgate_agreement": spearman(
                result_lg.annotators.set_index("annotator")["agreement"].loc[rated], annot_truth.loc[rated]
            ),
            "dawid_skene_no_model": spearman(
                no_model.annotators.set_index("annotator")["quality"].loc[rated], annot_truth.loc[rated]
            ),
        },
        "labelgate_issue_queue": queue,
        "low_agreement": low_agreement,
        "labelgate_method": f"{result_lg.method}; prior {model.method}",
        "em_iterations": result_lg.iterations,
        "seconds": {"embed": round(embed_s, 2), "crowdlab": round(crowdlab_s, 2), "labelgate": round(labelgate_s, 2)},
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
