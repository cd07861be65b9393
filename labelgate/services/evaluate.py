"""Evaluate service: each trainer trained on a run's raw and cleaned rows, scored on a held-out test file.

Both training sets leave out the rows that leak the test set (detector-flagged or same text), so the
comparison measures the labels, not memorisation. ``raw`` is every other valid row with its given label;
``cleaned`` is what the export writes (train + validation) with the curated labels. The trainers are the run's
``eval_trainers`` (default ``proxy`` and ``proxy-c4``: two regularisation strengths, so the result shows how it
depends on them; ``finetune`` fine-tunes an encoder, see :mod:`labelgate.finetune`). Each trainer's scores are
stored in the ``evaluations`` table (one row per trainer and variant, keyed by run and test-file sha256, with
the seconds it took) and merged into the run's metrics under ``evaluation``::

    {"test_path", "test_sha256", "leakage_excluded", "n_test", "trainers": {name: Comparison.as_dict()}}

Evaluating again on the same test file replaces the trainers evaluated and keeps the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.evaluate import (
    PROXY_TRAINERS,
    Comparison,
    Trainer,
    compare,
    parse_trainers,
)
from labelgate.core.export import LEAKAGE_SOURCE
from labelgate.core.metrics import EvaluationMetrics, RunMetrics
from labelgate.errors import ConfigError
from labelgate.services.export import load_curated


@dataclass(frozen=True)
class EvaluationResult:
    """What :func:`evaluate_run` trained and stored.

    Attributes:
        comparisons: one per trainer evaluated by this call, in the order asked.
        test_path / test_sha256: the held-out test file (absolute path) and the sha256 of its bytes.
        leakage_excluded: training rows left out of both sides because they leak the test set.
        n_test: test rows scored.
        trainers: every trainer stored for this test file: this call's and those of earlier evaluations on the
            same file (trainer -> :meth:`labelgate.core.evaluate.Comparison.as_dict`).
    """

    comparisons: tuple[Comparison, ...]
    test_path: str
    test_sha256: str
    leakage_excluded: int
    n_test: int
    trainers: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """The run's ``evaluation`` metrics as stored (the module docstring's shape; no comparisons)."""
        return {
            "test_path": self.test_path,
            "test_sha256": self.test_sha256,
            "leakage_excluded": self.leakage_excluded,
            "n_test": self.n_test,
            "trainers": self.trainers,
        }

    def to_metrics(self) -> EvaluationMetrics:
        """The evaluate stage's figures for the run's metrics (:class:`labelgate.core.metrics.EvaluationMetrics`)."""
        return EvaluationMetrics.from_json(self.to_dict())


def make_trainers(
    params: CurateParams,
    names: Sequence[str] | None = None,
    *,
    progress: bool | None = None,
    on_step: Callable[[str, int, int], None] | None = None,
) -> list[Trainer]:
    """The trainers ``names`` (default ``params.eval_trainers``), ``finetune`` configured from ``params``.

    Args:
        progress: the fine-tuning progress bar on stderr (None: when stderr is a terminal).
        on_step: the fine-tuning step callback (see :class:`labelgate.finetune.FinetuneTrainer`).

    Raises:
        ConfigError: an unknown trainer name.
    """
    out: list[Trainer] = []
    for name in parse_trainers(list(names) if names is not None else params.eval_trainers):
        if name in PROXY_TRAINERS:
            out.append(PROXY_TRAINERS[name])
        else:  # finetune: torch is imported only when it is asked for
            from labelgate.finetune import FinetuneTrainer

            out.append(
                FinetuneTrainer(
                    model_name=params.finetune_model,
                    epochs=params.finetune_epochs,
                    max_seconds=params.finetune_max_seconds,
                    progress=progress,
                    on_step=on_step,
                )
            )
    return out


def evaluate_run(
    db_path: str,
    run_id: str,
    params: CurateParams,
    *,
    test_path: str | None = None,
    trainers: Sequence[str] | None = None,
    progress: bool | None = None,
    on_step: Callable[[str, int, int], None] | None = None,
) -> EvaluationResult:
    """Train each trainer on the run's raw and cleaned rows, score both on ``test_path``, store the results.

    Each trainer's result is stored as soon as it is done (the database is not held while training).

    Args:
        test_path: the held-out test file (default ``params.test_path``), read with the run's column settings.
        trainers: trainer names (default ``params.eval_trainers``).
        progress, on_step: see :func:`make_trainers`.

    Returns:
        One comparison per trainer, in order, and the run's ``evaluation`` metrics after the merge
        (:class:`EvaluationResult`; :meth:`EvaluationResult.to_dict` is what is stored).

    Raises:
        ConfigError: no test file given, or it does not exist; an unknown trainer.
        ValidationError: a training set has fewer than two classes, or the test set is empty.
        ModelLoadError: the fine-tuning model cannot be loaded.
    """
    test_path = test_path or params.test_path
    if not test_path:
        raise ConfigError("no test file: pass --test FILE (a held-out file with the same columns as the input)")
    chosen = make_trainers(params, trainers, progress=progress, on_step=on_step)
    curated = load_curated(db_path, run_id, params, apply=params.gate != "none", test_path=test_path)
    assert curated.test is not None
    c = curated.cleaned
    raw = c.loc[c["source"] != LEAKAGE_SOURCE, ["text", "original_label"]].rename(columns={"original_label": "label"})
    cleaned = c.loc[c["action"] != "exclude", ["text", "label"]]
    test = curated.test
    comparisons: list[Comparison] = []
    result: EvaluationResult | None = None
    for trainer in chosen:
        comparison = compare(raw, cleaned, test.rows, seed=params.seed, trainer=trainer)
        comparisons.append(comparison)
        with store.connect(db_path) as con, store.transaction(con):
            previous = RunMetrics.from_json(store.run_record(con, run_id)["metrics_json"]).evaluation
            kept = dict(previous.trainers or {}) if previous and previous.test_sha256 == test.sha256 else {}
            result = EvaluationResult(
                comparisons=tuple(comparisons),
                test_path=test.path,
                test_sha256=test.sha256,
                leakage_excluded=curated.leakage["leakage_excluded"],
                n_test=comparison.n_test,
                trainers={**kept, comparison.trainer: comparison.as_dict()},
            )
            store.save_evaluation(
                con,
                run_id=run_id,
                test_sha256=test.sha256,
                test_path=test.path,
                trainer=comparison.trainer,
                model=comparison.model,
                n_test=comparison.n_test,
                scores=[asdict(comparison.raw), asdict(comparison.cleaned)],
            )
            store.merge_metrics(con, run_id, {"evaluation": result.to_dict()})
    assert result is not None  # make_trainers returns at least one trainer
    return result


def evaluations_frame(db_path: str, run_id: str) -> Any:
    """The stored evaluations of ``run_id`` (newest first), as a DataFrame (see :func:`labelgate.store.evaluations`)."""
    with store.connect(db_path, read_only=True) as con:
        return store.evaluations(con, run_id)
