"""The whole pipeline on N generated texts: ``labelgate run`` with default settings vs the published recipe's work.

Not a test: prints ONE JSON line. ::

    python benchmarks/pipeline.py --rows 5000
    python benchmarks/pipeline.py --rows 100000 --classes 150 --noise 0.1 --seed 0

The data (seeded, no downloads): ``--rows`` distinct short texts (~60 characters) of ``--classes`` intents. Each
intent is a (domain, request) pair: a domain brings its objects and an intent its verbs and phrasing, so intents of
one domain share most words (as in real intent data); every text also carries a random order number, amount or
date, so no two texts are equal. ``--noise`` of the labels are flipped, half to an intent of the same domain (the
confusable kind), half to any other intent. The truth is kept in memory only: labelgate reads the noisy CSV.

Measured in the same run:

- ``labelgate``: ``labelgate run data.csv --json`` in a child process (cold: a fresh database and Prefect home),
  default settings: wall seconds, the run's per-stage seconds (``seconds_by_stage`` when the run reports them, else
  what its metrics hold), peak RSS of its largest process (``ru_maxrss``: the run's own process or one detect
  worker), the peak of the summed RSS of its whole process tree (``peak_tree_rss_gib``: the run, its detect
  workers and Prefect's ephemeral server, sampled every 0.25 s; a page that several of them map counts once per
  process), the peak of their summed PSS (``peak_tree_pss_gib``: each shared page split between the processes that
  map it, so counted once in all: the memory the tree holds), rows/s, and detection quality on the flips
  (label issues of the run against the flipped rows: precision, recall, F1, precision@100).
- ``recipe``: the published recipe's own work on the same texts in this process: encode with the same model
  (sentence-transformers, default batch), 10-fold logistic regression, cleanlab ``find_label_issues``; wall
  seconds and the same quality figures.
- ``ratio``: labelgate's wall / the recipe's (issue 16 asks for <= 1.5 on a 4,482-row file).

``--skip-recipe`` leaves the recipe out (for sizes where only labelgate's figures are wanted).

``--stub-embedding`` runs ``benchmarks/stub_run.py`` instead of ``labelgate run``: the same run with the embedding
replaced by a hashing vectoriser times random matrices of the model's shape, so every later stage works at full size
(a million rows in minutes instead of the embedding's hour on 2 cores) but the detection quality means nothing: the
JSON line then has ``"embedding": "stubbed"``, no ``quality`` and no recipe. ::

    python benchmarks/pipeline.py --rows 1000000 --classes 150 --noise 0.1 --seed 0 --stub-embedding

``--prefect-home DIR`` runs labelgate with that ``PREFECT_HOME`` (created on first use, kept): a user's later runs,
whose Prefect database exists, instead of the first run on a machine (the default: a new one, whose database
migrations the ephemeral API's start includes).

``--data DIR`` runs a real file instead of generated texts: ``DIR/train.csv`` (``id, text, label``) is the input, and
``DIR/train_truth.csv`` (``id, true_label``) scores the flags (read by this benchmark only, never by labelgate).
``--rows N`` then takes the first N rows (default: all). ::

    python benchmarks/pipeline.py --data ../shared/data/politeness-wikipedia
    python benchmarks/pipeline.py --data ../shared/data/banking77-noisy
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DOMAINS = {
    "card": ["card", "debit card", "credit card", "virtual card", "contactless card", "card PIN"],
    "transfer": ["transfer", "bank transfer", "payment to a friend", "wire", "standing order", "SEPA payment"],
    "account": ["account", "savings account", "joint account", "business account", "profile", "login"],
    "order": ["order", "parcel", "delivery", "package", "shipment", "purchase"],
    "refund": ["refund", "return", "chargeback", "reimbursement", "credit note", "exchange"],
    "subscription": ["subscription", "plan", "membership", "premium plan", "renewal", "trial"],
    "travel": ["flight", "hotel booking", "train ticket", "rental car", "seat", "boarding pass"],
    "device": ["phone", "router", "laptop", "smart watch", "tablet", "headphones"],
    "insurance": ["policy", "claim", "home insurance", "car insurance", "premium", "cover"],
    "loan": ["loan", "mortgage", "overdraft", "instalment", "credit limit", "repayment"],
}
INTENTS = {
    "status": ("where is my {o}", "what is the status of my {o}", "any news on my {o}", "track my {o}"),
    "cancel": ("please cancel my {o}", "I want to cancel the {o}", "stop my {o} now", "how do I cancel my {o}"),
    "change": ("can I change my {o}", "I need to update my {o}", "modify the {o} please", "edit my {o} details"),
    "broken": ("my {o} is not working", "the {o} keeps failing", "something is wrong with my {o}", "{o} error"),
    "fee": (
        "why was I charged a fee for my {o}",
        "unexpected charge on my {o}",
        "what does the {o} cost",
        "the {o} fee is too high",
    ),
    "open": ("how do I get a new {o}", "I would like to open a {o}", "sign me up for a {o}", "apply for a {o}"),
    "lost": ("I lost my {o}", "my {o} was stolen", "cannot find my {o} anywhere", "someone took my {o}"),
    "limit": (
        "what is the limit on my {o}",
        "raise the limit of my {o}",
        "my {o} limit was reached",
        "is there a maximum for the {o}",
    ),
    "verify": (
        "how do I verify my {o}",
        "verification of my {o} failed",
        "confirm my {o} identity",
        "why is my {o} not verified",
    ),
    "compare": (
        "which {o} is best for me",
        "compare your {o} options",
        "difference between {o} types",
        "recommend a {o}",
    ),
    "delay": (
        "my {o} is late",
        "why is the {o} taking so long",
        "the {o} is delayed again",
        "still waiting for the {o}",
    ),
    "complain": (
        "I am unhappy with my {o}",
        "terrible service with the {o}",
        "I want to complain about my {o}",
        "the {o} was a bad experience",
    ),
    "receipt": (
        "send me a receipt for my {o}",
        "I need an invoice for the {o}",
        "statement for my {o}",
        "proof of my {o}",
    ),
    "pin": ("reset the password of my {o}", "I forgot the code for my {o}", "unlock my {o}", "locked out of my {o}"),
    "abroad": (
        "can I use my {o} abroad",
        "my {o} does not work in another country",
        "{o} while travelling",
        "foreign currency and my {o}",
    ),
}
OPENERS = ("", "hi, ", "hello, ", "excuse me, ", "quick question: ", "urgent: ", "good morning, ", "hey, ")
CLOSERS = ("", " thanks", " please help", " asap", " thank you", " any idea?", " cheers", " what should I do?")


def intents(n_classes: int) -> list[tuple[str, str]]:
    """The first ``n_classes`` (domain, intent) pairs, domains interleaved so every domain gets several."""
    pairs = [(d, i) for i in INTENTS for d in DOMAINS]
    if n_classes > len(pairs):
        raise SystemExit(f"--classes {n_classes}: at most {len(pairs)}")
    return pairs[:n_classes]


def generate(n: int, n_classes: int, noise: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """``(frame with id, text, label (noisy)), true labels)``; texts are distinct."""
    rng = np.random.default_rng(seed)
    classes = intents(n_classes)
    names = [f"{d}_{i}" for d, i in classes]
    y = rng.integers(n_classes, size=n)
    texts = []
    for k in y:
        domain, intent = classes[k]
        obj = DOMAINS[domain][rng.integers(len(DOMAINS[domain]))]
        phrase = INTENTS[intent][rng.integers(len(INTENTS[intent]))].format(o=obj)
        detail = (
            f" (order {rng.integers(10**7, 10**8)})",
            f", it was {rng.integers(2, 999)}.{rng.integers(10, 99)} EUR",
            f" since {rng.integers(1, 28)}/{rng.integers(1, 12)}",
            f", ref {rng.integers(10**5, 10**6)}",
        )[rng.integers(4)]
        text = OPENERS[rng.integers(len(OPENERS))] + phrase + detail + CLOSERS[rng.integers(len(CLOSERS))]
        texts.append(text[0].upper() + text[1:])
    true = np.array([names[k] for k in y], dtype=object)
    noisy = true.copy()
    flip = rng.choice(n, size=round(noise * n), replace=False)
    same_domain = {d: [j for j, (dd, _) in enumerate(classes) if dd == d] for d in DOMAINS}
    for pos, i in enumerate(flip):
        domain = classes[y[i]][0]
        pool = [j for j in same_domain[domain] if j != y[i]] if pos % 2 == 0 else []
        if not pool:
            pool = [j for j in range(n_classes) if j != y[i]]
        noisy[i] = names[pool[rng.integers(len(pool))]]
    frame = pd.DataFrame({"id": [f"r{i:07d}" for i in range(n)], "text": texts, "label": noisy})
    if frame["text"].duplicated().any():  # the details make a repeat vanishingly rare; drop one if it happens
        keep = ~frame["text"].duplicated()
        frame, true = frame[keep].reset_index(drop=True), true[keep.to_numpy()]
    return frame, true


def read_data(folder: Path, rows: int | None) -> tuple[pd.DataFrame, np.ndarray]:
    """``(frame with id, text, label, true labels)`` of a real data folder (see the module docstring)."""
    frame = pd.read_csv(folder / "train.csv", dtype=str, keep_default_na=False)
    truth = pd.read_csv(folder / "train_truth.csv", dtype=str, keep_default_na=False).set_index("id")
    if rows is not None:
        frame = frame.head(rows)
    frame = frame[["id", "text", "label"]].reset_index(drop=True)
    return frame, truth["true_label"].reindex(frame["id"]).to_numpy(object)


def quality(flags: np.ndarray, scores: np.ndarray, is_error: np.ndarray) -> dict:
    """Precision, recall, F1 of ``flags`` and precision@100 of the lowest ``scores`` against ``is_error``."""
    tp = int((flags & is_error).sum())
    precision = tp / max(int(flags.sum()), 1)
    recall = tp / max(int(is_error.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    top = np.argsort(scores, kind="stable")[:100]
    return {
        "flagged": int(flags.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "precision_at_100": round(float(is_error[top].mean()), 4),
    }


def run_labelgate(
    csv: Path, work: Path, prefect_home: Path | None = None, *, stub_embedding: bool = False
) -> tuple[dict, float, float, TreeRss]:
    """``(the run's --json figures, wall seconds, peak RSS GiB of its largest process, the sampler of its process
    tree's memory)`` of a cold ``labelgate run`` in a child process (a new ``PREFECT_HOME`` unless ``prefect_home`` is
    given; with ``stub_embedding``, ``benchmarks/stub_run.py``'s run)."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home or work / "prefect"),
        "LABELGATE_PROGRESS": "0",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    entry = [str(REPO / "benchmarks" / "stub_run.py")] if stub_embedding else ["-m", "labelgate.cli", "run"]
    cmd = [sys.executable, *entry, str(csv), "--db", str(work / "lg.duckdb"), "--out", str(work / "out"), "--json"]
    started = time.perf_counter()
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        sampler = TreeRss(child.pid)
        stdout, stderr = child.communicate()
        sampler.stop()
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"labelgate run failed ({child.returncode}): {stderr.strip()[-2000:]}")
    figures = json.loads(stdout.strip().splitlines()[-1])
    rss_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return figures, wall, rss_gib, sampler


