"""Before/after evaluation: a fast proxy classifier trained on the raw and on the cleaned training rows.

The proxy is TF-IDF features (word 1–2-grams + character 2–5-grams within word boundaries) and a
multinomial logistic regression (scikit-learn). It is not the model you will fine-tune: it is a cheap,
deterministic probe of whether the curated labels teach a held-out test set better than the raw ones.
Both sides are scored on the same test rows, with the same features and hyper-parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import FeatureUnion, Pipeline

from labelgate.errors import ValidationError

#: name of the proxy model, stored with every evaluation
PROXY_MODEL = "tfidf(word 1-2 + char_wb 2-5, sublinear) + logistic regression (saga, C=1)"


def proxy_pipeline(seed: int = 0) -> Pipeline:
    """The untrained proxy classifier."""
    features = FeatureUnion(
        [
            ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
        ]
    )
    model = LogisticRegression(C=1.0, solver="saga", tol=1e-3, max_iter=1000, random_state=seed)
    return Pipeline([("features", features), ("model", model)])


@dataclass(frozen=True)
class ProxyScore:
    """Test scores of the proxy trained on one training set.

    Attributes:
        variant: ``raw`` or ``cleaned``.
        n_train: training rows; accuracy and macro_f1 in [0, 1] over the test rows;
        per_class_f1: F1 of each test class.
    """

    variant: str
    n_train: int
    accuracy: float
    macro_f1: float
    per_class_f1: dict[str, float]


def proxy_score(
    variant: str,
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    test_texts: Sequence[str],
    test_labels: Sequence[str],
    *,
    seed: int = 0,
) -> ProxyScore:
    """Train the proxy on the training rows and score it on the test rows (classes: the test's labels).

    Raises:
        ValidationError: fewer than two classes to train on, or no test rows.
    """
    if len(set(train_labels)) < 2:
        raise ValidationError(
            f"the {variant} training set has {len(set(train_labels))} class(es); the evaluation needs two or more"
        )
    if not len(test_texts):
        raise ValidationError("the test set has no rows with text and label")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = proxy_pipeline(seed).fit(list(train_texts), list(train_labels))
    pred = pipe.predict(list(test_texts))
    classes = sorted(set(test_labels))
    f1 = f1_score(list(test_labels), pred, labels=classes, average=None, zero_division=0)
    return ProxyScore(
        variant=variant,
        n_train=len(train_texts),
        accuracy=float(accuracy_score(list(test_labels), pred)),
        macro_f1=float(np.mean(f1)),
        per_class_f1={c: float(v) for c, v in zip(classes, f1)},
    )


@dataclass(frozen=True)
class Comparison:
    """The raw and cleaned scores on one test set."""

    raw: ProxyScore
    cleaned: ProxyScore
    n_test: int
    model: str = PROXY_MODEL

    def as_dict(self) -> dict:
        return {"raw": asdict(self.raw), "cleaned": asdict(self.cleaned), "n_test": self.n_test, "model": self.model}

    @classmethod
    def from_dict(cls, d: dict) -> Comparison:
        """Rebuild from :meth:`as_dict` output (e.g. a run's ``evaluation`` metrics)."""
        return cls(ProxyScore(**d["raw"]), ProxyScore(**d["cleaned"]), int(d["n_test"]), d.get("model", PROXY_MODEL))

    def frame(self) -> pd.DataFrame:
        """One row per metric: ``metric, raw, cleaned, delta`` (per-class F1 as ``F1 <class>``)."""
        rows = [
            ("train rows", self.raw.n_train, self.cleaned.n_train),
            ("accuracy", self.raw.accuracy, self.cleaned.accuracy),
            ("macro-F1", self.raw.macro_f1, self.cleaned.macro_f1),
        ]
        rows += [(f"F1 {c}", self.raw.per_class_f1[c], self.cleaned.per_class_f1[c]) for c in self.raw.per_class_f1]
        df = pd.DataFrame(rows, columns=["metric", "raw", "cleaned"])
        df["delta"] = df["cleaned"] - df["raw"]
        return df


def compare(raw: pd.DataFrame, cleaned: pd.DataFrame, test: pd.DataFrame, *, seed: int = 0) -> Comparison:
    """Score the proxy trained on ``raw`` and on ``cleaned`` (each with columns text, label) on ``test``."""
    tt, tl = list(test["text"]), list(test["label"])
    return Comparison(
        raw=proxy_score("raw", list(raw["text"]), list(raw["label"]), tt, tl, seed=seed),
        cleaned=proxy_score("cleaned", list(cleaned["text"]), list(cleaned["label"]), tt, tl, seed=seed),
        n_test=len(test),
    )


def format_table(comparison: Comparison) -> str:
    """The side-by-side table as plain text (scores with 3 decimals, deltas signed)."""
    df = comparison.frame()
    lines = [f"{'':<24}{'raw':>10}{'cleaned':>10}{'delta':>10}"]
    for metric, raw, clean, delta in df.itertuples(index=False):
        if metric == "train rows":
            lines.append(f"{metric:<24}{int(raw):>10}{int(clean):>10}{int(delta):>+10}")
        else:
            lines.append(f"{metric[:24]:<24}{raw:>10.3f}{clean:>10.3f}{delta:>+10.3f}")
    return "\n".join(lines)
