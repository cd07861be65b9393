"""A tiny run in a DuckDB file, built through store and core functions with a deterministic fake encoder.

No model and no Prefect: this is "a run in the database" for the unit layer (HTTP API, store, review library),
built the way the curate flow builds one, stage by stage, from the same core functions:

- ingest: :func:`labelgate.core.ingest.read_dataset` of a small CSV (:data:`ROWS`), one blank text quarantined
  by validation;
- embed: :class:`FakeEncoder` (hash-seeded word vectors) into the embedding cache;
- detect: :func:`labelgate.core.detect.detect_all` over the fake vectors (the ``embedding`` and ``words`` members);
- gate: :func:`labelgate.core.policy.auto_decisions` (``policy=True``) or no decision at all;
- export: :func:`labelgate.core.export.plan_export` files written under ``<out_dir>/<run_id>/`` and recorded with
  :func:`labelgate.store.record_export` (the manifest here is a small one: the real one is built by the export task).

The rows plant what the tests look for: two label errors (:data:`MISLABELLED`), a pair of exact duplicates
(:data:`DUPLICATES`), a text with markup (:data:`MARKUP_ID`) and a row nobody flags (:data:`PLAIN_ID`).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import labelgate
from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.detect import detect_all
from labelgate.core.export import apply_decisions, exclude_leakage, plan_export
from labelgate.core.issues import DETECTED_TYPES
from labelgate.core.policy import auto_decisions
from labelgate.fileio import atomic_write_bytes
from labelgate.readers import read_dataset

#: the embedding cache key of the fake encoder
FAKE_MODEL = "fake-hash-encoder/32"
CLASSES = ["billing", "shipping", "technical"]
RUN_ID = "20260101T000000-c0ffee"
DATASET = "tiny"

_WORDS = {
    "billing": ["invoice", "refund", "charge", "payment", "card", "bill", "price", "subscription"],
    "shipping": ["parcel", "delivery", "courier", "tracking", "package", "arrived", "address", "shipment"],
    "technical": ["login", "error", "crash", "password", "app", "screen", "update", "bug"],
}
#: rows labelled against their words (given label, words' class)
MISLABELLED = {"t10": ("billing", "shipping"), "t20": ("shipping", "technical")}
#: two rows with the same text and label
DUPLICATES = ("t05", "t06")
#: a text with markup the pages must escape (label billing)
MARKUP_ID = "t02"
MARKUP_TEXT = "<SCRIPT>alert(1)</SCRIPT> the invoice charge on my card is wrong"
#: the blank text validation quarantines
BLANK_ID = "t99"


def _rows() -> list[tuple[str, str, str]]:
    """``(id, text, label)`` of the input: 8 rows per class, words that reveal the class, the planted cases."""
    rows = []
    n = 0
    for c, words in _WORDS.items():
        for i in range(8):
            n += 1
            picked = [words[(i + j) % len(words)] for j in range(4)]
            rows.append((f"t{n:02d}", f"my {picked[0]} and the {picked[1]} {picked[2]} {picked[3]} case {i}", c))
    out = []
    for rid, text, label in rows:
        if rid == DUPLICATES[1]:
            text = dict((r, t) for r, t, _ in rows)[DUPLICATES[0]]
        if rid == MARKUP_ID:
            text = MARKUP_TEXT
        if rid in MISLABELLED:
            given, words_class = MISLABELLED[rid]
            assert label == words_class, (rid, label)
            label = given
        out.append((rid, text, label))
    out.append((BLANK_ID, "   ", "billing"))
    return out


ROWS = _rows()
#: a row that no detector flags in the tiny run (checked by the unit tests that use it)
PLAIN_ID = "t03"


class FakeEncoder:
    """Deterministic texts → vectors ``(n, dim)`` float32, L2-normalised: the sum of one hash-seeded random vector
    per lower-cased word. Texts sharing words are close, so classes with their own words form clusters."""

    def __init__(self, dim: int = 32) -> None:
        self.dim = dim
        self._cache: dict[str, np.ndarray] = {}

    def _word(self, word: str) -> np.ndarray:
        if word not in self._cache:
            seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
            self._cache[word] = np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)
        return self._cache[word]

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in str(text).lower().split():
                out[i] += self._word(word)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


@dataclass(frozen=True)
class TinyRun:
    """A tiny run's database, export folder and figures (``metrics`` as stored in the run's ``metrics_json``)."""

    db_path: str
    out_dir: str
    run_id: str
    metrics: dict[str, Any]
    rows: pd.DataFrame = field(repr=False)

    def copy(self, dest: Path) -> str:
        """Copy the database into the folder ``dest`` and return the new path (tests write to the copy)."""
        target = dest / "tiny.duckdb"
        target.write_bytes(Path(self.db_path).read_bytes())
        return str(target)


def tiny_params() -> CurateParams:
    """The settings the tiny run records (fast detectors; no token limit, so no tokenizer is read)."""
    return CurateParams(n_folds=3, detector_members=["embedding", "words"], max_text_tokens=None, min_text_words=1)


def write_input(path: Path) -> Path:
    """Write :data:`ROWS` as a CSV (``id,text,label``) at ``path``."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "label"])
        writer.writerows(ROWS)
    return path


