"""Is an evaluation trainer sensitive to label noise? Prints ONE JSON line.

Each trainer (labelgate's ``proxy``, ``proxy-c4``, ``finetune``) is trained on a seeded subsample of a noisy
training file twice, with the same seed and budget (:func:`labelgate.core.evaluate.compare`): once with the
given labels (``noisy``) and once with the true labels (``true``, read from ``train_truth.csv``: this script
scores, labelgate never reads a truth file), and scored on the data's test file. ``gap`` = true - noisy test
accuracy: how much the trainer's view changes when the labels are right. A trainer that hides label noise shows
a small gap; fine-tuning shows a larger one.

Usage::

    python benchmarks/finetune_check.py --data ../shared/data/banking77-noisy --rows 2000 --epochs 3 \
        [--trainers finetune,proxy,proxy-c4] [--max-seconds S] [--test-rows N] [--seed 0]

``--data DIR`` needs ``train.csv`` (id, text, label), ``train_truth.csv`` (id, true_label) and ``test.csv``
(text, label). ``--lr-check 5e-5,1e-4,2e-4``: instead, fine-tune on the given labels only (the truth file is not
read) once per encoder learning rate and print the test accuracy of each: how :data:`labelgate.finetune.LR_ENCODER`
was chosen (``--rows 1000 --test-rows 500 --epochs 3``). ``--test-rows``: score on a seeded subsample of the test
file (default: all of it). Set ``LABELGATE_EMBED_THREADS=1`` on a busy shared machine (see
:func:`labelgate.finetune.default_threads`).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labelgate.config import CurateParams  # noqa: E402
from labelgate.core.evaluate import compare, parse_trainers  # noqa: E402


def load(data: Path, rows: int, test_rows: int | None, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(noisy, true, test)``: the same ``rows`` training rows with given and with true labels, and the test rows."""
    train = pd.read_csv(data / "train.csv", dtype=str, keep_default_na=False)
    truth = pd.read_csv(data / "train_truth.csv", dtype=str, keep_default_na=False)[["id", "true_label"]]
    merged = train.merge(truth, on="id", how="inner", validate="one_to_one")
    if len(merged) != len(train):
        raise SystemExit(f"{data}: {len(train) - len(merged)} training rows have no true label")
    sub = merged.sample(min(rows, len(merged)), random_state=seed)
    test = pd.read_csv(data / "test.csv", dtype=str, keep_default_na=False)[["text", "label"]]
    if test_rows is not None and test_rows < len(test):
        test = test.sample(test_rows, random_state=seed)
    noisy = sub[["text", "label"]]
    true = sub[["text", "true_label"]].rename(columns={"true_label": "label"})
    return noisy, true, test


def lr_check(args: argparse.Namespace) -> None:
    """Fine-tune on the given labels of a subsample once per encoder learning rate; print one JSON line."""
    from labelgate.core.evaluate import score_predictions
    from labelgate.finetune import FinetuneTrainer

    train = pd.read_csv(args.data / "train.csv", dtype=str, keep_default_na=False)
    train = train.sample(min(args.rows, len(train)), random_state=args.seed)
    test = pd.read_csv(args.data / "test.csv", dtype=str, keep_default_na=False)[["text", "label"]]
    if args.test_rows is not None and args.test_rows < len(test):
        test = test.sample(args.test_rows, random_state=args.seed)
    result: dict = {"data": args.data.name, "rows": len(train), "test_rows": len(test), "epochs": args.epochs}
    for lr in (float(v) for v in args.lr_check.split(",")):
        trainer = FinetuneTrainer(epochs=args.epochs, max_seconds=args.max_seconds, lr_encoder=lr)
        fitted, details = trainer.fit_predict(
            {"given": (list(train["text"]), list(train["label"]))}, list(test["text"]), seed=args.seed
        )
        score = score_predictions("given", len(train), list(test["label"]), fitted["given"].predictions)
        result[f"lr={lr:g}"] = {"accuracy": round(score.accuracy, 4), "steps": details["steps"]}
    print(json.dumps(result, sort_keys=True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--test-rows", type=int, default=None)
    parser.add_argument("--trainers", default="finetune,proxy,proxy-c4")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--max-seconds", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr-check", default=None, help="comma-separated encoder learning rates (given labels only)")
    args = parser.parse_args(argv)
    if args.lr_check:
        lr_check(args)
        return
    noisy, true, test = load(args.data, args.rows, args.test_rows, args.seed)
    params = CurateParams(
        eval_trainers=parse_trainers(args.trainers),
        finetune_epochs=args.epochs,
        finetune_max_seconds=args.max_seconds,
        seed=args.seed,
    )
    from labelgate.services.evaluate import make_trainers

    result: dict = {
        "data": args.data.name,
        "rows": len(noisy),
        "noise_rate": round(float((noisy["label"].to_numpy() != true["label"].to_numpy()).mean()), 4),
        "classes": int(true["label"].nunique()),
        "test_rows": len(test),
        "seed": args.seed,
        "machine": platform.processor() or platform.machine(),
        "trainers": {},
    }
    for trainer in make_trainers(params):
        started = time.perf_counter()
        c = compare(noisy, true, test, seed=args.seed, trainer=trainer)
        result["trainers"][c.trainer] = {
            "model": c.model,
            "accuracy": {"noisy": round(c.raw.accuracy, 4), "true": round(c.cleaned.accuracy, 4)},
            "macro_f1": {"noisy": round(c.raw.macro_f1, 4), "true": round(c.cleaned.macro_f1, 4)},
            "gap": round(c.cleaned.accuracy - c.raw.accuracy, 4),
            "seconds": round(time.perf_counter() - started, 1),
            "details": c.details,
        }
        if c.details.get("train_seconds"):
            row_passes = c.details["steps"] * c.details["batch_size"]  # per side (an epoch's last batch is smaller)
            for key in ("train_seconds", "train_cpu_seconds"):
                per_side = sum(c.details[key].values()) / len(c.details[key])
                result["trainers"][c.trainer][f"{key}_per_1000_rows_epoch"] = round(1000 * per_side / row_passes, 1)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
