"""Issue 15, item 10: the number a label issue's decision rests on is the one the auto policy compares."""

from __future__ import annotations

import numpy as np
import pytest

from labelgate.core.explain import label_basis
from labelgate.core.issues import issue_rows
from labelgate.core.policy import auto_decisions

pytestmark = pytest.mark.unit


def test_the_basis_is_the_number_the_policy_compared_for_every_row() -> None:
    rng = np.random.default_rng(7)
    n = 400
    probs = rng.uniform(0, 1, n).round(3)
    models = rng.uniform(0, 1, n).round(3)
    records = [
        {
            "row_id": f"r{i}",
            "issue_type": "label",
            "score": 0.01,  # below chance never matters: exclude only where the policy does not relabel
            "is_issue": True,
            "given_label": "x",
            "suggested_label": "y",
            "suggested_prob": float(probs[i]),
            "model_prob": float(models[i]),
            "reason": "model disagrees",
        }
        for i in range(n)
    ]
    for relabel_at, model_at, doubtful in [(0.5, 0.6, 0.3), (0.7, 0.3, 0.3), (0.5, None, None), (0.5, 0.6, 0.2)]:
        decisions = auto_decisions(
            issue_rows(records),
            relabel_threshold=relabel_at,
            model_threshold=model_at,
            exclude_doubtful=doubtful,
            n_classes=2,
        ).set_index("row_id")
        kinds = {"true_label": 0, "model": 0}
        for i in range(n):
            basis = label_basis(
                given_label="x",
                suggested_label="y",
                suggested_prob=float(probs[i]),
                model_prob=float(models[i]),
                relabel_threshold=relabel_at,
                model_threshold=model_at,
                exclude_doubtful=doubtful,
            )
            relabelled = decisions.at[f"r{i}", "action"] == "relabel"
            assert basis["excludes"] == (decisions.at[f"r{i}", "action"] == "exclude"), (i, probs[i], doubtful)
            assert basis["relabels"] == relabelled, (i, probs[i], models[i], relabel_at, model_at)
            assert (basis["value"] >= basis["threshold"]) == relabelled
            expected = models[i] if basis["name"] == "model" else probs[i]
            assert basis["value"] == expected
            kinds[basis["name"]] += 1
        assert kinds["true_label"] > 0 and (kinds["model"] > 0) == (model_at is not None)


def test_no_suggestion_no_basis_and_an_agreeing_suggestion_never_relabels() -> None:
    assert label_basis(given_label="x", suggested_label=None, suggested_prob=0.9, model_prob=0.9) is None
    same = label_basis(given_label="x", suggested_label="x", suggested_prob=0.9, model_prob=float("nan"))
    assert same == {
        "name": "true_label",
        "value": 0.9,
        "threshold": 0.5,
        "relabels": False,
        "differs": False,
        "excludes": False,
        "doubtful": None,
    }
