"""The before/after evaluation (trainer registry, proxies, comparisons) on synthetic data with known labels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from labelgate.core.evaluate import (
    DEFAULT_TRAINERS,
    PROXY_MODEL,
    PROXY_TRAINERS,
    Comparison,
    Fitted,
    compare,
    comparisons_from_summary,
    format_overview,
    format_table,
    parse_trainers,
    proxy_pipeline,
    proxy_score,
)
from labelgate.errors import ConfigError, ValidationError

pytestmark = pytest.mark.unit

WORDS = {
    "sport": ["goal", "match", "team", "coach", "score", "league"],
    "tech": ["laptop", "software", "chip", "server", "code", "cloud"],
    "food": ["pasta", "recipe", "bake", "spice", "dinner", "salad"],
}
FILLER = ["the", "a", "today", "really", "some", "new", "about", "my"]


def _data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.choice(sorted(WORDS), size=n)
    texts = [" ".join(rng.choice(WORDS[lab], size=2).tolist() + rng.choice(FILLER, size=4).tolist()) for lab in labels]
    return pd.DataFrame({"text": texts, "label": labels})


def test_cleaner_labels_score_better_on_the_test_set() -> None:
    train, test = _data(300, 1), _data(150, 2)
    rng = np.random.default_rng(3)
    noisy = train.copy()
    flip = rng.random(len(train)) < 0.45
    noisy.loc[flip, "label"] = rng.choice(sorted(WORDS), size=int(flip.sum()))
    result = compare(noisy, train, test)
    assert result.n_test == 150
    assert result.cleaned.accuracy > result.raw.accuracy
    assert result.cleaned.macro_f1 > result.raw.macro_f1
    assert result.cleaned.accuracy > 0.9
    assert set(result.cleaned.per_class_f1) == set(WORDS)
    frame = result.frame()
    assert frame["metric"].tolist() == ["train rows", "accuracy", "macro-F1", "F1 food", "F1 sport", "F1 tech"]
    assert frame.loc[1, "delta"] == pytest.approx(result.cleaned.accuracy - result.raw.accuracy)
    table = format_table(result).splitlines()
    assert table[0].split() == ["raw", "cleaned", "delta"]
    assert table[1].split() == ["train", "rows", "300", "300", "+0"]
    assert table[2].startswith("accuracy") and table[2].split()[-1].startswith("+")
    assert Comparison.from_dict(result.as_dict()) == result


def test_scores_are_deterministic() -> None:
    train, test = _data(120, 4), _data(60, 5)
    a = proxy_score("raw", train["text"], train["label"], test["text"], test["label"], seed=0)
    b = proxy_score("raw", train["text"], train["label"], test["text"], test["label"], seed=0)
    assert a == b


def test_a_single_class_or_an_empty_test_set_is_refused() -> None:
    train, test = _data(30, 6), _data(10, 7)
    with pytest.raises(ValidationError, match="cleaned training set has 1 class"):
        proxy_score("cleaned", train["text"], ["x"] * 30, test["text"], test["label"])
    with pytest.raises(ValidationError, match="test set has no rows"):
        proxy_score("raw", train["text"], train["label"], [], [])


def test_the_default_trainers_are_two_regularisation_strengths() -> None:
    assert DEFAULT_TRAINERS == ("proxy", "proxy-c4")
    assert [PROXY_TRAINERS[n].c for n in DEFAULT_TRAINERS] == [1.0, 4.0]
    assert PROXY_TRAINERS["proxy"].model == PROXY_MODEL
    assert PROXY_TRAINERS["proxy-c4"].model.endswith("(saga, C=4)")
    assert proxy_pipeline(3, c=4.0).get_params()["model__C"] == 4.0


def test_trainer_names_are_parsed_and_checked() -> None:
    assert parse_trainers("proxy-c4, proxy,proxy-c4,") == ["proxy-c4", "proxy"]
    assert parse_trainers(["finetune"]) == ["finetune"]
    with pytest.raises(
        ConfigError, match=r"^--trainer: unknown trainer 'bert'; choose from: proxy, proxy-c4, finetune"
    ):
        parse_trainers("proxy,bert")
    with pytest.raises(ConfigError, match=r"^--trainer: no trainer given"):
        parse_trainers(" , ")


def test_the_less_regularised_proxy_fits_noisy_labels_more() -> None:
    """C=4 absorbs more of the training labels' noise than C=1: it agrees more with the noisy training labels."""
    train = _data(300, 8)
    rng = np.random.default_rng(9)
    noisy = train.copy()
    flip = rng.random(len(train)) < 0.3
    noisy.loc[flip, "label"] = rng.choice(sorted(WORDS), size=int(flip.sum()))
    fitted = {
        name: PROXY_TRAINERS[name].fit_predict({"raw": (noisy["text"], noisy["label"])}, noisy["text"], seed=0)[0]
        for name in DEFAULT_TRAINERS
    }
    agree = {n: float(np.mean(np.array(f["raw"].predictions) == noisy["label"].to_numpy())) for n, f in fitted.items()}
    assert agree["proxy-c4"] > agree["proxy"]
    assert all(f["raw"].seconds > 0 for f in fitted.values())


