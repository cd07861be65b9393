"""The automatic review gate: a policy turns detected issues into decisions.

Decisions have one shape whoever makes them (this policy or a person):
``row_id, action (keep|relabel|exclude), label (the label to export; None for exclude), reason``.

The policy was chosen by measuring exports, not detections (``benchmarks/gate.py``: a classifier trained on
each gate's export, scored on clean test data, on several kinds of data): relabelling what the evidence
supports pays, dropping rows costs, and near-duplicates in intent and support data are paraphrases worth
keeping. Per row, first matching rule wins (every decision quotes the detector's reason):

1. ``leakage`` -> exclude (a twin of a test row must not be trained on).
2. ``exact_duplicate`` (later copies; the first occurrence stays) -> exclude: the copies collapse to one row.
3. ``empty`` with no word at all (score 0) -> exclude.
4. ``outlier`` -> exclude (out of scope: no class fits it, so relabelling would guess), unless it is also a
   label issue the evidence relabels (then it is a mislabelled row, not an out-of-scope one).
5. ``label`` issue whose suggestion the evidence supports -> relabel (:func:`relabel_evidence`): the
   noise-corrected probability that the suggestion is the true label (``suggested_prob``,
   :func:`labelgate.core.detect.true_label_posterior`) is at least ``relabel_threshold``, or the model's own
   probability of it (``model_prob``) is at least ``model_threshold``.
6. ``label`` issue otherwise -> exclude when ``suggested_prob`` is at least ``exclude_doubtful`` (0.3 by default:
   the suggestion is a real contender for the true label, but not more likely than not: the given label is in
   doubt and the fix is not sure, so the row would teach either a doubtful label or a guess), or when its label
   score is below ``exclude_threshold`` (or, when that is None and ``exclude_below_chance``, below chance
   ``1 / n_classes``: the model finds the given label less likely than a guess, and there is no confident
   replacement), else keep.
7. ``near_duplicate`` -> keep (a paraphrase; ``near_duplicates="exclude"`` drops later copies instead).
8. any other flagged issue (conflicting label, too short, too long) -> keep, with the reasons.

Several annotators per item: ``low_agreement`` (an item whose consensus too few of its labels agree with;
:func:`labelgate.core.annotators.low_agreement_issues`, written by the annotators stage only with
``low_agreement`` ``review`` or ``exclude``, see :class:`GateSettings`) -> exclude with ``low_agreement="exclude"``,
checked after rule 4 and before rule 5: it wins over a relabel (the annotators could not agree; the user asked to
drop such items); with ``"review"`` it is kept by rule 8 (a person reviews it in the human gate).

Then conflicts are resolved on the *final* labels (``conflicts="resolve"``, the default): a pair of
duplicates whose labels still differ after rules 1-8 (neither copy excluded) keeps the copy whose label the
model supports more; the other copy is relabelled to that label when the detector suggests it, else excluded
(two near-identical texts with different labels teach the model nothing it can trust). ``conflicts="keep"``
leaves both; ``"exclude"`` excludes both.

Rows no detector flagged get no decision: they are kept as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import pandas as pd

from labelgate.core.settings import settings_or_options
from labelgate.errors import SettingsError

DECISION_COLUMNS = ["row_id", "action", "label", "reason"]
ACTIONS = ("keep", "relabel", "exclude")

#: issue types whose flagged rows the policy excludes, in order of precedence (``near_duplicate`` only with
#: ``near_duplicates="exclude"``; ``outlier`` unless the row is relabelled; ``low_agreement`` only with
#: ``low_agreement="exclude"``)
EXCLUDED_TYPES = ("leakage", "exact_duplicate", "near_duplicate", "empty", "outlier", "low_agreement")
#: issue types for which accepting (the review's W key) records the policy's exclusion (not the two whose
#: exclusion is a setting that is off by default)
ACCEPT_EXCLUDES = tuple(t for t in EXCLUDED_TYPES if t not in ("near_duplicate", "low_agreement"))
#: allowed values of ``near_duplicates``
NEAR_DUPLICATE_ACTIONS = ("keep", "exclude")
#: allowed values of ``conflicts``
CONFLICT_ACTIONS = ("resolve", "keep", "exclude")
#: allowed values of ``low_agreement``
LOW_AGREEMENT_ACTIONS = ("keep", "review", "exclude")


def _long(issues: pd.DataFrame) -> pd.DataFrame:
    """Accept the long issues table or a wide label-issue frame (``is_label_issue``, ``label_score``)."""
    if "issue_type" in issues.columns:
        out = issues.copy()
        if "score" not in out.columns and "label_score" in out.columns:
            out["score"] = out["label_score"]
        if "is_issue" not in out.columns and "is_label_issue" in out.columns:
            out["is_issue"] = out["is_label_issue"]
        return out
    out = issues.rename(columns={"label_score": "score", "is_label_issue": "is_issue"}).copy()
    out["issue_type"] = "label"
    for col in ("reason", "related_row_id", "given_label", "suggested_label", "suggested_prob"):
        if col not in out.columns:
            out[col] = None
    return out


def _check(name: str, value: float | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise SettingsError(f"{name} must be in [0, 1]{' or None' if optional else ''}, got {value!r}")


@dataclass(frozen=True)
class GateSettings:
    """Settings of the auto policy (:func:`auto_decisions`); the module docstring gives the rules they steer.

    :meth:`labelgate.config.CurateParams.gate_settings` builds them from the flow parameters
    (``model_threshold`` is the parameter ``relabel_model_threshold``).

    Attributes:
        relabel_threshold: a label issue is relabelled to its suggestion when ``suggested_prob`` (the
            noise-corrected probability that the suggestion is the true label) is at least this (0..1; 0.5 = more
            likely than not).
        model_threshold: a label issue is also relabelled when ``model_prob`` (the model's plain probability of
            the suggestion) is at least this (0..1); ``None`` turns this rule off.
        exclude_threshold: a label issue that is not relabelled is excluded when its label score is below this
            (0..1); ``None`` defers to ``exclude_below_chance``.
        exclude_below_chance: with ``exclude_threshold`` None, exclude a label issue that is not relabelled when
            its label score is below ``1 / n_classes``.
        exclude_doubtful: exclude a label issue that is not relabelled when ``suggested_prob`` (the
            noise-corrected probability that its suggestion is the true label) is at least this (0..1, below
            ``relabel_threshold`` to have an effect; default 0.3; ``None`` turns the rule off and keeps those rows as
            given, as the gate did before the rule was made the default).
        near_duplicates: one of :data:`NEAR_DUPLICATE_ACTIONS`: ``keep`` (paraphrases stay) or ``exclude`` (later
            copies are dropped).
        conflicts: one of :data:`CONFLICT_ACTIONS`: ``resolve``, ``keep`` or ``exclude`` duplicates whose final
            labels differ.
        low_agreement: one of :data:`LOW_AGREEMENT_ACTIONS`, for items with several annotators whose agreement is
            low (``min_agreement``): ``keep`` (the default: kept, labelled by the consensus; no issue is written,
            so a run is exactly what it was before this rule), ``review`` (flagged ``low_agreement``, so the human
            gate queues them for a person; the policy keeps them) or ``exclude`` (flagged, and the policy excludes
            them: in the auto gate, and in a human review finished with ``auto`` for the items nobody decided).
            A person's decision and a remembered one (curation memory) win, as over every rule.
        min_agreement: in [0, 1]. An item is *low agreement* when it has at least 2 usable labels and its
            agreement (the share of its labels equal to the consensus) is strictly below this:
            ``agreement < min_agreement`` (:func:`labelgate.core.annotators.low_agreement_issues`). Strict, so the
            value reads as "the least share of agreeing labels an item may have": the default 0.5 catches items
            whose consensus is backed by fewer than half of their labels (1 of 3, 2 of 5: the consensus model
            overruled the vote, or three or more classes split it) but passes a 1-of-2 split (agreement 0.5);
            ``0.51`` asks for a strict majority and also catches 1-of-2 and 2-of-4 splits; ``0.66`` catches 1 of 2
            and 1 of 3 but passes 2 of 3; ``0.67`` also catches 2 of 3. Items with one label carry no agreement
            information and never are low agreement (nor is any item of a single-annotator run).

    Raises:
        SettingsError: (also a ValueError) a threshold outside [0, 1], or ``near_duplicates`` / ``conflicts`` /
            ``low_agreement`` not an allowed value; the message names the field and quotes the value.
    """

    relabel_threshold: float = 0.5
    model_threshold: float | None = 0.6
    exclude_threshold: float | None = None
    exclude_below_chance: bool = False
    exclude_doubtful: float | None = 0.3
    near_duplicates: str = "keep"
    conflicts: str = "resolve"
    low_agreement: str = "keep"
    min_agreement: float = 0.5

    def __post_init__(self) -> None:
        _check("relabel_threshold", self.relabel_threshold)
        _check("model_threshold", self.model_threshold, optional=True)
        _check("exclude_threshold", self.exclude_threshold, optional=True)
        _check("exclude_doubtful", self.exclude_doubtful, optional=True)
        if not isinstance(self.exclude_below_chance, bool):
            raise SettingsError(f"exclude_below_chance must be true or false, got {self.exclude_below_chance!r}")
        if self.near_duplicates not in NEAR_DUPLICATE_ACTIONS:
            raise SettingsError(
                f"near_duplicates must be one of {', '.join(NEAR_DUPLICATE_ACTIONS)}, got {self.near_duplicates!r}"
            )
        if self.conflicts not in CONFLICT_ACTIONS:
            raise SettingsError(f"conflicts must be one of {', '.join(CONFLICT_ACTIONS)}, got {self.conflicts!r}")
        if self.low_agreement not in LOW_AGREEMENT_ACTIONS:
            raise SettingsError(
                f"low_agreement must be one of {', '.join(LOW_AGREEMENT_ACTIONS)}, got {self.low_agreement!r}"
            )
        _check("min_agreement", self.min_agreement)


#: the keyword arguments :func:`auto_decisions` still accepts instead of ``settings`` (the fields of GateSettings)
GATE_FIELDS = tuple(f.name for f in fields(GateSettings))


def auto_decisions(
    issues: pd.DataFrame,
    *,
    settings: GateSettings | None = None,
    n_classes: int | None = None,
    **thresholds: Any,
) -> pd.DataFrame:
    """Decide every flagged row of ``issues`` (see the module docstring for the rules).

    Args:
        issues: the long issues table (columns ``row_id, issue_type, score, is_issue, given_label,
            suggested_label, suggested_prob, reason`` and optionally ``model_prob, related_row_id``; see
            :mod:`labelgate.core.issues`), or a wide label-issue frame (``row_id, given_label, suggested_label,
            suggested_prob, label_score, is_label_issue``) as :func:`labelgate.core.detect.find_label_issues`
            returns. Unflagged ``label`` rows of conflicting rows, when present, tell conflict resolution how
            strongly the model supports each copy's label.
        settings: the policy's thresholds and choices (:class:`GateSettings`; default ``GateSettings()``).
        n_classes: the number of classes (needed by ``exclude_below_chance``).
        **thresholds: instead of ``settings``, the fields of :class:`GateSettings` as keyword arguments
            (``relabel_threshold=0.8``; the rest keep their defaults). Kept because many tests and benchmarks
            call the policy that way; the flow passes ``settings``.

    Returns:
        One decision per flagged row (columns :data:`DECISION_COLUMNS`), ordered by row id.

    Raises:
        SettingsError: (a ValueError) a threshold outside [0, 1], or ``near_duplicates`` / ``conflicts`` /
            ``low_agreement`` not an allowed value (the message quotes the value).
        TypeError: both ``settings`` and keyword thresholds, or a keyword that is no field of GateSettings.
    """
    s = settings_or_options(
        GateSettings, settings, thresholds, caller="auto_decisions", fields=GATE_FIELDS, noun="thresholds"
    )
    relabel_threshold, model_threshold = s.relabel_threshold, s.model_threshold
    exclude_threshold, exclude_below_chance = s.exclude_threshold, s.exclude_below_chance
    near_duplicates, conflicts, low_agreement = s.near_duplicates, s.conflicts, s.low_agreement
    chance = False
    if exclude_threshold is None and exclude_below_chance and n_classes and n_classes >= 2:
        exclude_threshold, chance = 1.0 / n_classes, True
    long = _long(issues)
    is_issue = long["is_issue"].fillna(False).astype(bool)
    flagged = long[is_issue]
    if flagged.empty:
        return pd.DataFrame(columns=DECISION_COLUMNS)
    switched_off = {"near_duplicate": near_duplicates != "exclude", "low_agreement": low_agreement != "exclude"}
    excluded_types = [t for t in EXCLUDED_TYPES if not switched_off.get(t, False)]
    decided: dict[str, tuple] = {}
    for row_id, records in _by_row(flagged):
        by_type = {rec.issue_type: rec for rec in records}
        others = [str(by_type[t].reason) for t in by_type if t != "label" and by_type[t].reason]
        label = None
        if "label" in by_type:
            label = _label_decision(
                by_type["label"], relabel_threshold, exclude_threshold, chance, model_threshold, s.exclude_doubtful
            )
        decision = None
        for t in excluded_types:
            rec = by_type.get(t)
            if rec is None or (t == "empty" and float(rec.score or 0.0) > 0.0):
                continue
            if t == "outlier" and label is not None and label[1] == "relabel":
                continue  # a mislabelled row, not an out-of-scope one
            why = f"{t}: {rec.reason}" if rec.reason else t
            if t == "low_agreement" and rec.reason:
                why = str(rec.reason)  # it reads "low annotator agreement: ..." already
            decision = (row_id, "exclude", None, why)
            break
        if decision is None and label is not None:
            decision = label
        if decision is None:
            given = next((r.given_label for r in by_type.values() if r.given_label is not None), None)
            kept = [o for o in others if not o.startswith("near-duplicate")]
            why = "kept for review: " + "; ".join(kept) if kept else "kept: " + "; ".join(others)
            if "near_duplicate" in by_type and not kept:
                why = f"kept: a paraphrase ({by_type['near_duplicate'].reason})"
            decision = (row_id, "keep", given, why)
        elif others and decision[1] != "exclude":
            decision = (*decision[:3], decision[3] + "; also " + "; ".join(others))
        decided[row_id] = decision
    if conflicts != "keep":
        _resolve_conflicts(long, flagged, decided, conflicts)
    return pd.DataFrame([decided[r] for r in sorted(decided)], columns=DECISION_COLUMNS)


def _by_row(flagged: pd.DataFrame) -> list[tuple[Any, list]]:
    """``(row_id, its records in input order)`` per row id, in sorted row-id order: what
    ``flagged.groupby("row_id", sort=True)`` gives, in one pass over the rows (a group per row cost ~3 ms)."""
    groups: dict[Any, list] = {}
    for rec in flagged.itertuples(index=False):
        if not pd.isna(rec.row_id):
            groups.setdefault(rec.row_id, []).append(rec)
    return sorted(groups.items(), key=lambda item: item[0])


def _support(row_id: str, label_rows: pd.DataFrame, decided: dict[str, tuple]) -> float:
    """How strongly the model supports a row's final label: the posterior of a relabel, else the label score."""
    decision = decided.get(row_id)
    if row_id not in label_rows.index:
        return 0.5
    rec = label_rows.loc[row_id]
    if decision is not None and decision[1] == "relabel":
        return _prob(rec["suggested_prob"]) or 0.0
    score = _prob(rec["score"])
    return 0.5 if score is None else score