class TreeRss:
    """Peaks of process ``pid`` and all its descendants (the detect workers, Prefect's server), sampled every
    ``interval`` seconds on a thread: ``peak_gib``, of their summed RSS (a page that several of them map, such as a
    shared library or a memory-mapped array, counts once per process), and ``peak_pss_gib``, of their summed PSS
    (each shared page split between the processes that map it: what the tree holds in memory). Both None without
    ``psutil``; ``peak_pss_gib`` None where the OS does not report PSS. ``peak_parts``: at the sample of the summed
    RSS peak, each process's ``[role, RSS GiB]`` (role: ``run``, ``prefect-server``, ``worker`` or ``other``), largest
    first: where the peak's memory is."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        import threading

        self.peak_gib: float | None = None
        self.peak_pss_gib: float | None = None
        self.peak_parts: list[list[Any]] = []
        self._done = threading.Event()
        try:
            import psutil

            self._root = psutil.Process(pid)
        except Exception:  # psutil missing or the child already gone: no tree figure
            return
        self.peak_gib = 0.0
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        import psutil

        while not self._done.is_set():
            total = 0
            pss: int | None = 0
            parts: list[list[Any]] = []
            try:
                procs = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                return
            for proc in procs:
                try:
                    if pss is not None:
                        full = proc.memory_full_info()
                        rss = full.rss
                        pss = pss + full.pss if hasattr(full, "pss") else None
                    else:
                        rss = proc.memory_info().rss
                    total += rss
                    parts.append([_role(proc, self._root), round(rss / 2**30, 3)])
                except psutil.AccessDenied:
                    pss = None
                except psutil.Error:
                    pass
            if total / 2**30 >= (self.peak_gib or 0.0):
                self.peak_gib = total / 2**30
                self.peak_parts = sorted(parts, key=lambda part: -part[1])
            if pss is not None:
                self.peak_pss_gib = max(self.peak_pss_gib or 0.0, pss / 2**30)
            self._done.wait(interval)

    def stop(self) -> None:
        self._done.set()
        if self.peak_gib is not None:
            self._thread.join()


def _role(proc: Any, root: Any) -> str:
    """What a process of the run's tree is: ``run`` (the root), ``prefect-server``, ``worker`` (a detect worker,
    started by multiprocessing's spawn) or ``other``."""
    if proc.pid == root.pid:
        return "run"
    try:
        cmdline = " ".join(proc.cmdline())
    except Exception:  # gone or not readable: still counted, by name unknown
        return "other"
    if "prefect.server" in cmdline:
        return "prefect-server"
    if "multiprocessing.spawn" in cmdline:
        return "worker"
    return "other"


