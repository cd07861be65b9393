"""What a label issue's decision rests on, in the terms a reviewer reads (pure; no I/O).

The auto policy (:func:`labelgate.core.policy.auto_decisions`) relabels a label issue when the noise-corrected
probability that the suggestion is the true label (``suggested_prob``) reaches ``relabel_threshold``, or else
when the model's own probability of it (``model_prob``) reaches ``model_threshold``; a label issue it does not
relabel is excluded when ``suggested_prob`` still reaches ``exclude_doubtful`` (the given label is in doubt).
:func:`label_basis` names which of the numbers that rule compared, so a page can show the number the decision
used.
"""

from __future__ import annotations

import math
from typing import Any

#: allowed values of :func:`label_basis`'s ``name``
BASIS_NAMES = ("true_label", "model")


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def label_basis(
    *,
    given_label: str | None,
    suggested_label: str | None,
    suggested_prob: float | None,
    model_prob: float | None,
    relabel_threshold: float = 0.5,
    model_threshold: float | None = 0.6,
    exclude_doubtful: float | None = None,
) -> dict[str, Any] | None:
    """The number the auto policy's label decision compares, following its rule in order.

    Args:
        given_label, suggested_label: the row's labels (no basis when there is no suggestion).
        suggested_prob: P(true label = suggestion | text, given label) in [0, 1] (None/NaN: 0).
        model_prob: the model's plain probability of the suggestion in [0, 1] (None/NaN: unknown).
        relabel_threshold, model_threshold: the run's policy thresholds (``model_threshold`` None: off).
        exclude_doubtful: the run's ``exclude_doubtful`` (None: off, as in runs made before the rule existed).

    Returns:
        None without a suggestion, else ``name`` (``true_label`` or ``model``, :data:`BASIS_NAMES`),
        ``value`` (the number compared), ``threshold`` (what it was compared with), ``relabels``
        (True when the rule relabels the row to its suggestion), ``differs`` (the suggestion is not the
        given label; when it is, ``value`` is the probability that the given label is right), ``excludes`` (True
        when the row is not relabelled and ``value`` reaches ``doubtful``, the run's ``exclude_doubtful``: the
        policy excludes it, unless a rule of another issue decides first) and ``doubtful``.
    """
    if not suggested_label:
        return None
    differs = suggested_label != given_label
    prob = _num(suggested_prob) or 0.0
    model = _num(model_prob)
    relabelled = {"excludes": False, "doubtful": exclude_doubtful}
    if differs and prob >= relabel_threshold:
        return {
            "name": "true_label",
            "value": prob,
            "threshold": relabel_threshold,
            "relabels": True,
            "differs": True,
            **relabelled,
        }
    if differs and model_threshold is not None and model is not None and model >= model_threshold:
        return {
            "name": "model",
            "value": model,
            "threshold": model_threshold,
            "relabels": True,
            "differs": True,
            **relabelled,
        }
    return {
        "name": "true_label",
        "value": prob,
        "threshold": relabel_threshold,
        "relabels": False,
        "differs": differs,
        "excludes": differs and exclude_doubtful is not None and prob >= exclude_doubtful,
        "doubtful": exclude_doubtful,
    }
