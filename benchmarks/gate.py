"""Gate benchmark: what each export is worth, measured by classifiers trained on it. Prints ONE JSON line per dataset.

The question is not "how many errors did detection find" but "does a model trained on the exported file beat one
trained on the raw labels". For each dataset the same detection (labelgate defaults,
:func:`labelgate.core.detect.detect_all`) feeds several gates, and each gate's export is scored by proxies of
different noise sensitivity on the dataset's clean test file:

- ``raw``: every row with its given label (rows whose text is a test row's are left out of every gate, as
  ``labelgate evaluate`` does; detection runs as ``labelgate run train.csv`` does, without ``--test``);
- ``auto``: labelgate's default auto gate (:func:`labelgate.core.policy.auto_decisions`, ``CurateParams``
  defaults) applied with :func:`labelgate.core.export.apply_decisions`;
- ``auto_keep_doubtful``: the auto gate with ``exclude_doubtful`` off (the default gate until 2026-12-02: flagged
  label issues it does not relabel are kept as given even when their suggestion is a real contender);
- ``relabel_all``: every flagged label issue relabelled to its suggestion, nothing else excluded;
- ``drop_all``: every flagged label issue dropped;
- ``oracle``: every row with its true label (read from the truth file: scoring only).

Proxies: TF-IDF (word 1-2 + char_wb 2-5) + logistic regression at ``C=1`` (labelgate's evaluate proxy, strongly
regularised) and ``C=4`` (less regularised: closer to how a fine-tuned model absorbs label noise). Per proxy,
``gap_recovered`` = (gate - raw) / (oracle - raw): the share of what the true labels would add that the export adds.

Datasets (each optional, repeatable)::

    python benchmarks/gate.py --data ../shared/data/banking77-noisy --data ../shared/data/politeness-wikipedia \
        --sample

``--sample``: the bundled sample's true labels (``data/sample_truth.csv``) with ``--noise`` of them flipped,
scored on ``data/sample_test.csv``. ``--data DIR`` needs ``train.csv``, ``train_truth.csv`` (id, true_label)
and ``test.csv``. ``--synthetic CLEAN:TEST`` flips ``--noise`` of CLEAN's labels (seeded) and scores on TEST
(``CLEAN`` alone: 30% held out).
``--finetune-rows N`` adds the fine-tune evaluator's view (:class:`labelgate.finetune.FinetuneTrainer`, the
bundled MiniLM + a linear head, ``--finetune-epochs``) of ``--finetune-gates`` on a seeded subsample of N training
rows, with both proxies re-scored on the same rows (``finetune`` in the JSON line). It costs about 80 s of CPU per
1,000 rows, epoch and gate on a 2-core machine::

    python benchmarks/gate.py --data ../shared/data/banking77-noisy --finetune-rows 2000 --finetune-test-rows 1000

Detection results are cached under ``--cache`` (keyed by the data, the settings and the detection code), so
policies can be compared quickly; ``--no-detection-cache`` recomputes.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from detection import embed, embed_layers, flip_labels, labelgate_detect, read  # noqa: E402

from labelgate.config import CurateParams  # noqa: E402
from labelgate.core.evaluate import proxy_pipeline  # noqa: E402
from labelgate.core.export import apply_decisions, text_fingerprints  # noqa: E402
from labelgate.core.policy import auto_decisions  # noqa: E402

#: proxies: name -> logistic regression C
PROXIES = {"C1": 1.0, "C4": 4.0}
#: files whose code changes what detection returns (part of the detection cache key)
DETECTION_CODE = ["core/detect.py", "core/probs.py", "core/duplicates.py", "core/outliers.py", "core/issues.py"]


def proxy_accuracy(train_texts, train_labels, test: pd.DataFrame, *, C: float, seed: int = 0) -> float:
    """Test accuracy of the proxy with ``C`` trained on the given rows."""
    pipe = proxy_pipeline(seed).set_params(model__C=C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(list(train_texts), list(train_labels))
    return float((pipe.predict(list(test["text"])) == test["label"].to_numpy(object)).mean())


def _detection_key(train: pd.DataFrame, params: CurateParams) -> str:
    h = hashlib.sha256()
    h.update("\x00".join(train["text"]).encode())
    h.update("\x00".join(train["label"]).encode())
    h.update(params.model_dump_json().encode())
    for name in DETECTION_CODE:
        h.update((REPO / "labelgate" / name).read_bytes())
    return h.hexdigest()[:20]


def detect(train: pd.DataFrame, params: CurateParams, cache: Path, use_cache: bool):
    """``(issues, label_issues, seconds)`` of labelgate's detection on ``train``, as ``labelgate run train.csv``
    without ``--test`` detects (no near-twin leakage check: the gates are compared on the same rows)."""
    key = _detection_key(train, params)
    paths = cache / f"gate-issues-{key}.parquet", cache / f"gate-labels-{key}.parquet"
    if use_cache and all(p.exists() for p in paths):
        return pd.read_parquet(paths[0]), pd.read_parquet(paths[1]), None
    X = embed(list(train["text"]), params.model, cache)
    layers = embed_layers(list(train["text"]), params.model, cache) if "layers" in params.detector_members else None
    started = time.perf_counter()
    found = labelgate_detect(train, X, params, layer_vectors=layers)
    seconds = time.perf_counter() - started
    cache.mkdir(parents=True, exist_ok=True)
    found.issues.to_parquet(paths[0])
    found.label_issues.to_parquet(paths[1])
    np.savez_compressed(  # the probabilities, for exploring rules offline
        cache / f"gate-probs-{key}.npz",
        probs=found.probs.probs,
        labels=found.probs.labels,
        classes=np.array(found.probs.classes, dtype=object),
        **{f"member_{k}": v for k, v in found.probs.members.items()},
    )
    return found.issues, found.label_issues, seconds


def exported(train: pd.DataFrame, decisions: pd.DataFrame | None, leaks: set[str]) -> pd.DataFrame:
    """The rows a gate exports: decisions applied with the export's own function, test leaks left out."""
    rows = train.rename(columns={"id": "row_id"})[["row_id", "text", "label"]]
    cleaned = apply_decisions(rows, decisions)
    cleaned = cleaned[~cleaned["row_id"].isin(leaks)]
    return cleaned[cleaned["action"] != "exclude"]


