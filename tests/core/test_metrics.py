"""Typed run metrics (labelgate.core.metrics): the JSON round trip and runs stored by older versions."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.core import metrics as M
from labelgate.core.metrics import (
    AnnotatorMetrics,
    DetectMetrics,
    EvaluationMetrics,
    GateMetrics,
    IngestMetrics,
    MemoryMetrics,
    QualityMetrics,
    ReviewMetrics,
    RunMetrics,
    ValidateMetrics,
    stage_sum,
)

pytestmark = pytest.mark.unit

# --- strategies: every stage built field by field from its type hints ---------------------------------------------

_text = st.text(max_size=8)
_scalar = st.none() | st.booleans() | st.integers(-1000, 1000) | _text
_json = st.recursive(
    _scalar | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_floats = st.floats(allow_nan=False, allow_infinity=False, width=32)
_BY_TYPE: dict[Any, st.SearchStrategy] = {
    int: st.integers(0, 10**6),
    float: _floats,
    str: _text,
    bool: st.booleans(),
    list[str]: st.lists(_text, max_size=3),
    dict[str, int]: st.dictionaries(_text, st.integers(0, 1000), max_size=3),
    dict[str, float]: st.dictionaries(_text, _floats, max_size=3),
    dict[str, Any]: st.dictionaries(_text, _json, max_size=3),
    list[dict[str, Any]]: st.lists(st.dictionaries(_text, _json, max_size=3), max_size=2),
    dict[str, dict[str, Any]]: st.dictionaries(_text, st.dictionaries(_text, _json, max_size=2), max_size=2),
}


def _stage(kind: type[M.StageMetrics]) -> st.SearchStrategy:
    hints = typing.get_type_hints(kind, vars(M))
    values: dict[str, st.SearchStrategy] = {}
    for f in dataclasses.fields(kind):
        if f.name == "extra":  # unknown keys: never one a field owns
            values[f.name] = st.dictionaries(_text.map(lambda k: f"x_{k}"), _json, max_size=2)
            continue
        (inner,) = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        values[f.name] = st.none() | (_stage(inner) if inner is ReviewMetrics else _BY_TYPE[inner])
    return st.builds(kind, **values)


def _said_something(stage: M.StageMetrics | None) -> bool:
    """A flat stage whose every field is None writes no key: it reads back as 'did not run' (None)."""
    return stage is None or bool(stage.to_json())


def _optional_flat(kind: type[M.StageMetrics]) -> st.SearchStrategy:
    return st.none() | _stage(kind).filter(_said_something)


@st.composite
def run_metrics(draw: st.DrawFn) -> RunMetrics:
    detect = draw(st.none() | _stage(DetectMetrics))
    consensus = draw(_optional_flat(AnnotatorMetrics))
    if consensus is not None:  # the annotators stage's label issue counts are the run's (they replace detect's)
        consensus = consensus.replace(
            label_issues=detect.label_issues if detect else None,
            label_issue_rate=detect.label_issue_rate if detect else None,
        )
        # a consensus stage writes its own keys; the shared label issue counts alone read back as detect's
        own = consensus.replace(label_issues=None, label_issue_rate=None).to_json()
        consensus = consensus if own else None
    return RunMetrics(
        run_id=draw(st.none() | _text),
        gate=draw(st.none() | st.sampled_from(["auto", "human", "none"])),
        ingest=draw(_optional_flat(IngestMetrics)),
        validate=draw(_optional_flat(ValidateMetrics)),
        embed=draw(_optional_flat(M.EmbedMetrics)),
        detect=detect,
        consensus=consensus,
        quality=draw(st.none() | _stage(QualityMetrics)),
        memory=draw(st.none() | _stage(MemoryMetrics)),
        decisions=draw(_optional_flat(GateMetrics)),
        export=draw(_optional_flat(M.ExportMetrics)),
        evaluation=draw(st.none() | _stage(EvaluationMetrics)),
        seconds=draw(st.none() | _floats),
        seconds_by_stage=draw(st.none() | st.dictionaries(st.sampled_from(M.STAGES), _floats, max_size=4)),
        startup_seconds=draw(st.none() | _floats),
        dask=draw(st.none() | st.dictionaries(_text, _json, max_size=2)),
        extra=draw(st.dictionaries(_text.map(lambda k: f"x_{k}"), _json, max_size=2)),
    )


@settings(max_examples=30, deadline=None)
@given(run_metrics())
def test_json_round_trip_keeps_every_figure(m: RunMetrics) -> None:
    stored = json.dumps(m.to_json(), sort_keys=True)  # what runs.metrics_json holds
    back = RunMetrics.from_json(stored)
    assert back == m
    assert json.dumps(back.to_json(), sort_keys=True) == stored


def test_stage_keys_are_distinct_except_the_consensus_recount() -> None:
    flat = [kind for kind, nested in M._STAGE_FIELDS.values() if nested is None]
    seen: dict[str, type] = {}
    for kind in flat:
        for key in kind.json_keys():
            if key in seen:
                assert {key} <= {"label_issues", "label_issue_rate"}, (key, kind, seen[key])
                assert {kind, seen[key]} == {DetectMetrics, AnnotatorMetrics}
            seen[key] = kind


# --- runs stored by this and older versions -----------------------------------------------------------------------

#: the metrics of a demo run as stored by the version before typed metrics (no seconds_by_stage)
DEMO_RUN = {
    "baseline_run_id": None,
    "class_counts_in": {"account": 74, "billing": 122, "shipping": 101, "technical": 100},
    "classes": ["account", "billing", "shipping", "technical"],
    "dataset_version": "c69c216e222e990d",
    "decisions": {"exclude": 3, "keep": 9, "relabel": 33},
    "detect_seconds": {"label": 9.146, "neighbours": 0.126},
    "detection_key": "5c64a5e5d89926e5",
    "detection_reused_from": None,
    "detector": "ensemble(embedding+words+chars+layers)-20fold",
    "detector_fitted": {"layers_C": 0.005, "temperature": 0.5562},
    "dropped_classes": {},
    "embed_seconds": 16.995,
    "embedding_model": "sentence-transformers/all-MiniLM-L6-v2",
    "excluded": 3,
    "export_dir": "/x/export/20261201T184553-cf8558",
    "export_files": ["/x/export/20261201T184553-cf8558/train.openai-chat.jsonl"],
    "export_formats": ["openai-chat"],
    "export_version": 1,
    "export_warnings": [],
    "exported": 394,
    "exported_train": 355,
    "exported_val": 39,
    "gate": "auto",
    "id_source": "id",
    "input_format": "csv",
    "input_sha256": "d779a992",
    "issues_by_type": {"conflicting_label": 6, "exact_duplicate": 3, "label": 39, "near_duplicate": 3},
    "label_issue_rate": 0.0982,
    "label_issues": 39,
    "labels_normalised": 2,
    "leakage_excluded": 0,
    "leakage_flagged": 0,
    "leakage_text_match": 0,
    "manifest": "/x/export/20261201T184553-cf8558/manifest.json",
    "memory": {
        "by_action": {"exclude": 0, "keep": 0, "relabel": 0},
        "by_source": {},
        "carried": 0,
        "from_runs": {},
        "rows_new": 397,
        "rows_seen": 0,
    },
    "n_folds": 20,
    "notes": ["2 labels were trimmed of whitespace before comparison"],
    "oof_accuracy_by_member": {"chars": 0.8287, "embedding": 0.8539, "layers": 0.8489, "words": 0.806},
    "oof_accuracy_vs_given": 0.8715,
    "quality": {
        "baseline_run_id": None,
        "baseline_version": None,
        "checks": [
            {"detail": "3 of 400 rows", "limit": 0.2, "name": "quarantine_rate", "passed": True, "value": 0.0075}
        ],
        "enforced": False,
        "message": "quality gate passed",
        "passed": True,
        "reasons": [],
        "shift": None,
    },
    "quarantine_reasons": {"label is missing": 1, "text is blank": 2},
    "quarantine_reasons_ingest": {},
    "quarantined_ingest": 0,
    "relabelled": 33,
    "rows_flagged": 45,
    "rows_in": 400,
    "rows_quarantined": 3,
    "rows_valid": 397,
    "run_id": "20261201T184553-cf8558",
    "seconds": 46.506,
    "texts_cached": 0,
    "texts_embedded": 394,
    "texts_unique": 394,
    "tokenizer": "cl100k_base",
    "warnings": [],
}


def test_an_older_run_reads_into_typed_stages_and_writes_back_byte_for_byte() -> None:
    m = RunMetrics.from_json(json.dumps(DEMO_RUN))
    assert (m.rows_in, m.rows_valid, m.rows_quarantined, m.label_issues) == (400, 397, 3, 39)
    assert m.decisions is not None and m.decisions.count("relabel") == 33 and m.decisions.count("unknown") == 0
    assert m.memory is not None and m.memory.rows_new == 397
    assert m.quality is not None and m.quality.passed is True and m.quality.checks[0]["name"] == "quarantine_rate"
    assert m.export is not None and m.export.exported_train == 355 and m.export.tokenizer == "cl100k_base"
    assert m.detect is not None and m.detect.detection_reused_from is None and m.detect.n_folds == 20
    assert m.notes == ["2 labels were trimmed of whitespace before comparison"]
    assert m.seconds_by_stage is None and m.evaluation is None and m.consensus is None and m.extra == {}
    assert json.dumps(m.to_json(), sort_keys=True) == json.dumps(DEMO_RUN, sort_keys=True)


@pytest.mark.parametrize("stored", [None, "", "{}", {}, "null", [1, 2]])
def test_no_metrics_reads_as_a_run_where_nothing_ran(stored: Any) -> None:
    m = RunMetrics.from_json(stored)
    assert m == RunMetrics()
    assert (m.rows_in, m.label_issues, m.detected) == (None, None, False)
    assert (m.warnings, m.notes, m.quarantine_reasons, m.decision_counts, m.export_files) == ([], [], {}, {}, [])
    assert m.to_json() == {}


def test_a_run_that_failed_after_ingest_keeps_what_it_recorded() -> None:
    stored = {"rows_in": 20, "quarantined_ingest": 1, "quarantine_reasons": {"unparseable": 1}, "seconds": 0.4}
    m = RunMetrics.from_json(stored)
    assert m.rows_in == 20 and m.ingest is not None and m.ingest.quarantined_ingest == 1
    assert m.quarantine_reasons == {"unparseable": 1}
    assert m.detect is None and m.export is None and not m.detected
    assert m.to_json() == stored


def test_unknown_keys_survive_at_the_top_and_inside_nested_stages() -> None:
    stored = {
        "rows_in": 5,
        "a_future_figure": {"x": 1},
        "review_url": "http://h/review/r",
        "evaluation": {"test_path": "t.csv", "n_test": 4, "comparison": {"old": "shape"}},
        "memory": {"carried": 2, "by_action": {"keep": 2}, "new_key": True},
    }
    m = RunMetrics.from_json(stored)
    assert m.extra == {"a_future_figure": {"x": 1}}
    assert m.decisions is not None and m.decisions.review_url == "http://h/review/r"
    assert m.evaluation is not None and m.evaluation.extra == {"comparison": {"old": "shape"}}
    assert m.memory is not None and m.memory.extra == {"new_key": True} and m.memory.carried == 2
    back = m.to_json()
    assert back["a_future_figure"] == {"x": 1} and back["evaluation"]["comparison"] == {"old": "shape"}
    assert back["memory"]["new_key"] is True and back["review_url"] == "http://h/review/r"


def test_human_gate_review_reads_typed() -> None:
    stored = {
        "gate": "human",
        "decisions": {"keep": 1, "relabel": 2, "exclude": 0},
        "review": {
            "reviewer": None,
            "action": "done",
            "timed_out": False,
            "flagged": 4,
            "reviewed": 3,
            "carried": 0,
            "by_action": {"keep": 1},
            "policy_decided": 0,
        },
    }
    m = RunMetrics.from_json(stored)
    assert m.decisions is not None and isinstance(m.decisions.review, ReviewMetrics)
    assert m.decisions.review.reviewed == 3 and m.decisions.review.reviewer is None
    assert m.to_json() == stored  # a null reviewer stays written as null


def test_consensus_replaces_the_detect_stage_counts() -> None:
    m = RunMetrics(detect=DetectMetrics(label_issues=10, label_issue_rate=0.1, detector="d"))
    m = m.with_consensus(AnnotatorMetrics(consensus_items=50, label_issues=7, label_issue_rate=0.07))
    assert m.label_issues == 7 and m.detect is not None and m.detect.label_issue_rate == 0.07
    assert m.to_json()["label_issues"] == 7 and m.to_json()["consensus_items"] == 50
    assert RunMetrics.from_json(m.to_json()) == m
    none_flagged = RunMetrics(detect=DetectMetrics(label_issues=3)).with_consensus(AnnotatorMetrics(consensus_items=0))
    assert none_flagged.label_issues == 3


def test_stage_sum_counts_parts_once() -> None:
    assert stage_sum({"ingest": 1.0, "detect": 2.0, "detect.label": 1.5, "detect.fit.words": 0.5}) == 3.0
    assert stage_sum({}) == 0.0


def test_a_stage_with_all_fields_unset_writes_no_key_unless_it_always_writes_them() -> None:
    assert IngestMetrics().to_json() == {}
    assert set(DetectMetrics().to_json()) == DetectMetrics.json_keys() - {"approximations", "label_issues_by_kind"}
    assert DetectMetrics(approximations={"train_rows_per_fold": 20_000}).to_json()["approximations"] == {
        "train_rows_per_fold": 20_000
    }
    assert DetectMetrics().to_json()["detection_reused_from"] is None
