"""CurateParams: defaults, bounds, and messages that quote the bad value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from labelgate.config import CurateParams

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


def test_policy_settings_are_the_auto_policys_keyword_arguments() -> None:
    import inspect

    from labelgate.core.policy import auto_decisions

    params = CurateParams(
        relabel_threshold=0.6, relabel_model_threshold=None, exclude_below_chance=True, conflicts="keep"
    )
    settings = params.policy_settings()
    assert settings == {
        "relabel_threshold": 0.6,
        "model_threshold": None,
        "exclude_threshold": None,
        "exclude_below_chance": True,
        "near_duplicates": "keep",
        "conflicts": "keep",
    }
    signature = inspect.signature(auto_decisions).parameters
    assert set(settings) <= set(signature)
    # the flow parameters' defaults are the policy's own
    defaults = CurateParams().policy_settings()
    assert {k: signature[k].default for k in defaults} == defaults


def test_evaluation_trainers_default_to_two_views_and_are_normalised() -> None:
    assert CurateParams().eval_trainers == ["proxy", "proxy-c4"]
    p = CurateParams(eval_trainers=[" finetune", "proxy", "finetune"], finetune_epochs=0.5)
    assert p.eval_trainers == ["finetune", "proxy"] and p.finetune_epochs == 0.5
    assert CurateParams.model_validate(p.model_dump()) == p  # Prefect re-validates a dumped model