def label_only_decisions(label_issues: pd.DataFrame, action: str) -> pd.DataFrame:
    """``relabel`` (to the suggestion) or ``exclude`` every flagged label issue."""
    flagged = label_issues[label_issues["is_label_issue"].astype(bool)]
    label = flagged["suggested_label"] if action == "relabel" else None
    return pd.DataFrame({"row_id": flagged["row_id"], "action": action, "label": label, "source": "benchmark"})


def run_dataset(name: str, train: pd.DataFrame, true_labels: np.ndarray, test: pd.DataFrame, args) -> dict:
    params = CurateParams(seed=args.seed)
    issues, label_issues, detect_s = detect(train, params, args.cache, not args.no_detection_cache)
    # rows whose text is a test row's (normalised) are left out of every gate's export, as `evaluate` does
    test_keys = text_fingerprints(test["text"])
    leaks = {r for r, t in zip(train["id"], train["text"]) if text_fingerprints([t]) & test_keys}
    n_classes = train["label"].nunique()
    started = time.perf_counter()
    auto = auto_decisions(issues, settings=params.gate_settings(), n_classes=n_classes)
    policy_s = time.perf_counter() - started
    truth = pd.DataFrame({"row_id": train["id"], "action": "relabel", "label": true_labels, "source": "truth"})
    keep_doubtful = dataclasses.replace(params.gate_settings(), exclude_doubtful=None)
    kept = auto_decisions(issues, settings=keep_doubtful, n_classes=n_classes)
    gates = {
        "raw": exported(train, None, leaks),
        "auto": exported(train, auto, leaks),
        "auto_keep_doubtful": exported(train, kept, leaks),
        "relabel_all": exported(train, label_only_decisions(label_issues, "relabel"), leaks),
        "drop_all": exported(train, label_only_decisions(label_issues, "exclude"), leaks),
        "oracle": exported(train, truth, leaks),
    }
    truth_of = dict(zip(train["id"], true_labels))
    excluded_reasons = auto.loc[auto["action"] == "exclude", "reason"]
    result: dict = {
        "benchmark": "gate",
        "dataset": name,
        "rows": len(train),
        "classes": n_classes,
        "noise_rate": round(float((train["label"].to_numpy(object) != true_labels).mean()), 4),
        "test_rows": len(test),
        "label_issues_flagged": int(label_issues["is_label_issue"].sum()),
        "auto_decisions": {a: int((auto["action"] == a).sum()) for a in ("relabel", "keep", "exclude")},
        "auto_keep_doubtful_decisions": {a: int((kept["action"] == a).sum()) for a in ("relabel", "keep", "exclude")},
        "auto_excluded_by_reason": excluded_reasons.str.extract(r"^([a-z_ ]+?)(?::|$| \()", expand=False)
        .mask(excluded_reasons.str.contains(" is in doubt", regex=False), "doubtful")
        .fillna("other")
        .value_counts()
        .to_dict(),
        "rows_exported": {g: len(df) for g, df in gates.items()},
        "label_accuracy": {
            g: round(float((df["label"].to_numpy(object) == df["row_id"].map(truth_of).to_numpy(object)).mean()), 4)
            for g, df in gates.items()
        },
        "proxies": {},
    }
    started = time.perf_counter()
    for proxy, C in PROXIES.items():
        acc = {
            g: round(proxy_accuracy(df["text"], df["label"], test, C=C, seed=args.seed), 4) for g, df in gates.items()
        }
        gap = acc["oracle"] - acc["raw"]
        recovered = {
            g: (round((acc[g] - acc["raw"]) / gap, 3) if gap > 1e-9 else None)
            for g in ("auto", "auto_keep_doubtful", "relabel_all", "drop_all")
        }
        result["proxies"][proxy] = {"C": C, "accuracy": acc, "gap_recovered": recovered}
    result["seconds"] = {
        "detect": None if detect_s is None else round(detect_s, 1),
        "policy": round(policy_s, 2),
        "proxies": round(time.perf_counter() - started, 1),
    }
    if args.finetune_rows:
        started = time.perf_counter()
        result["finetune"] = finetune_view(gates, test, args)
        result["seconds"]["finetune"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result), flush=True)
    return result