class _Echo:
    """A fake trainer: predicts the label of the first training row for every test text; records its calls."""

    name = "echo"
    model = "first label"

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], int]] = []

    def fit_predict(self, train_sets, test_texts, *, seed):
        self.calls.append((list(train_sets), seed))
        fitted = {v: Fitted([str(labels[0])] * len(test_texts), 0.5) for v, (_, labels) in train_sets.items()}
        return fitted, {"steps": 7}


def test_compare_runs_any_trainer_on_both_sides_and_records_it() -> None:
    raw = pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "y"]})
    cleaned = pd.DataFrame({"text": ["a", "b"], "label": ["y", "x"]})
    test = pd.DataFrame({"text": ["p", "q", "r", "s"], "label": ["y", "y", "y", "x"]})
    echo = _Echo()
    result = compare(raw, cleaned, test, seed=5, trainer=echo)
    assert echo.calls == [(["raw", "cleaned"], 5)]
    assert (result.trainer, result.model, result.details) == ("echo", "first label", {"steps": 7})
    assert (result.raw.n_train, result.cleaned.n_train, result.n_test) == (3, 2, 4)
    assert result.raw.accuracy == 0.25 and result.cleaned.accuracy == 0.75
    assert result.raw.per_class_f1 == {"x": pytest.approx(0.4), "y": 0.0}
    assert result.seconds == 1.0
    assert Comparison.from_dict(result.as_dict()) == result


def test_comparisons_are_read_from_both_summary_shapes() -> None:
    train, test = _data(90, 10), _data(30, 11)
    a = compare(train, train, test)
    b = compare(train, train.head(60), test, trainer=PROXY_TRAINERS["proxy-c4"])
    summary = {"n_test": 30, "trainers": {"proxy": a.as_dict(), "proxy-c4": b.as_dict()}}
    assert comparisons_from_summary(summary) == [a, b]
    legacy = {"test_path": "t.csv", **{k: v for k, v in a.as_dict().items() if k not in ("trainer", "details")}}
    for side in ("raw", "cleaned"):
        legacy[side] = {k: v for k, v in legacy[side].items() if k != "seconds"}
    (old,) = comparisons_from_summary(legacy)
    assert (old.trainer, old.model, old.raw.seconds, old.seconds) == ("proxy", PROXY_MODEL, None, None)
    assert old == a  # seconds do not take part in equality
    assert comparisons_from_summary(None) == [] and comparisons_from_summary({"n_test": 3}) == []


def test_the_overview_shows_every_trainer_and_what_it_is() -> None:
    train, test = _data(90, 12), _data(30, 13)
    comps = [compare(train, train, test, trainer=PROXY_TRAINERS[n]) for n in DEFAULT_TRAINERS]
    finetuned = Comparison(
        replace(comps[0].raw, seconds=None),  # not measured: shown as a dash
        comps[0].cleaned,
        30,
        "fine-tuned",
        "finetune",
        {"steps": 12, "epochs": 0.5, "stopped_by": "time", "max_seconds": 60, "device": "cpu", "bf16": True},
    )
    lines = format_overview([*comps, finetuned]).splitlines()
    assert lines[0].split() == [
        "trainer",
        "accuracy",
        "raw",
        "cleaned",
        "delta",
        "macro-F1",
        "raw",
        "cleaned",
        "delta",
        "seconds",
    ]
    assert [line.split()[0] for line in lines[1:4]] == ["proxy", "proxy-c4", "finetune"]
    assert lines[1].split()[1] == f"{comps[0].raw.accuracy:.3f}" and lines[3].split()[-1] == "–"
    assert lines[4].startswith("  proxy: TF-IDF + logistic regression, C=1: strongly regularised")
    assert lines[6].endswith("(12 steps, 0.50 epochs, cpu bf16, stopped by the 60 s budget)")