def label_issues(db: Path, run_id: str) -> pd.DataFrame:
    """The run's label rows (``row_id, label_score, is_label_issue``), read through the store."""
    from labelgate import store

    with store.connect(db, read_only=True) as con:
        rows = store.issue_rows(con, run_id=run_id)
    label = rows[rows["issue_type"] == "label"]
    return pd.DataFrame(
        {"row_id": label["id"], "label_score": label["score"], "is_label_issue": label["is_issue"].astype(bool)}
    )


def run_figures(db: Path, run_id: str) -> dict:
    """The run's stored metrics (typed): per-stage seconds, the detect stage's timings and approximations."""
    from labelgate import store
    from labelgate.core.metrics import RunMetrics

    with store.connect(db, read_only=True) as con:
        m = RunMetrics.from_json(store.stored_metrics(con, run_id=run_id))
    detect = m.detect
    return {
        "seconds_by_stage": m.seconds_by_stage,
        "startup_seconds": m.to_json().get("startup_seconds"),
        "detect_seconds": None if detect is None else detect.detect_seconds,
        "n_folds": None if detect is None else detect.n_folds,
        "approximations": None if detect is None else detect.approximations,
    }


def recipe(texts: list[str], labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The published recipe: encode, 10-fold logistic regression, cleanlab; ``(flags, self-confidence, seconds)``."""
    from cleanlab.filter import find_label_issues
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from labelgate.embedding import default_model_path

    started = time.perf_counter()
    model = SentenceTransformer(str(default_model_path()), device="cpu")
    X = model.encode(texts, normalize_embeddings=True)
    _, y = np.unique(labels, return_inverse=True)
    folds = StratifiedKFold(n_splits=10, shuffle=True, random_state=seed)
    probs = cross_val_predict(LogisticRegression(max_iter=1000), X, y, cv=folds, method="predict_proba")
    flags = find_label_issues(y, probs)
    seconds = time.perf_counter() - started
    return flags, probs[np.arange(len(y)), y], seconds


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=None, help="generated texts (default 5000), or the first N of --data")
    ap.add_argument("--classes", type=int, default=150)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-recipe", action="store_true")
    ap.add_argument("--data", type=Path, default=None, help="a folder with train.csv and train_truth.csv")
    ap.add_argument("--prefect-home", type=Path, default=None, help="reuse this PREFECT_HOME (default: a new one)")
    ap.add_argument(
        "--stub-embedding", action="store_true", help="stub the embedding (scale only: no quality figure, no recipe)"
    )
    args = ap.parse_args(argv)
    started = time.perf_counter()
    if args.data is not None:
        frame, true = read_data(args.data, args.rows)
    else:
        frame, true = generate(5000 if args.rows is None else args.rows, args.classes, args.noise, args.seed)
    generate_s = time.perf_counter() - started
    is_error = frame["label"].to_numpy(object) != true
    result: dict = {
        "benchmark": "pipeline",
        "data": "generated" if args.data is None else args.data.name,
        "prefect_home": "new" if args.prefect_home is None else "existing",
        "rows": len(frame),
        "classes": int(frame["label"].nunique()),
        "noise_rate": round(float(is_error.mean()), 4),
        "mean_chars": round(float(frame["text"].str.len().mean()), 1),
        "generate_seconds": round(generate_s, 1),
    }
    with tempfile.TemporaryDirectory(prefix="labelgate-pipeline-") as tmp:
        work = Path(tmp)
        csv = work / "data.csv"
        frame.to_csv(csv, index=False)
        figures, wall, rss, tree = run_labelgate(csv, work, args.prefect_home, stub_embedding=args.stub_embedding)
        lg: dict = {
            "wall_seconds": round(wall, 1),
            "rows_per_second": round(len(frame) / wall, 1),
            "peak_rss_gib": round(rss, 2),
            "peak_tree_rss_gib": None if tree.peak_gib is None else round(tree.peak_gib, 2),
            "peak_tree_pss_gib": None if tree.peak_pss_gib is None else round(tree.peak_pss_gib, 2),
            "peak_tree_parts": tree.peak_parts,
            "label_issues": figures.get("label_issues"),
            **run_figures(work / "lg.duckdb", figures["run_id"]),
        }
        if args.stub_embedding:  # the vectors mean nothing: no quality figure, and nothing to compare the recipe with
            result["embedding"] = "stubbed"
        else:
            by_id = label_issues(work / "lg.duckdb", figures["run_id"]).set_index("row_id").reindex(frame["id"])
            lg["quality"] = quality(
                by_id["is_label_issue"].fillna(False).to_numpy(bool),
                by_id["label_score"].fillna(1.0).to_numpy(float),
                is_error,
            )
        result["labelgate"] = lg
    if not args.stub_embedding and not args.skip_recipe:
        flags, self_conf, seconds = recipe(list(frame["text"]), frame["label"].to_numpy(object), args.seed)
        result["recipe"] = {"wall_seconds": round(seconds, 1), "quality": quality(flags, self_conf, is_error)}
        result["ratio"] = round(result["labelgate"]["wall_seconds"] / result["recipe"]["wall_seconds"], 2)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