def _resolve_conflicts(long: pd.DataFrame, flagged: pd.DataFrame, decided: dict[str, tuple], conflicts: str) -> None:
    """Second pass: duplicates whose final labels still differ (see the module docstring); edits ``decided``."""
    pairs = flagged[(flagged["issue_type"] == "conflicting_label") & flagged["related_row_id"].notna()]
    if pairs.empty:
        return
    label_rows = long[long["issue_type"] == "label"].drop_duplicates("row_id").set_index("row_id")
    given = dict(zip(long["row_id"], long["given_label"]))
    given.update(zip(label_rows.index, label_rows["given_label"]))

    def final(row_id: str) -> object:
        d = decided.get(row_id)
        if d is None:
            return given.get(row_id)
        return None if d[1] == "exclude" else d[2]

    unresolved = []  # judged on the labels of rules 1-8, before any change made here
    for rec in pairs.itertuples(index=False):
        a, b = str(rec.row_id), str(rec.related_row_id)
        la, lb = final(a), final(b)
        if la is not None and lb is not None and la != lb:
            unresolved.append((a, b, la, lb, str(rec.reason)))
    before = dict(decided)
    for a, b, la, lb, reason in unresolved:
        if conflicts == "exclude":
            decided[a] = (a, "exclude", None, f"conflicting label, not resolved: {reason}")
            continue
        sa, sb = _support(a, label_rows, before), _support(b, label_rows, before)
        if sa > sb or (sa == sb and a < b):
            continue  # a is the stronger copy: b is resolved when its own conflict row comes
        suggestion = label_rows["suggested_label"].get(a) if a in label_rows.index else None
        if suggestion is not None and suggestion == lb:
            decided[a] = (
                a,
                "relabel",
                lb,
                f"conflict resolved: relabel {la} -> {lb}, the label of its duplicate {b} (model support "
                f"{sb:.2f} vs {sa:.2f}) and the model's suggestion ({reason})",
            )
        else:
            decided[a] = (
                a,
                "exclude",
                None,
                f"conflict resolved: exclude; its duplicate {b} keeps {lb} (model support {sb:.2f} vs {sa:.2f}) "
                f"and the model suggests neither ({reason})",
            )


