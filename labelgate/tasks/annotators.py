"""Annotators task: the consensus of several annotators per item, after detection (its out-of-fold model is the prior).

Runs only when the input is in the long format (``--annotator-col``). Ingest curated one row per item labelled
by the majority vote; detection's out-of-fold probabilities (models trained on those votes, never on the item
itself) are the prior of :func:`labelgate.core.annotators.consensus`. The task stores ``consensus`` and
``annotator_quality``, sets each item's ``rows.label`` to its consensus, which the export then uses, and
replaces the items' ``label`` issues (computed by detection against the majority vote) with those of the
consensus (:func:`labelgate.core.annotators.consensus_label_issues`: an unreliable consensus). With
``params.low_agreement`` ``review`` or ``exclude`` it also flags the items whose agreement is below
``params.min_agreement`` as ``low_agreement`` issues (:func:`labelgate.core.annotators.low_agreement_issues`), which
the gate then sees like any other issue: the human gate queues them, the policy keeps or excludes them
(:class:`labelgate.core.policy.GateSettings`). They are counted (``low_agreement_items``) whatever the setting.
"""

from __future__ import annotations

import json

import numpy as np
from prefect import task

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.annotators import (
    LOW_AGREEMENT,
    consensus,
    consensus_label_issues,
    low_agreement_issues,
)
from labelgate.core.issues import label_issue_rows
from labelgate.core.metrics import AnnotatorMetrics
from labelgate.tasks._common import TASK_OPTIONS


@task(name="annotators", **TASK_OPTIONS)
def annotators(db_path: str, run_id: str, params: CurateParams) -> AnnotatorMetrics:
    """Combine the run's annotations into consensus labels and annotator qualities; return counts."""
    with store.connect(db_path) as con:
        labels = store.usable_annotations(con, run_id)
        valid = store.valid_rows(con, run_id)
        predictions, classes = store.run_predictions(con, run_id)
    items = valid[valid["row_id"].isin(set(predictions["row_id"]))]["row_id"]
    labels = labels[labels["item_id"].isin(set(items)) & labels["label"].isin(set(classes))]
    if labels.empty:
        return AnnotatorMetrics(consensus_items=0)
    order = list(dict.fromkeys(labels["item_id"]))
    probs = predictions.set_index("row_id").loc[order, "probs"]
    model_probs = np.vstack([np.asarray(p, dtype=np.float64) for p in probs])
    result = consensus(labels, model_probs=model_probs, classes=classes)
    table = result.items.assign(
        run_id=run_id, labels_json=[json.dumps(x, ensure_ascii=False) for x in result.items["labels"]]
    ).drop(columns=["labels"])
    quality = result.annotators.assign(run_id=run_id, method=result.method)
    issues = label_issue_rows(consensus_label_issues(result, model_probs))
    changed = int((result.items["consensus_label"] != result.items["majority_label"]).sum())
    gate = params.gate_settings()
    low = low_agreement_issues(result.items, min_agreement=gate.min_agreement)
    n_low = len(low)
    if gate.low_agreement == "keep":  # counted, not flagged: the run is what it was before the rule
        low = low.iloc[:0]
    with store.connect(db_path) as con, store.transaction(con):
        store.replace_run_rows(con, "consensus", run_id, table)
        store.replace_run_rows(con, "annotator_quality", run_id, quality)
        store.set_item_labels(
            con, run_id, result.items.rename(columns={"item_id": "row_id", "consensus_label": "label"})
        )
        store.replace_label_issues(con, run_id, issues)
        store.replace_issues_of_type(con, run_id, LOW_AGREEMENT, low)
        n_issues = store.count_label_issues(con, run_id)
        figures = AnnotatorMetrics(
            label_issues=n_issues,
            label_issue_rate=round(n_issues / max(len(valid), 1), 4),
            label_issues_consensus=int(issues["is_issue"].sum()),
            consensus_items=len(result.items),
            consensus_differs_from_majority=changed,
            consensus_method=result.method,
            mean_agreement=round(float(result.items["agreement"].mean()), 4),
            low_agreement_items=n_low,
        )
        store.merge_metrics(con, run_id, figures.to_json())
    return figures
