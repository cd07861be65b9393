"""The commands' shared plumbing: thresholds a user can switch off; a stored run's settings read as they were."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from labelgate.cli import main
from labelgate.clikit import OFF, ThresholdOrOff, make_params, stored_params
from labelgate.config import CurateParams

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("typed", "expected"), [("0.25", 0.25), ("1", 1.0), (" 0 ", 0.0), (0.4, 0.4)])
def test_a_threshold_option_takes_numbers(typed: object, expected: float) -> None:
    assert ThresholdOrOff().convert(typed, None, None) == expected


@pytest.mark.parametrize("typed", ["off", "OFF", "never", "None", " off "])
def test_a_threshold_option_takes_off(typed: str) -> None:
    assert ThresholdOrOff().convert(typed, None, None) is OFF


def test_a_threshold_option_refuses_other_words_quoting_them() -> None:
    with pytest.raises(click.BadParameter, match=r"'maybe' is neither a number nor one of off, never, none"):
        ThresholdOrOff().convert("maybe", None, None)


def test_off_turns_the_setting_off_and_not_given_keeps_the_default() -> None:
    assert CurateParams().exclude_doubtful == 0.3
    assert make_params(exclude_doubtful=None).exclude_doubtful == 0.3
    assert make_params(exclude_doubtful=OFF).exclude_doubtful is None
    assert make_params(relabel_model_threshold=OFF).relabel_model_threshold is None
    assert make_params(exclude_doubtful=0.2).exclude_doubtful == 0.2


def test_the_text_off_in_another_option_is_only_text() -> None:
    assert make_params(system_prompt="off").system_prompt == "off"


def test_a_stored_run_keeps_the_settings_it_had_off() -> None:
    stored = CurateParams(exclude_doubtful=None, relabel_model_threshold=None).model_dump(mode="json")
    params = stored_params(stored)
    assert params.exclude_doubtful is None and params.relabel_model_threshold is None
    assert stored_params(stored, exclude_doubtful=None).exclude_doubtful is None  # None: the user did not set it
    assert stored_params(stored, exclude_doubtful=0.4).exclude_doubtful == 0.4  # what the user sets now wins


def test_a_run_stored_before_exclude_doubtful_existed_had_it_off() -> None:
    stored = CurateParams().model_dump(mode="json")
    del stored["exclude_doubtful"]
    assert stored_params(stored).exclude_doubtful is None
    assert stored_params(stored).relabel_threshold == 0.5  # the other settings as stored


def test_run_refuses_a_bad_threshold_word_in_one_line_naming_the_option(tmp_path) -> None:
    res = CliRunner().invoke(main, ["run", str(tmp_path / "x.csv"), "--exclude-doubtful", "maybe"])
    assert res.exit_code == 2
    assert "--exclude-doubtful" in res.output and "'maybe' is neither a number" in res.output
    assert "Traceback" not in res.output
