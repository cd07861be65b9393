"""Typed run metrics: one frozen dataclass per stage and :class:`RunMetrics` composing them.

Every stage's task returns its dataclass; the ``curate`` flow composes them into :class:`RunMetrics`; the
readers (CLI, web, services, artifacts) parse a run's stored ``metrics_json`` with :meth:`RunMetrics.from_json`
and use attributes.

The stored JSON keeps the key names of earlier versions (one flat object, a few nested objects: ``quality``,
``memory``, ``decisions``, ``review``, ``evaluation``, ``dask``), so existing databases, ``labelgate runs --json``
and ``labelgate run --json`` read the same. :meth:`RunMetrics.from_json` is tolerant: a missing key gives the
field's default (``None``: the stage did not say), an unknown key is kept in ``extra`` and written back as is.

Conventions: a field that is ``None`` is left out of the JSON, except the keys a stage lists in ``ALWAYS``
(written as ``null``: e.g. the detect stage's ``detection_reused_from``).
The dataclasses are frozen (``replace`` makes a changed copy); their dict and list values are the JSON values as
stored: read them, do not change them in place. Pure types: no I/O, importable from every layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

__all__ = [
    "STAGES",
    "AnnotatorMetrics",
    "DetectMetrics",
    "EmbedMetrics",
    "EvaluationMetrics",
    "ExportMetrics",
    "GateMetrics",
    "IngestMetrics",
    "MemoryMetrics",
    "QualityMetrics",
    "ReviewMetrics",
    "RunMetrics",
    "StageMetrics",
    "ValidateMetrics",
    "stage_sum",
]

#: the stages ``seconds_by_stage`` may name, in run order (a name with a dot, such as ``detect.label``, is a part of
#: the stage before the dot and is not added again by :func:`stage_sum`)
STAGES = (
    "ingest",
    "validate",
    "embed",
    "layers",
    "detect",
    "annotators",
    "quality",
    "memory",
    "gate",
    "export",
    "evaluate",
)


@dataclass(frozen=True)
class StageMetrics:
    """Base of the stage dataclasses: JSON in and out by field name (see the module docstring).

    A subclass with a field named ``extra`` (a dict) keeps unknown keys of its JSON object there. ``ALWAYS``
    names the keys written even when ``None`` (``"*"``: every field: the stage always wrote all of them).
    """

    ALWAYS: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> dict[str, Any]:
        """The stage's JSON object: one key per field that is not ``None`` (or listed in ``ALWAYS``)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and f.name not in self.ALWAYS and "*" not in self.ALWAYS:
                continue
            out[f.name] = value.to_json() if isinstance(value, StageMetrics) else value
        extra = getattr(self, "extra", None)
        return {**extra, **out} if extra else out

    @classmethod
    def json_keys(cls) -> frozenset[str]:
        """The JSON keys this stage owns."""
        return frozenset(f.name for f in fields(cls) if f.name != "extra")

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Self:
        """Parse the stage's JSON object (keys of other stages are ignored; missing keys give the defaults)."""
        data = data if isinstance(data, Mapping) else {}
        known = cls.json_keys()
        values: dict[str, Any] = {k: data[k] for k in known if k in data}
        hints = _nested.get(cls, {})
        for name, kind in hints.items():
            if isinstance(values.get(name), Mapping):
                values[name] = kind.from_json(values[name])
        if "extra" in {f.name for f in fields(cls)}:
            values["extra"] = {k: v for k, v in data.items() if k not in known}
        return cls(**values)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class IngestMetrics(StageMetrics):
    """The ``ingest`` stage: records read, the input's identity, what reading changed.

    ``input_files`` (a batch input's files) and the ``labels_*`` / ``annotators`` counts (several annotators) are
    present only for such inputs.
    """

    rows_in: int | None = None
    quarantined_ingest: int | None = None
    input_sha256: str | None = None
    dataset_version: str | None = None
    input_format: str | None = None
    id_source: str | None = None
    labels_normalised: int | None = None
    notes: list[str] | None = None
    quarantine_reasons_ingest: dict[str, int] | None = None
    input_files: list[dict[str, Any]] | None = None
    labels_in: int | None = None
    labels_unparsed: int | None = None
    labels_left_out: int | None = None
    labels_left_out_reasons: dict[str, int] | None = None
    annotators: int | None = None


@dataclass(frozen=True)
class ValidateMetrics(StageMetrics):
    """The ``validate`` stage: valid and quarantined rows (ingest's and validation's), classes, warnings."""

    rows_valid: int | None = None
    rows_quarantined: int | None = None
    class_counts_in: dict[str, int] | None = None
    quarantine_reasons: dict[str, int] | None = None
    dropped_classes: dict[str, int] | None = None
    warnings: list[str] | None = None