def accept_action(
    flagged: Mapping[str, float | None], *, given: str | None, suggested: str | None
) -> tuple[str, str | None, str] | None:
    """What accepting the suggestion (the review's W key) does to a row: the policy's own proposal for it.

    Args:
        flagged: issue type -> score of every issue a detector flagged on the row.
        given: the row's given label.
        suggested: the label detector's suggestion (None: none).

    Returns:
        ``(action, label, why)``: ``exclude`` when a rule of :data:`ACCEPT_EXCLUDES` applies (an excluded duplicate
        stays excluded; a near duplicate is a paraphrase the default policy keeps, so it is not excluded), else
        ``relabel`` to a suggestion that differs from the given label, else ``keep`` of the
        given label; None when there is nothing to accept (no exclusion rule and no suggestion).
    """
    for t in ACCEPT_EXCLUDES:
        if t not in flagged:
            continue
        score = flagged[t]
        if t == "empty" and score is not None and not pd.isna(score) and float(score) > 0.0:
            continue
        return "exclude", None, t.replace("_", " ")
    if suggested is None or (isinstance(suggested, float) and pd.isna(suggested)):
        return None
    if suggested != given:
        return "relabel", suggested, "label"
    return "keep", given, "label"


def _prob(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _label_decision(
    rec,
    relabel_threshold: float,
    exclude_threshold: float | None,
    chance: bool = False,
    model_threshold: float | None = None,
    doubtful: float | None = None,
) -> tuple:
    prob = _prob(rec.suggested_prob) or 0.0
    model = _prob(getattr(rec, "model_prob", None))
    score = float(rec.score) if rec.score is not None else 1.0
    differs = rec.suggested_label is not None and rec.suggested_label != rec.given_label
    why = f" ({rec.reason})" if getattr(rec, "reason", None) else ""
    if differs and prob >= relabel_threshold:
        return (
            rec.row_id,
            "relabel",
            rec.suggested_label,
            f"P({rec.suggested_label})={prob:.2f} >= {relabel_threshold:.2f}: relabel {rec.given_label} "
            f"-> {rec.suggested_label}{why}",
        )
    if differs and model_threshold is not None and model is not None and model >= model_threshold:
        return (
            rec.row_id,
            "relabel",
            rec.suggested_label,
            f"model P({rec.suggested_label})={model:.2f} >= {model_threshold:.2f}: relabel {rec.given_label} "
            f"-> {rec.suggested_label}{why}",
        )
    if differs and doubtful is not None and prob >= doubtful:
        return (
            rec.row_id,
            "exclude",
            None,
            f"P({rec.suggested_label})={prob:.2f} >= {doubtful:.2f}: the given label {rec.given_label} is in doubt "
            f"and the suggestion is not sure enough to relabel (< {relabel_threshold:.2f}){why}",
        )
    if exclude_threshold is not None and score < exclude_threshold:
        return (
            rec.row_id,
            "exclude",
            None,
            f"label score {score:.2f} < {'chance ' if chance else ''}{exclude_threshold:.2f} and no confident "
            f"suggestion (P({rec.suggested_label})={prob:.2f} < {relabel_threshold:.2f}){why}",
        )
    return (
        rec.row_id,
        "keep",
        rec.given_label,
        f"P({rec.suggested_label})={prob:.2f} < {relabel_threshold:.2f}: not confident enough to relabel{why}",
    )
