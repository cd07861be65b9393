"""The export manifest records the settings objects the layers ran with, whole (nothing can be dropped)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from labelgate.config import SETTINGS_MAP, CurateParams
from labelgate.core.export import apply_decisions, plan_export
from labelgate.services.export import Curated, build_manifest

pytestmark = pytest.mark.unit

#: the keys of ``thresholds`` documented in docs/export.md before the settings objects existed
DOCUMENTED_THRESHOLDS = [
    "relabel_threshold",
    "relabel_model_threshold",
    "exclude_threshold",
    "exclude_below_chance",
    "near_duplicates",
    "conflicts",
]


def _manifest(params: CurateParams, formats: list[str]) -> dict:
    rows = pd.DataFrame(
        {
            "row_id": [f"r{i:02d}" for i in range(20)],
            "text": [f"text number {i}" for i in range(20)],
            "label": ["a", "b"] * 10,
        }
    )
    cleaned = apply_decisions(rows, None)
    plan = plan_export(cleaned, settings=dataclasses.replace(params.export_settings(), formats=tuple(formats)))
    run = {
        "run_id": "r-1",
        "dataset": "d",
        "dataset_version": "v",
        "input_path": "in.csv",
        "input_sha256": "0" * 64,
        "metrics_json": {"rows_in": 20},
    }
    curated = Curated(run, plan.cleaned, {"leakage_excluded": 0}, None)
    return build_manifest(curated, plan, params, formats=formats, applied=True)


def test_manifest_records_every_settings_object_and_keeps_the_documented_threshold_keys() -> None:
    params = CurateParams(
        relabel_model_threshold=None,
        exclude_below_chance=True,
        conflicts="keep",
        outlier_z=2.5,
        max_label_shift_kl=None,
        label_case="lower",
        val_fraction=0.2,
        seed=5,
    )
    manifest = _manifest(params, ["alpaca"])
    thresholds = manifest["thresholds"]
    assert list(thresholds)[: len(DOCUMENTED_THRESHOLDS)] == DOCUMENTED_THRESHOLDS
    assert thresholds["relabel_model_threshold"] is None and thresholds["model_threshold"] is None
    assert thresholds["exclude_below_chance"] is True and thresholds["conflicts"] == "keep"
    layers = manifest["settings_by_layer"]
    assert set(layers) == {"ingest", "detect", "quality", "gate", "export"}
    methods = {
        "ingest": "ingest_settings",
        "detect": "detector_settings",
        "quality": "quality_limits",
        "gate": "gate_settings",
        "export": "export_settings",
    }
    for layer, method in methods.items():
        assert set(layers[layer]) == set(SETTINGS_MAP[method][2]), layer  # every field, none dropped
    assert layers["detect"]["outlier_z"] == 2.5 and layers["quality"]["max_label_shift_kl"] is None
    assert layers["ingest"]["label_case"] == "lower"
    assert layers["export"]["formats"] == ("alpaca",)  # the formats exported, not the parameter's default
    assert manifest["split"] == {"val_fraction": 0.2, "seed": 5, "stratified_by": "label"}
    assert manifest["settings"]["export_formats"] == ["openai-chat"]  # the flow parameters, unchanged
