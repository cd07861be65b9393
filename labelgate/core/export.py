"""Turn the reviewed rows into fine-tuning examples: apply decisions, split, format, describe.

Pure functions: the writing of files is done by :mod:`labelgate.fileio`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from labelgate.errors import ExportError

CLEANED_COLUMNS = ["row_id", "text", "label", "original_label", "action", "source"]


def apply_decisions(rows: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """Apply the latest decision per row to ``rows``.

    Args:
        rows: the valid rows, columns ``row_id, text, label`` (unique ``row_id``).
        decisions: the latest decision per row, columns ``row_id, action, label`` and optionally
            ``source``; rows without a decision are kept as given.

    Returns:
        Columns :data:`CLEANED_COLUMNS` in the order of ``rows``; ``label`` is the label to export
        (None for excluded rows), ``action`` is keep, relabel or exclude, ``source`` policy, human or
        ``None`` (no decision).
    """
    out = rows[["row_id", "text", "label"]].rename(columns={"label": "original_label"}).copy()
    if decisions is None or decisions.empty:
        out["label"] = out["original_label"]
        out["action"] = "keep"
        out["source"] = None
        return out[CLEANED_COLUMNS].reset_index(drop=True)
    d = decisions.drop_duplicates("row_id", keep="last").set_index("row_id")
    unknown = set(d.index) - set(out["row_id"])
    if unknown:
        sample = sorted(unknown)[:3]
        raise ExportError(f"{len(unknown)} decisions name rows that are not valid rows of the run, e.g. {sample}")
    action = out["row_id"].map(d["action"]).fillna("keep")
    bad = sorted(set(action) - {"keep", "relabel", "exclude"})
    if bad:
        raise ExportError(f"unknown decision action {bad[0]!r}; expected keep, relabel or exclude")
    new_label = out["row_id"].map(d["label"])
    relabel = action == "relabel"
    if new_label[relabel].isna().any():
        rid = out.loc[relabel & new_label.isna(), "row_id"].iloc[0]
        raise ExportError(f"relabel decision for row {rid!r} has no label")
    label = out["original_label"].where(~relabel, new_label)
    label = label.where(action != "exclude", None)
    out["label"] = label
    out["action"] = action
    source = d["source"] if "source" in d.columns else pd.Series(dtype=object)
    out["source"] = out["row_id"].map(source).where(out["row_id"].isin(d.index), None)
    return out[CLEANED_COLUMNS].reset_index(drop=True)


def stratified_split(
    row_ids: Iterable[str], labels: Iterable[str], *, val_fraction: float, seed: int = 0
) -> np.ndarray:
    """Assign each row to train or validation, stratified by label; return a bool array (True = validation).

    Within each class, rows are ordered by ``sha256(f"{seed}:{row_id}")`` and the first
    ``round(n * val_fraction)`` go to validation (at least one when the class has 2 or more rows
    and ``val_fraction > 0``; never the whole class). The assignment of a row depends only on its
    id, its class, the seed and the class size, not on the order of the input.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    ids = [str(r) for r in row_ids]
    labs = [str(v) for v in labels]
    if len(ids) != len(labs):
        raise ValueError(f"{len(ids)} row ids but {len(labs)} labels")
    is_val = np.zeros(len(ids), dtype=bool)
    if val_fraction == 0.0:
        return is_val
    by_class: dict[str, list[int]] = {}
    for i, lab in enumerate(labs):
        by_class.setdefault(lab, []).append(i)
    for members in by_class.values():
        n = len(members)
        if n < 2:
            continue
        k = min(max(1, round(n * val_fraction)), n - 1)
        ordered = sorted(members, key=lambda i: hashlib.sha256(f"{seed}:{ids[i]}".encode()).digest())
        is_val[ordered[:k]] = True
    return is_val


def default_system_prompt(task_description: str, classes: Iterable[str]) -> str:
    """The default system message: names the task and the label set."""
    labels = ", ".join(sorted(classes))
    return f"{task_description.rstrip('. ')} into one of: {labels}. Answer with the label only."


def openai_chat(text: str, label: str, *, system_prompt: str | None) -> dict[str, Any]:
    """One OpenAI chat fine-tuning example: ``{"messages": [system?, user, assistant]}``."""
    messages: list[dict[str, str]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": text})
    messages.append({"role": "assistant", "content": label})
    return {"messages": messages}


#: export formats by name: each maps (text, label, system_prompt=...) to one JSON record
FORMATS: dict[str, Callable[..., dict[str, Any]]] = {"openai-chat": openai_chat}


def to_jsonl(records: Iterable[dict[str, Any]]) -> tuple[bytes, int]:
    """Serialise records as UTF-8 JSON Lines (no ASCII escaping, key order kept); return ``(bytes, lines)``."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    return data, len(lines)


@dataclass(frozen=True)
class ExportPlan:
    """What to write: ``files`` maps a file name to its bytes and line count."""

    files: dict[str, tuple[bytes, int]]
    counts: dict[str, int]
    system_prompt: str | None


def plan_export(
    cleaned: pd.DataFrame,
    *,
    fmt: str = "openai-chat",
    val_fraction: float = 0.1,
    seed: int = 0,
    system_prompt: str | None = None,
    task_description: str = "Classify the text",
) -> ExportPlan:
    """Build the train/validation files of ``cleaned`` (from :func:`apply_decisions`) in format ``fmt``.

    Excluded rows are left out. ``system_prompt`` None uses :func:`default_system_prompt` over the
    exported label set; ``""`` omits the system message.

    Raises:
        ExportError: unknown format, or nothing left to export.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; available: {', '.join(sorted(FORMATS))}")
    kept = cleaned[cleaned["action"] != "exclude"].sort_values("row_id", kind="stable")
    if kept.empty:
        raise ExportError("no rows left to export: every row was excluded or quarantined")
    classes = sorted(set(kept["label"]))
    prompt = default_system_prompt(task_description, classes) if system_prompt is None else system_prompt
    is_val = stratified_split(kept["row_id"], kept["label"], val_fraction=val_fraction, seed=seed)
    make = FORMATS[fmt]
    files: dict[str, tuple[bytes, int]] = {}
    for split, mask in (("train", ~is_val), ("val", is_val)):
        part = kept[mask]
        files[f"{split}.jsonl"] = to_jsonl(
            make(t, lab, system_prompt=prompt) for t, lab in zip(part["text"], part["label"])
        )
    counts = {
        "exported": len(kept),
        "exported_train": int((~is_val).sum()),
        "exported_val": int(is_val.sum()),
        "excluded": int((cleaned["action"] == "exclude").sum()),
        "relabelled": int((cleaned["action"] == "relabel").sum()),
    }
    return ExportPlan(files=files, counts=counts, system_prompt=prompt or None)


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