def finetune_view(gates: dict[str, pd.DataFrame], test: pd.DataFrame, args) -> dict:
    """The fine-tune evaluator's view of the gates on a seeded subsample of ``--finetune-rows`` training rows.

    Every gate's export is restricted to the same sampled row ids (an excluded row stays out), each is fine-tuned
    with :class:`labelgate.finetune.FinetuneTrainer` (same seed, steps and schedule for every gate) and scored on
    the test file (or a seeded ``--finetune-test-rows`` subsample). The proxies are scored on the same rows, so
    the views can be compared.
    """
    from labelgate.finetune import FinetuneTrainer

    names = [g.strip() for g in args.finetune_gates.split(",") if g.strip()]
    unknown = [g for g in names if g not in gates]
    if unknown or "raw" not in names or "oracle" not in names:
        raise SystemExit(f"--finetune-gates: {args.finetune_gates!r}; needs raw and oracle, from: {', '.join(gates)}")
    ids = gates["raw"]["row_id"]
    rng = np.random.default_rng(args.seed)
    sampled = set(rng.choice(ids.to_numpy(object), size=min(args.finetune_rows, len(ids)), replace=False))
    subsets = {g: gates[g][gates[g]["row_id"].isin(sampled)] for g in names}
    scored = test
    if args.finetune_test_rows and args.finetune_test_rows < len(test):
        scored = test.sample(args.finetune_test_rows, random_state=args.seed)
    trainer = FinetuneTrainer(epochs=args.finetune_epochs)
    fitted, details = trainer.fit_predict(
        {g: (list(df["text"]), list(df["label"])) for g, df in subsets.items()}, list(scored["text"]), seed=args.seed
    )
    truth = scored["label"].to_numpy(object)
    views: dict = {
        "finetune": {
            g: round(float((np.array(f.predictions, dtype=object) == truth).mean()), 4) for g, f in fitted.items()
        }
    }
    for proxy, C in PROXIES.items():
        views[proxy] = {
            g: round(proxy_accuracy(df["text"], df["label"], scored, C=C, seed=args.seed), 4)
            for g, df in subsets.items()
        }
    out: dict = {
        "rows": {g: len(df) for g, df in subsets.items()},
        "test_rows": len(scored),
        "model": trainer.model,
        "steps": details["steps"],
        "accuracy": views,
        "gap_recovered": {},
    }
    for view, acc in views.items():
        gap = acc["oracle"] - acc["raw"]
        out["gap_recovered"][view] = {
            g: (round((acc[g] - acc["raw"]) / gap, 3) if gap > 1e-9 else None)
            for g in names
            if g not in ("raw", "oracle")
        }
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, action="append", default=[], help="folder with train/train_truth/test.csv")
    ap.add_argument("--synthetic", action="append", default=[], help="CLEAN[:TEST] files (text,label[,id])")
    ap.add_argument("--sample", action="store_true", help="the bundled sample, true labels with --noise flipped")
    ap.add_argument("--noise", type=float, default=0.2, help="synthetic: fraction of labels flipped")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/labelgate-bench-cache"))
    ap.add_argument("--no-detection-cache", action="store_true")
    ap.add_argument("--finetune-rows", type=int, default=0, help="also fine-tune on this many sampled rows (0: off)")
    ap.add_argument("--finetune-epochs", type=float, default=3.0)
    ap.add_argument("--finetune-test-rows", type=int, default=0, help="score on a seeded test subsample (0: all)")
    ap.add_argument("--finetune-gates", default="raw,auto,oracle", help="gates to fine-tune on (raw and oracle needed)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    if not args.data and not args.synthetic and not args.sample:
        ap.error("pass --data DIR, --sample and/or --synthetic CLEAN[:TEST]")
    out = []
    for folder in args.data:
        train = read(folder / "train.csv")
        truth = read(folder / "train_truth.csv").set_index("id").loc[train["id"]]
        test = read(folder / "test.csv")
        out.append(run_dataset(folder.name, train, truth["true_label"].to_numpy(object), test, args))
    for spec in args.synthetic:
        clean_path, _, test_path = spec.partition(":")
        clean = read(Path(clean_path))
        if "id" not in clean.columns:  # a text,label file (a published test split): ids by row number
            clean.insert(0, "id", [f"r{i:06d}" for i in range(len(clean))])
        if test_path:
            train, test = clean, read(Path(test_path))
        else:
            held = np.random.default_rng(args.seed).random(len(clean)) < 0.3
            train, test = clean[~held].reset_index(drop=True), clean[held].reset_index(drop=True)
        true_labels = train["label"].to_numpy(object)
        train = train.assign(label=flip_labels(train["label"], args.noise, args.seed).to_numpy())
        out.append(run_dataset(f"synthetic:{Path(clean_path).name}@{args.noise}", train, true_labels, test, args))
    if args.sample:
        sample = read(REPO / "data" / "sample.csv")
        truth = read(REPO / "data" / "sample_truth.csv").set_index("id")["true_label"]
        true_labels = sample["id"].map(truth).to_numpy(object)
        train = sample.assign(label=flip_labels(pd.Series(true_labels), args.noise, args.seed).to_numpy())
        test = read(REPO / "data" / "sample_test.csv")
        out.append(run_dataset(f"sample@{args.noise}", train, true_labels, test, args))
    return out


if __name__ == "__main__":
    main()
