"""The quality gate's pure logic: rates, label shift (KL, chi-square), verdicts, the estimated noise matrix."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from labelgate.config import CurateParams
from labelgate.core.quality import (
    CHECKS,
    QualityLimits,
    estimated_noise_matrix,
    evaluate_quality,
    label_shift,
)
from labelgate.errors import SettingsError

pytestmark = pytest.mark.unit

BASE = {"account": 75, "billing": 121, "shipping": 100, "technical": 100}


def _verdict(**overrides):
    args = {
        "rows_in": 400,
        "rows_quarantined": 4,
        "rows_valid": 396,
        "label_issues": 36,
        "class_counts": BASE,
        "limits": QualityLimits(),
        "baseline_counts": BASE,
        "baseline_run_id": "R0",
        "baseline_version": "v0",
        "dataset": "tickets",
    }
    args.update(overrides)
    return evaluate_quality(**args)


def test_identical_distributions_have_no_shift() -> None:
    shift = label_shift(BASE, BASE)
    assert shift.kl == pytest.approx(0.0, abs=1e-12)
    assert shift.pvalue == pytest.approx(1.0)
    assert shift.dof == 3
    assert shift.new_classes == [] and shift.missing_classes == []


def test_kl_matches_the_formula_and_chi2_matches_scipy() -> None:
    current = {"a": 30, "b": 70}
    previous = {"a": 50, "b": 50}
    shift = label_shift(current, previous, smoothing=0.5)
    p = np.array([30.5, 70.5]) / 101
    q = np.array([50.5, 50.5]) / 101
    assert shift.kl == pytest.approx(float(np.sum(p * np.log(p / q))))
    expected = chi2_contingency(np.array([[30, 70], [50, 50]]), correction=False)
    assert shift.chi2 == pytest.approx(expected.statistic)
    assert shift.pvalue == pytest.approx(expected.pvalue)
    assert shift.current_share == {"a": 0.3, "b": 0.7}


def test_new_and_missing_classes_give_a_large_finite_shift() -> None:
    shift = label_shift({"a": 50, "c": 50}, {"a": 50, "b": 50})
    assert shift.new_classes == ["c"] and shift.missing_classes == ["b"]
    assert math.isfinite(shift.kl) and shift.kl > 1.0
    assert shift.pvalue < 1e-10


@pytest.mark.parametrize(
    ("current", "previous", "smoothing"),
    [({"a": 0}, {"a": 3}, 0.5), ({"a": 3}, {}, 0.5), ({"a": -1, "b": 4}, {"a": 1, "b": 1}, 0.5), (BASE, BASE, 0)],
)
def test_label_shift_rejects_empty_negative_or_unsmoothed_counts(current, previous, smoothing) -> None:
    with pytest.raises(ValueError):
        label_shift(current, previous, smoothing=smoothing)


def test_a_clean_batch_passes_every_check() -> None:
    verdict = _verdict()
    assert verdict.passed and verdict.reasons == []
    assert [c.name for c in verdict.checks] == list(CHECKS)
    assert [c.passed for c in verdict.checks] == [True, True, True, None]  # p-value check off by default
    assert verdict.message == "quality gate passed"
    assert verdict.baseline_run_id == "R0"


def test_quarantine_rate_above_the_limit_fails_with_the_numbers() -> None:
    verdict = _verdict(rows_quarantined=240, rows_valid=160, label_issues=10)
    assert not verdict.passed
    assert verdict.reasons == ["240 of 400 rows quarantined (60.0%) exceeds limit 20.0%"]
    assert verdict.message == "quality gate failed: 240 of 400 rows quarantined (60.0%) exceeds limit 20.0%"


def test_label_issue_rate_above_the_limit_fails() -> None:
    verdict = _verdict(label_issues=198, rows_valid=397, rows_quarantined=3)
    assert [c.name for c in verdict.checks if c.passed is False] == ["label_issue_rate"]
    assert "198 of 397 valid rows flagged as label issues (49.9%) exceeds limit 30.0%" in verdict.reasons


def test_a_value_equal_to_the_limit_passes() -> None:
    verdict = _verdict(rows_quarantined=80, rows_valid=320, label_issues=96)  # exactly 20% and 30%
    assert verdict.passed


def test_label_shift_fails_naming_the_previous_version_and_the_moved_classes() -> None:
    shifted = {**BASE, "billing": 10}
    verdict = _verdict(class_counts=shifted, rows_valid=285, label_issues=20)
    assert [c.name for c in verdict.checks if c.passed is False] == ["label_shift_kl"]
    (reason,) = verdict.reasons
    assert "previous version v0 (run R0)" in reason
    assert "billing 31% → 4%" in reason and "exceeds limit 0.100" in reason
    kl = verdict.checks[2].value
    assert kl == pytest.approx(label_shift(shifted, BASE).kl) and kl > 0.2


def test_the_chi_square_check_when_switched_on() -> None:
    slightly = {**BASE, "billing": 220}
    on = _verdict(class_counts=slightly, limits=QualityLimits(min_label_shift_pvalue=0.05))
    assert not on.passed and on.checks[3].passed is False and on.checks[3].value < 0.05
    assert on.checks[2].passed is True  # the KL of this small move is within 0.1
    assert _verdict(class_counts=slightly).passed


def test_first_version_skips_the_shift_checks() -> None:
    verdict = _verdict(baseline_counts=None, baseline_run_id=None, baseline_version=None)
    assert verdict.passed
    skipped = verdict.checks[2:]
    assert [c.passed for c in skipped] == [None, None]
    assert "no previous completed version of dataset 'tickets'" in skipped[0].detail
    assert verdict.baseline_run_id is None and verdict.shift is None


def test_limits_set_to_none_switch_checks_off() -> None:
    limits = QualityLimits(max_quarantine_rate=None, max_label_issue_rate=None, max_label_shift_kl=None)
    verdict = _verdict(rows_quarantined=390, rows_valid=10, label_issues=9, limits=limits)
    assert verdict.passed
    assert all(c.passed is None for c in verdict.checks)
    assert verdict.checks[0].detail.endswith("; check off")


def test_verdict_dict_is_json_ready() -> None:
    verdict = _verdict(label_issues=300)
    data = json.loads(json.dumps(verdict.as_dict()))
    assert data["passed"] is False and data["message"].startswith("quality gate failed: ")
    assert data["checks"][1]["name"] == "label_issue_rate" and data["checks"][1]["passed"] is False
    assert data["shift"]["kl"] == pytest.approx(0.0, abs=1e-12)


def test_limits_come_from_the_curate_params() -> None:
    params = CurateParams(quality_gate=True, max_label_issue_rate=0.5, min_label_shift_pvalue=0.01)
    limits = params.quality_limits()
    assert limits == QualityLimits(0.2, 0.5, 0.1, 0.01)
    assert CurateParams().quality_limits() == QualityLimits()
    with pytest.raises(ValueError):
        CurateParams(max_quarantine_rate=1.5)
    with pytest.raises(SettingsError, match=r"max_label_shift_kl must be >= 0 or None, got -0\.5"):
        QualityLimits(max_label_shift_kl=-0.5)


def test_noise_matrix_of_confident_correct_predictions_is_diagonal() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    probs = np.full((9, 3), 0.05)
    probs[np.arange(9), labels] = 0.9
    matrix = estimated_noise_matrix(labels, probs)
    assert matrix.shape == (3, 3)
    assert matrix.sum() == pytest.approx(9)
    assert np.allclose(matrix, np.diag([3, 2, 4]))


def test_noise_matrix_puts_flipped_rows_off_the_diagonal() -> None:
    rng = np.random.default_rng(0)
    true = np.repeat([0, 1, 2], 100)
    given = true.copy()
    flipped = rng.choice(np.where(true == 0)[0], 20, replace=False)
    given[flipped] = 1  # 20 rows of class 0 labelled 1
    probs = np.full((300, 3), 0.04)
    probs[np.arange(300), true] = 0.92
    matrix = estimated_noise_matrix(given, probs)
    assert matrix.sum() == pytest.approx(300)
    assert matrix[1, 0] == pytest.approx(20, abs=2)  # given 1, truly 0
    off = matrix.sum() - np.trace(matrix)
    assert off == pytest.approx(20, abs=3)
    with pytest.raises(ValueError):
        estimated_noise_matrix(given[:5], probs)