def build_tiny_run(folder: Path, *, policy: bool = True, run_id: str = RUN_ID) -> TinyRun:
    """Build the tiny run in ``folder`` (``tiny.duckdb``, ``input.csv``, ``exports/``).

    ``policy``: apply the auto policy to the flagged rows (like ``--gate auto``); False leaves every row undecided
    (like a run nobody reviewed yet) and exports the rows as given.
    """
    params = tiny_params()
    folder.mkdir(parents=True, exist_ok=True)
    source = write_input(folder / "input.csv")
    db = str(folder / "tiny.duckdb")
    out_dir = folder / "exports"
    started = dt.datetime(2026, 1, 1, 0, 0, 0)

    # ingest + validate (validation's verdict for this input: the blank text is quarantined)
    read = read_dataset(source, settings=params.ingest_settings().for_file())
    rows = read.rows.assign(run_id=run_id)
    blank = rows[rows["text"].str.strip() == ""]
    quarantine = pd.DataFrame(
        {
            "run_id": run_id,
            "seq": blank["seq"],
            "row_id": blank["row_id"],
            "source_line": blank["source_line"],
            "stage": "validate",
            "reason": "empty text",
        }
    )
    valid = rows[~rows["seq"].isin(blank["seq"])].reset_index(drop=True)
    texts, labels, ids = list(valid["text"]), list(valid["label"]), list(valid["row_id"])

    # embed + detect
    vectors = FakeEncoder().encode(texts)
    found = detect_all(ids, texts, labels, vectors, settings=params.detector_settings())
    issues = found.issues.copy()
    issues.insert(0, "run_id", run_id)
    flagged = issues[issues["is_issue"]]
    per_type = {t: int((flagged["issue_type"] == t).sum()) for t in DETECTED_TYPES}
    probs = found.probs
    predictions = pd.DataFrame({"run_id": run_id, "row_id": ids, "probs": [list(map(float, p)) for p in probs.probs]})
    detection = pd.DataFrame(
        {
            "run_id": [run_id],
            "method": [probs.method],
            "classes": [list(probs.classes)],
            "n_folds": [probs.n_folds],
            "metrics_json": [json.dumps({"label_issues": per_type["label"]})],
        }
    )
    metrics: dict[str, Any] = {
        "run_id": run_id,
        "gate": "auto" if policy else "none",
        "rows_in": len(rows),
        "rows_valid": len(valid),
        "rows_quarantined": len(quarantine),
        "quarantine_reasons": {"empty text": len(quarantine)},
        "embedding_model": FAKE_MODEL,
        "texts_embedded": len(set(texts)),
        "texts_cached": 0,
        "label_issues": per_type["label"],
        "label_issue_rate": round(per_type["label"] / len(valid), 4),
        "issues_by_type": per_type,
        "rows_flagged": int(flagged["row_id"].nunique()),
        "detector": probs.method,
        "classes": list(probs.classes),
        "n_folds": probs.n_folds,
    }

    # gate
    decisions = pd.DataFrame(columns=["run_id", "row_id", "action", "label", "source", "reason"])
    if policy:
        decided = auto_decisions(flagged, settings=params.gate_settings(), n_classes=len(probs.classes))
        decisions = decided.assign(run_id=run_id, source="policy")[list(decisions.columns)]
        metrics["decisions"] = {a: int((decisions["action"] == a).sum()) for a in ("keep", "relabel", "exclude")}

    with store.connect(db) as con, store.transaction(con):
        store.insert_frame(
            con,
            "runs",
            pd.DataFrame(
                {
                    "run_id": [run_id],
                    "dataset": [DATASET],
                    "input_path": [str(source.resolve())],
                    "input_sha256": [read.input_sha256],
                    "input_format": [read.input_format],
                    "dataset_version": [read.dataset_version],
                    "params_json": [params.model_dump_json()],
                    "status": ["completed"],
                    "started_at": [started],
                    "finished_at": [started + dt.timedelta(seconds=3)],
                    "labelgate_version": [labelgate.__version__],
                }
            ),
        )
        store.insert_frame(con, "rows", rows)
        store.insert_frame(con, "quarantine", quarantine)
        store.put_embeddings(con, FAKE_MODEL, list(valid["text_sha256"]), vectors)
        store.insert_frame(con, "detections", detection)
        store.insert_frame(con, "predictions", predictions)
        store.insert_frame(con, "issues", issues)
        store.insert_frame(con, "decisions", decisions)
        store.merge_metrics(con, run_id, metrics)

    # export
    with store.connect(db) as con:
        cleaned = apply_decisions(
            store.valid_rows(con, run_id), store.latest_decisions(con, run_id) if policy else None
        )
    cleaned, leakage = exclude_leakage(cleaned, flagged=[], test_fingerprints=None)
    plan = plan_export(cleaned, settings=params.export_settings())
    export_dir = out_dir / run_id
    export_dir.mkdir(parents=True)
    paths = [str(atomic_write_bytes(export_dir / f.name, f.data).resolve()) for f in plan.files]
    manifest = {"run_id": run_id, "files": [{"name": f.name, "sha256": f.sha256, "lines": f.lines} for f in plan.files]}
    atomic_write_bytes(export_dir / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    exported = {
        **{k: v for k, v in plan.counts.items() if k != "rows_valid"},
        **leakage,
        "export_dir": str(export_dir.resolve()),
        "export_files": paths,
        "export_version": 1,
    }
    with store.connect(db) as con, store.transaction(con):
        files = [(f.format, f.split, p, f.sha256, f.records) for f, p in zip(plan.files, paths, strict=True)]
        store.record_export(con, run_id, 1, files)
        metrics = store.merge_metrics(con, run_id, {**exported, "seconds": 3.0})
        valid_rows = store.valid_rows(con, run_id)
    return TinyRun(db_path=db, out_dir=str(out_dir), run_id=run_id, metrics=metrics, rows=valid_rows)


def annotations_frame(run_id: str, labels: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Rows of the ``annotations`` table for usable ``(item_id, annotator, label)`` labels, in that order (as the
    long format's ingest stores them)."""
    return pd.DataFrame(
        {
            "run_id": run_id,
            "seq": range(len(labels)),
            "item_id": [x[0] for x in labels],
            "annotator": [x[1] for x in labels],
            "label": [x[2] for x in labels],
            "source_line": range(2, len(labels) + 2),
            "reason": None,
            "reason_kind": None,
        }
    )


def label_issue(
    row_id: str, given: str, suggested: str, prob: float, score: float, flagged: bool = True, reason: str | None = None
) -> dict:
    """One ``label`` issue record (the columns :func:`labelgate.core.policy.auto_decisions` reads), for hand-made
    issue frames; ``reason`` defaults to the detector's sentence."""
    return {
        "row_id": row_id,
        "issue_type": "label",
        "score": score,
        "is_issue": flagged,
        "given_label": given,
        "suggested_label": suggested,
        "suggested_prob": prob,
        "reason": reason if reason is not None else f"model disagrees: {suggested} {prob:.2f} vs given {given}",
    }
