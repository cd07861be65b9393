"""CurateParams: defaults, bounds, and messages that quote the bad value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from labelgate.config import FLOW_LEVEL_FIELDS, SETTINGS_MAP, CurateParams

pytestmark = pytest.mark.unit


def test_defaults_are_usable() -> None:
    p = CurateParams()
    assert (p.gate, p.n_folds, p.export_formats) == ("auto", None, ["openai-chat"])  # folds: automatic


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("relabel_threshold", 1.5, "less than or equal to 1"),
        ("n_folds", 1, "greater than or equal to 2"),
        ("gate", "maybe", "auto"),
        ("low_agreement", "drop", "'keep', 'review' or 'exclude'"),
        ("min_agreement", 1.2, "less than or equal to 1"),
        ("delimiter", ";;", "one character, got ';;'"),
        ("no_such_option", 1, "Extra inputs"),
        ("eval_trainers", ["proxy", "bert"], "unknown trainer 'bert'; choose from: proxy, proxy-c4, finetune"),
        ("eval_trainers", [], "at least 1 item"),
        ("finetune_epochs", 0, "greater than 0"),
        ("finetune_max_seconds", -5, "greater than 0"),
    ],
)
def test_bad_values_are_refused(field: str, value: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        CurateParams(**{field: value})


def test_min_above_max_text_chars_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"min_text_chars \(50\) is greater than max_text_chars \(10\)"):
        CurateParams(min_text_chars=50, max_text_chars=10)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"runner": "spark"}, "'default' or 'dask'"),
        ({"runner": "dask", "dask_workers": 0}, "greater than or equal to 1"),
        ({"runner": "dask", "dask_address": "scheduler"}, "tcp://HOST:PORT, got 'scheduler'"),
        ({"runner": "dask", "dask_address": "tcp://10.0.0.5"}, "tcp://HOST:PORT, got 'tcp://10.0.0.5'"),
        ({"runner": "dask", "dask_address": "http://10.0.0.5:8786"}, "tcp://HOST:PORT"),
        ({"dask_address": "tcp://10.0.0.5:8786"}, "dask_address is a setting of runner 'dask'"),
    ],
)
def test_bad_runner_settings_are_refused(fields: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        CurateParams(**fields)


@pytest.mark.parametrize(
    "address", ["tcp://10.0.0.5:8786", "10.0.0.5:8786", " tls://sched.example.org:8786 ", "tcp://[::1]:8786"]
)
def test_scheduler_addresses_are_accepted(address: str) -> None:
    p = CurateParams(runner="dask", dask_address=address)
    assert p.dask_address == address.strip() and p.runner == "dask"


def test_runner_settings_survive_a_dump_and_reload() -> None:
    """Prefect validates a dumped CurateParams again (every field set) when a run starts."""
    dask = [CurateParams(runner="dask", dask_workers=3), CurateParams(runner="dask", dask_address="h:1")]
    for p in (CurateParams(), *dask):
        assert CurateParams(**p.model_dump()) == p
        assert CurateParams.model_validate_json(p.model_dump_json()) == p


def test_gate_settings_are_the_policys_and_keep_its_defaults() -> None:
    import dataclasses

    from labelgate.core.policy import GateSettings
    from labelgate.core.probs import DEFAULT_MEMBERS

    params = CurateParams(
        relabel_threshold=0.6, relabel_model_threshold=None, exclude_below_chance=True, conflicts="keep"
    )
    assert params.gate_settings() == GateSettings(
        relabel_threshold=0.6, model_threshold=None, exclude_below_chance=True, conflicts="keep"
    )
    # keyword callers (services.review.fill_with_policy) get the same values
    assert params.policy_settings() == dataclasses.asdict(params.gate_settings())
    assert params.policy_settings()["model_threshold"] is None
    # the flow parameters' defaults are each layer's own defaults
    defaults = CurateParams()
    # (except the detector members: the flow names all four, the detectors' None means "those whose inputs exist")
    for method in SETTINGS_MAP:
        built = getattr(defaults, method)()
        expected = type(built)(members=DEFAULT_MEMBERS) if method == "detector_settings" else type(built)()
        assert built == expected, method


def _settings_classes() -> dict[str, type]:
    import importlib

    return {m: getattr(importlib.import_module(mod), name) for m, (mod, name, _) in SETTINGS_MAP.items()}


def test_every_setting_is_fed_from_a_flow_parameter_and_every_parameter_is_used() -> None:
    import dataclasses

    params = set(CurateParams.model_fields)
    fed: set[str] = set()
    for method, cls in _settings_classes().items():
        fields = SETTINGS_MAP[method][2]
        assert set(fields) == {f.name for f in dataclasses.fields(cls)}, f"{cls.__name__}: a field is not mapped"
        assert set(fields.values()) <= params, f"{cls.__name__} maps a field CurateParams lacks"
        fed |= set(fields.values())
    assert not fed & set(FLOW_LEVEL_FIELDS), "a flow-level field also feeds a settings object"
    assert fed | set(FLOW_LEVEL_FIELDS) == params, sorted(params - fed - set(FLOW_LEVEL_FIELDS))


def test_settings_objects_carry_every_mapped_value() -> None:
    """Change every mapped parameter from its default; each settings object must see the change."""
    changed = CurateParams(
        input_format="jsonl", text_col="t", label_col="a,b", id_col="key", encoding="latin-1", delimiter=";",
        label_case="lower", annotator_col="who", detector_members=["words"], n_folds=4, seed=7,
        near_duplicate_threshold=0.9, leakage_threshold=0.8, outlier_k=5, outlier_z=2.0, min_text_words=3,
        max_text_tokens=100, max_quarantine_rate=0.5, max_label_issue_rate=0.4, max_label_shift_kl=0.2,
        min_label_shift_pvalue=0.05, relabel_threshold=0.7, relabel_model_threshold=0.9, exclude_threshold=0.1,
        exclude_below_chance=True, exclude_doubtful=0.2, near_duplicates="exclude", conflicts="exclude",
        low_agreement="review", min_agreement=0.67,
        export_formats=["alpaca", "csv"], val_fraction=0.2, system_prompt="S", task_description="Sort",
        user_template="Q: {text}", label_map={"a": "A"}, completion_separator="\n--\n", completion_stop=" STOP",
        max_example_tokens=99, min_train_examples=3, price_per_mtok=2.5, token_counter="regex",
    )  # fmt: skip
    default = CurateParams()
    for method in SETTINGS_MAP:
        mine, theirs = CurateParams.as_params(method, getattr(changed, method)()), None
        theirs = CurateParams.as_params(method, getattr(default, method)())
        for param, value in mine.items():
            assert value == getattr(changed, param), (method, param)
            if param != "seed" or method == "detector_settings":
                assert value != theirs[param], f"{method}: {param} did not change"
    assert changed.ingest_settings().for_file().label_col == "a"
    assert changed.ingest_settings().for_file(label_col="b", annotator_col="who").annotator_col == "who"


@pytest.mark.parametrize(
    ("module", "name", "kwargs", "match"),
    [
        ("labelgate.core.policy", "GateSettings", {"relabel_threshold": 1.5}, "relabel_threshold must be in"),
        ("labelgate.core.policy", "GateSettings", {"conflicts": "drop"}, "conflicts must be one of"),
        (
            "labelgate.core.policy",
            "GateSettings",
            {"low_agreement": "drop"},
            "low_agreement must be one of keep, review, exclude, got 'drop'",
        ),
        (
            "labelgate.core.policy",
            "GateSettings",
            {"min_agreement": 1.5},
            r"min_agreement must be in \[0, 1\], got 1\.5",
        ),
        ("labelgate.core.policy", "GateSettings", {"min_agreement": None}, "min_agreement must be in .*got None"),
        ("labelgate.core.export", "ExportSettings", {"val_fraction": 1.0}, "val_fraction must be in"),
        ("labelgate.core.export", "ExportSettings", {"token_counter": "bpe"}, "token_counter must be one of"),
        ("labelgate.core.ingest", "IngestSettings", {"fmt": "xml"}, "unknown input format 'xml'"),
        ("labelgate.core.ingest", "IngestSettings", {"delimiter": ";;"}, "delimiter must be one character"),
        ("labelgate.core.detect", "DetectorSettings", {"outlier_k": 0}, "outlier_k must be at least 1"),
        ("labelgate.core.detect", "DetectorSettings", {"n_folds": 1}, "n_folds must be in 2..50"),
        ("labelgate.core.quality", "QualityLimits", {"max_quarantine_rate": 2.0}, "max_quarantine_rate must be"),
    ],
)
def test_settings_objects_refuse_values_they_cannot_use(module: str, name: str, kwargs: dict, match: str) -> None:
    import importlib

    from labelgate.errors import ConfigError, SettingsError

    cls = getattr(importlib.import_module(module), name)
    with pytest.raises(SettingsError, match=match) as err:
        cls(**kwargs)
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ValueError)


def test_evaluation_trainers_default_to_two_views_and_are_normalised() -> None:
    assert CurateParams().eval_trainers == ["proxy", "proxy-c4"]
    p = CurateParams(eval_trainers=[" finetune", "proxy", "finetune"], finetune_epochs=0.5)
    assert p.eval_trainers == ["finetune", "proxy"] and p.finetune_epochs == 0.5
    assert CurateParams.model_validate(p.model_dump()) == p  # Prefect re-validates a dumped model