@dataclass(frozen=True)
class EmbedMetrics(StageMetrics):
    """The ``embed`` stage: the model's cache key, texts embedded now and taken from the cache."""

    embedding_model: str | None = None
    texts_unique: int | None = None
    texts_embedded: int | None = None
    texts_cached: int | None = None
    embed_seconds: float | None = None


@dataclass(frozen=True)
class DetectMetrics(StageMetrics):
    """The ``detect`` stage: issue counts, the detector, its out-of-fold accuracy and its timings.

    ``detect_seconds`` maps a part of the stage to seconds: ``layers`` (the middle-layer features), ``fit.<member>``
    (a member's out-of-fold fits), ``label`` (the fits and the label rule together), ``neighbours``, ``leakage``.
    ``approximations`` names what large inputs made approximate (``None``: nothing): ``train_rows_per_fold`` (each
    fold's models fitted on a stratified sample of that many rows, :func:`labelgate.core.probs.train_rows_cap`),
    ``char_features`` (the ``chars`` member's vocabulary capped at that many n-grams with many classes,
    :func:`labelgate.core.probs.char_features_cap`), ``layers_C`` (the ``layers`` member fitted with that one C
    instead of choosing among :data:`labelgate.core.probs.LAYERS_C_GRID`, :func:`labelgate.core.probs.layers_grid`)
    and ``neighbours`` (``approximate``: above :data:`labelgate.core.neighbours.EXACT_MAX_ROWS` rows).
    ``label_issues_by_kind`` counts the detector's flagged label issues per kind (``mislabelled``, ``ambiguous``:
    :mod:`labelgate.core.ambiguity`; ``None`` for runs detected before kinds existed). With several annotators it
    stays the detector's count: the consensus issues that replace them have no kind.
    """

    #: every field but ``approximations`` and ``label_issues_by_kind`` (added later: runs without them must write back
    #: as they were stored)
    ALWAYS: ClassVar[frozenset[str]] = frozenset(
        {
            "label_issues",
            "label_issue_rate",
            "issues_by_type",
            "rows_flagged",
            "detector",
            "oof_accuracy_vs_given",
            "oof_accuracy_by_member",
            "classes",
            "n_folds",
            "detector_fitted",
            "detect_seconds",
            "detection_key",
            "detection_reused_from",
        }
    )

    label_issues: int | None = None
    label_issue_rate: float | None = None
    issues_by_type: dict[str, int] | None = None
    rows_flagged: int | None = None
    detector: str | None = None
    oof_accuracy_vs_given: float | None = None
    oof_accuracy_by_member: dict[str, float] | None = None
    classes: list[str] | None = None
    n_folds: int | None = None
    detector_fitted: dict[str, Any] | None = None
    detect_seconds: dict[str, float] | None = None
    detection_key: str | None = None
    detection_reused_from: str | None = None
    approximations: dict[str, Any] | None = None
    label_issues_by_kind: dict[str, int] | None = None


@dataclass(frozen=True)
class AnnotatorMetrics(StageMetrics):
    """The ``annotators`` stage (several annotators): consensus figures; ``label_issues`` and
    ``label_issue_rate`` are the run's counts after consensus (they replace the detect stage's).

    ``low_agreement_items``: items with 2 or more labels whose agreement is below the run's ``min_agreement``
    (:func:`labelgate.core.annotators.low_agreement_mask`; counted whatever ``low_agreement`` is, flagged as
    ``low_agreement`` issues only when it is ``review`` or ``exclude``)."""

    consensus_items: int | None = None
    label_issues_consensus: int | None = None
    consensus_differs_from_majority: int | None = None
    consensus_method: str | None = None
    mean_agreement: float | None = None
    low_agreement_items: int | None = None
    label_issues: int | None = None
    label_issue_rate: float | None = None


@dataclass(frozen=True)
class QualityMetrics(StageMetrics):
    """The quality gate's verdict (stored under ``quality``; see :class:`labelgate.core.quality.QualityVerdict`)."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"*"})

    passed: bool | None = None
    enforced: bool | None = None
    message: str | None = None
    reasons: list[str] | None = None
    checks: list[dict[str, Any]] | None = None
    baseline_run_id: str | None = None
    baseline_version: str | None = None
    shift: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MemoryMetrics(StageMetrics):
    """Decisions carried from earlier runs (stored under ``memory``; :func:`labelgate.core.memory.carry_summary`)."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"*"})

    carried: int | None = None
    by_action: dict[str, int] | None = None
    by_source: dict[str, int] | None = None
    from_runs: dict[str, int] | None = None
    rows_new: int | None = None
    rows_seen: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReviewMetrics(StageMetrics):
    """The human gate's review (stored under ``review``)."""

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"*"})

    reviewer: str | None = None
    action: str | None = None
    timed_out: bool | None = None
    flagged: int | None = None
    reviewed: int | None = None
    carried: int | None = None
    by_action: dict[str, int] | None = None
    policy_decided: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateMetrics(StageMetrics):
    """The gate (auto policy or a person): the latest decisions per action (stored under ``decisions``:
    ``keep`` / ``relabel`` / ``exclude`` counts), the review (human gate) and its page."""

    decisions: dict[str, int] | None = None
    review: ReviewMetrics | None = None
    review_url: str | None = None

    def count(self, action: str) -> int:
        """How many rows got ``action`` (0 when none or unknown)."""
        return int((self.decisions or {}).get(action) or 0)


