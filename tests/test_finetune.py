"""labelgate.finetune with the real bundled MiniLM on tiny frames: budget, fairness between sides, errors."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pandas as pd
import pytest

from labelgate import embedding
from labelgate.core.evaluate import compare
from labelgate.errors import ConfigError, ModelLoadError
from labelgate.finetune import PROGRESS_ENV, FinetuneTrainer, default_threads, show_progress

#: tokens per text in these tests (the default is 128): the steps are what is tested, and short ones are cheap
SHORT = 24


@pytest.fixture(scope="module")
def frames(sample_csv: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """40 training and 12 test rows of the bundled support tickets (4 classes)."""
    sample = pd.read_csv(sample_csv, dtype=str, keep_default_na=False)
    return sample.iloc[:40][["text", "label"]], sample.iloc[40:52][["text", "label"]]


def test_one_epoch_on_both_sides_scores_the_test_rows(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = frames
    steps: list[tuple[str, int, int]] = []
    trainer = FinetuneTrainer(
        epochs=1, max_seq_length=SHORT, device="cpu", progress=False, on_step=lambda *a: steps.append(a)
    )
    import torch

    threads = torch.get_num_threads()
    result = compare(train, train.head(30), test, seed=3, trainer=trainer)
    assert torch.get_num_threads() == threads  # restored
    assert (result.trainer, result.n_test) == ("finetune", 12)
    assert result.model == (
        "fine-tuned sentence-transformers/all-MiniLM-L6-v2 + linear head on mean pooling "
        "(AdamW lr 0.0002/0.001, batch 32, 24 tokens, 1 epochs)"
    )
    d = result.details
    # ceil(40 / 32) = 2 steps per epoch of the larger set; the smaller set takes the same steps
    assert (d["steps"], d["planned_steps"], d["epochs"], d["stopped_by"]) == (2, 2, 1.0, "epochs")
    assert (
        d["device"] == "cpu"
        and d["bf16"] == embedding.bf16_supported()
        and set(d["train_seconds"])
        == {
            "raw",
            "cleaned",
        }
    )
    assert steps == [("raw", 1, 2), ("raw", 2, 2), ("cleaned", 1, 2), ("cleaned", 2, 2)]
    assert (result.raw.n_train, result.cleaned.n_train) == (40, 30)
    assert 0 <= result.raw.accuracy <= 1 and set(result.raw.per_class_f1) == set(test["label"])
    assert result.raw.seconds > 0 and result.cleaned.seconds > 0


def test_same_rows_same_seed_same_budget_give_the_same_model(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """The two sides differ only in their rows: trained on identical rows they predict identically, also when
    the time budget stops the first side early (the second then takes exactly as many steps)."""
    train, test = frames
    trainer = FinetuneTrainer(epochs=2, max_seconds=0.02, max_seq_length=SHORT, device="cpu", progress=False)
    rows = (list(train["text"]), list(train["label"]))
    fitted, details = trainer.fit_predict({"raw": rows, "cleaned": rows}, list(test["text"]), seed=0)
    assert details["stopped_by"] == "time" and details["steps"] == 1 and details["planned_steps"] == 4
    assert details["epochs"] == 0.5 and details["max_seconds"] == 0.02
    assert fitted["raw"].predictions == fitted["cleaned"].predictions
    assert set(fitted["raw"].predictions) <= set(train["label"])


def test_training_leaves_the_cached_embedding_model_alone() -> None:
    cached = embedding.load_model(embedding.DEFAULT_MODEL_KEY)
    fresh = embedding.load_model_copy(embedding.DEFAULT_MODEL_KEY)
    assert fresh is not cached and fresh[0].auto_model is not cached[0].auto_model


def test_bad_settings_and_models_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--finetune-epochs must be > 0, got 0"):
        FinetuneTrainer(epochs=0)
    with pytest.raises(ConfigError, match=r"--finetune-max-seconds must be > 0, got -1"):
        FinetuneTrainer(max_seconds=-1)
    trainer = FinetuneTrainer(model_name=str(tmp_path / "no-such-model"), epochs=1, progress=False)
    with pytest.raises(ModelLoadError, match="cannot load embedding model"):
        trainer.fit_predict({"raw": (["a b", "c d"], ["x", "y"])}, ["e"], seed=0)


def test_threads_default_to_two_at_most_and_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(embedding.THREADS_ENV, raising=False)
    assert 1 <= default_threads() <= 2
    monkeypatch.setenv(embedding.THREADS_ENV, "1")
    assert default_threads() == 1


def test_the_progress_bar_shows_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert not show_progress()  # not a terminal
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert show_progress()
    monkeypatch.setenv(PROGRESS_ENV, "0")  # set by `run --json` (and the tests)
    assert not show_progress()
