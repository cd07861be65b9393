"""The proxy before/after evaluation on synthetic data whose true labels are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labelgate.core.evaluate import Comparison, compare, format_table, proxy_score
from labelgate.errors import ValidationError

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