@dataclass(frozen=True)
class ExportMetrics(StageMetrics):
    """The ``export`` stage: rows written per split, the files, leaks excluded, format checks' warnings."""

    exported: int | None = None
    exported_train: int | None = None
    exported_val: int | None = None
    excluded: int | None = None
    relabelled: int | None = None
    leakage_excluded: int | None = None
    leakage_flagged: int | None = None
    leakage_text_match: int | None = None
    export_dir: str | None = None
    manifest: str | None = None
    export_files: list[str] | None = None
    export_formats: list[str] | None = None
    export_warnings: list[str] | None = None
    export_version: int | None = None
    tokenizer: str | None = None


@dataclass(frozen=True)
class EvaluationMetrics(StageMetrics):
    """The ``evaluate`` stage (stored under ``evaluation``): trainers on raw vs cleaned rows, scored on a test file.

    ``trainers`` maps a trainer to :meth:`labelgate.core.evaluate.Comparison.as_dict`; an older single-comparison
    shape keeps its keys in ``extra`` (:func:`labelgate.core.evaluate.comparisons_from_summary` reads both).
    """

    ALWAYS: ClassVar[frozenset[str]] = frozenset({"test_path", "test_sha256", "leakage_excluded", "n_test"})

    test_path: str | None = None
    test_sha256: str | None = None
    leakage_excluded: int | None = None
    n_test: int | None = None
    trainers: dict[str, dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_nested: dict[type, dict[str, type[StageMetrics]]] = {GateMetrics: {"review": ReviewMetrics}}

#: RunMetrics attribute -> (stage type, the key its JSON object is stored under, or None: merged flat)
_STAGE_FIELDS: dict[str, tuple[type[StageMetrics], str | None]] = {
    "ingest": (IngestMetrics, None),
    "validate": (ValidateMetrics, None),
    "embed": (EmbedMetrics, None),
    "detect": (DetectMetrics, None),
    "consensus": (AnnotatorMetrics, None),
    "quality": (QualityMetrics, "quality"),
    "memory": (MemoryMetrics, "memory"),
    "decisions": (GateMetrics, None),
    "export": (ExportMetrics, None),
    "evaluation": (EvaluationMetrics, "evaluation"),
}

#: flat stage type -> the keys no other flat stage writes (whether the stage ran is told by these alone: the
#: annotators stage shares ``label_issues`` / ``label_issue_rate`` with the detect stage)
_OWN_KEYS: dict[type[StageMetrics], frozenset[str]] = {
    kind: kind.json_keys().difference(
        *(other.json_keys() for other, nested in _STAGE_FIELDS.values() if nested is None and other is not kind)
    )
    for kind, nested in _STAGE_FIELDS.values()
    if nested is None
}

_TOP_KEYS = frozenset({"run_id", "gate", "seconds", "seconds_by_stage", "startup_seconds", "dask", "baseline_run_id"})


@dataclass(frozen=True)
class RunMetrics:
    """A run's metrics: the figures of every stage that ran (``None``: it did not) and the run's own.

    Attributes:
        run_id: the run.
        gate: ``auto``, ``human`` or ``none``.
        ingest … evaluation: the stages' figures (``consensus``: the annotators stage; ``decisions``: the gate).
        seconds: the run's wall seconds (start of ingest to the end of the last stage).
        seconds_by_stage: stage name (:data:`STAGES`) -> seconds; dotted names (``detect.label``) are parts of
            their stage.
        startup_seconds: wall seconds from the process's start to the first stage, for a run of ``labelgate run``
            or ``labelgate demo`` (interpreter, imports, Prefect's ephemeral API, the flow run's creation); None
            for a run in any other process (a deployment, a library call).
        dask: with ``--runner dask``, the scheduler, its workers and what each ran.
        extra: keys no stage owns (kept as read, written back as is).
    """

    run_id: str | None = None
    gate: str | None = None
    ingest: IngestMetrics | None = None
    validate: ValidateMetrics | None = None
    embed: EmbedMetrics | None = None
    detect: DetectMetrics | None = None
    consensus: AnnotatorMetrics | None = None
    quality: QualityMetrics | None = None
    memory: MemoryMetrics | None = None
    decisions: GateMetrics | None = None
    export: ExportMetrics | None = None
    evaluation: EvaluationMetrics | None = None
    seconds: float | None = None
    seconds_by_stage: dict[str, float] | None = None
    startup_seconds: float | None = None
    dask: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # --- JSON ------------------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The flat JSON object stored in ``runs.metrics_json`` (today's key names)."""
        out: dict[str, Any] = dict(self.extra)
        for key in ("run_id", "gate"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for name, (_, nested_key) in _STAGE_FIELDS.items():
            stage = getattr(self, name)
            if stage is None:
                continue
            if nested_key is None:
                out.update(stage.to_json())
            else:
                out[nested_key] = stage.to_json()
        if self.quality is not None:
            out["baseline_run_id"] = self.quality.baseline_run_id
        for key in ("seconds", "seconds_by_stage", "startup_seconds", "dask"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | None) -> RunMetrics:
        """Parse a run's metrics as stored by this or an older version (a dict, JSON text or None)."""
        if isinstance(data, str):
            import json

            data = json.loads(data) if data.strip() else {}
        data = data if isinstance(data, Mapping) else {}
        values: dict[str, Any] = {}
        claimed = set(_TOP_KEYS)
        for name, (kind, nested_key) in _STAGE_FIELDS.items():
            if nested_key is None:
                claimed |= kind.json_keys()
                if any(k in data for k in _OWN_KEYS[kind]):
                    values[name] = kind.from_json(data)
            else:
                claimed.add(nested_key)
                if isinstance(data.get(nested_key), Mapping):
                    values[name] = kind.from_json(data[nested_key])
        for key in ("run_id", "gate", "seconds", "seconds_by_stage", "startup_seconds", "dask"):
            if data.get(key) is not None:
                values[key] = data[key]
        values["extra"] = {k: v for k, v in data.items() if k not in claimed}
        return cls(**values)

    def replace(self, **changes: Any) -> RunMetrics:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def with_consensus(self, figures: AnnotatorMetrics) -> RunMetrics:
        """Add the annotators stage; its label issue counts replace the detect stage's."""
        detect = self.detect or DetectMetrics()
        if figures.label_issues is not None:
            detect = detect.replace(label_issues=figures.label_issues, label_issue_rate=figures.label_issue_rate)
        return self.replace(consensus=figures, detect=detect)

    # --- what readers ask most -------------------------------------------------------------------------------

    @property
    def rows_in(self) -> int | None:
        """Records read (ingest)."""
        return self.ingest.rows_in if self.ingest else None

    @property
    def rows_valid(self) -> int | None:
        """Rows that passed validation."""
        return self.validate.rows_valid if self.validate else None

    @property
    def rows_quarantined(self) -> int | None:
        """Rows quarantined by ingest and validation together."""
        return self.validate.rows_quarantined if self.validate else None

    @property
    def label_issues(self) -> int | None:
        """Rows flagged as label issues (after consensus with several annotators)."""
        return self.detect.label_issues if self.detect else None

    @property
    def detected(self) -> bool:
        """Whether the detect stage finished (its label issue count is recorded)."""
        return self.label_issues is not None

    @property
    def quarantine_reasons(self) -> dict[str, int]:
        """Reason -> records quarantined (ingest's and validation's; ingest's alone when validation did not run)."""
        if self.validate and self.validate.quarantine_reasons is not None:
            return dict(self.validate.quarantine_reasons)
        return dict(self.ingest.quarantine_reasons_ingest or {}) if self.ingest else {}

    @property
    def warnings(self) -> list[str]:
        """The run's warnings (validation's: classes dropped, …)."""
        return list(self.validate.warnings or []) if self.validate else []

    @property
    def notes(self) -> list[str]:
        """What reading changed (labels trimmed, …)."""
        return list(self.ingest.notes or []) if self.ingest else []

    @property
    def decision_counts(self) -> dict[str, int]:
        """Action -> rows of the latest decisions (empty without a gate)."""
        return dict(self.decisions.decisions or {}) if self.decisions else {}

    @property
    def export_files(self) -> list[str]:
        """The export's data files (the manifest is :attr:`ExportMetrics.manifest`)."""
        return list(self.export.export_files or []) if self.export else []


def stage_sum(seconds_by_stage: Mapping[str, float]) -> float:
    """The seconds of the stages in ``seconds_by_stage``, parts (dotted names) not counted twice."""
    return float(sum(v for k, v in seconds_by_stage.items() if "." not in k))
