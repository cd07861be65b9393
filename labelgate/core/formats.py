"""Fine-tuning file formats: a writer and a validating parser per provider, and the prompt templates.

Every JSONL format turns an :class:`Example` (optional system text, then user/assistant turns) into one
JSON object, and parses such an object back, checking it against the provider's documented schema the
way the provider's upload check would (the parser is what the export checks run on every written line):

======================  ============================================================================
``openai-chat``         OpenAI chat fine-tuning: ``{"messages": [{"role": "system"|"user"|"assistant",
                        "content": str}, ...]}``; roles system/developer/user/assistant/tool/function,
                        message keys role/content/name/weight/function_call/tool_calls/tool_call_id,
                        non-empty text content, at least one assistant message, the last one assistant.
``openai-completion``   OpenAI legacy prompt/completion: ``{"prompt": str, "completion": str}``; the
                        prompt ends with a fixed separator, the completion starts with a space and ends
                        with a fixed stop sequence, neither appears elsewhere.
``hf-messages``         Hugging Face TRL conversational dataset: ``{"messages": [{"role", "content"}]}``,
                        roles system/user/assistant, system only first, the last message assistant.
``alpaca``              Alpaca instruction tuning: exactly ``{"instruction", "input", "output"}`` strings,
                        instruction and output non-empty.
``vertex-gemini``       Vertex AI Gemini supervised tuning: ``{"systemInstruction": {"parts": [{"text"}]},
                        "contents": [{"role": "user"|"model", "parts": [{"text": str}]}]}``; contents
                        alternate starting with user and ending with model.
``bedrock-claude``      Amazon Bedrock Claude (3 Haiku) fine-tuning: ``{"system": str, "messages":
                        [{"role": "user"|"assistant", "content": str}]}``; at least two messages,
                        alternating, first user, last assistant, no other keys.
``csv`` / ``parquet``   The cleaned table (one row per valid input row, see :data:`TABLE_COLUMNS`).
======================  ============================================================================

Pure functions; nothing here reads or writes files.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from labelgate.errors import ConfigError, FormatViolation


@dataclass(frozen=True)
class Example:
    """One fine-tuning example: optional system text, then ``(role, text)`` turns, role user or assistant."""

    system: str | None
    turns: tuple[tuple[str, str], ...]

    @classmethod
    def single(cls, system: str | None, user: str, assistant: str) -> Example:
        """A one-turn example: system (None for none), one user message, one assistant answer."""
        return cls(system or None, (("user", user), ("assistant", assistant)))

    @property
    def user(self) -> str:
        """The text of the last user turn."""
        return next(t for r, t in reversed(self.turns) if r == "user")

    @property
    def assistant(self) -> str:
        """The text of the last assistant turn."""
        return next(t for r, t in reversed(self.turns) if r == "assistant")


# --- prompt templates ---------------------------------------------------------------------------------

DEFAULT_USER_TEMPLATE = "{text}"
DEFAULT_COMPLETION_SEPARATOR = "\n\n###\n\n"
DEFAULT_COMPLETION_STOP = " END"


def default_system_prompt(task_description: str, classes: Iterable[str]) -> str:
    """The default system message: names the task and the answer set."""
    labels = ", ".join(sorted(classes))
    return f"{task_description.rstrip('. ')} into one of: {labels}. Answer with the label only."


@dataclass(frozen=True)
class Templates:
    """How a labelled row becomes an example.

    Attributes:
        system: the system message (None: no system message).
        instruction: the instruction of formats that need one (alpaca): ``system`` or, when there is no
            system message, the default prompt.
        user_template: the user message; ``{text}`` is replaced by the row's text (other braces are kept).
        label_map: label → answer text (labels not in the map are answered as they are).
        completion_separator / completion_stop: the fixed prompt suffix and completion suffix of
            ``openai-completion``.
    """

    system: str | None
    instruction: str
    user_template: str = DEFAULT_USER_TEMPLATE
    label_map: Mapping[str, str] = field(default_factory=dict)
    completion_separator: str = DEFAULT_COMPLETION_SEPARATOR
    completion_stop: str = DEFAULT_COMPLETION_STOP

    def answer(self, label: str) -> str:
        """The assistant answer of ``label`` (its verbalisation)."""
        return self.label_map.get(label, label)

    def user(self, text: str) -> str:
        """The user message of ``text``."""
        return self.user_template.replace("{text}", text)

    def example(self, text: str, label: str) -> Example:
        """The example of one row."""
        return Example.single(self.system, self.user(text), self.answer(label))


def make_templates(
    labels: Iterable[str],
    *,
    system_prompt: str | None = None,
    task_description: str = "Classify the text",
    user_template: str = DEFAULT_USER_TEMPLATE,
    label_map: Mapping[str, str] | None = None,
    completion_separator: str = DEFAULT_COMPLETION_SEPARATOR,
    completion_stop: str = DEFAULT_COMPLETION_STOP,
) -> Templates:
    """Resolve the prompt templates for the exported label set ``labels``.

    ``system_prompt`` None uses :func:`default_system_prompt` over the verbalised labels; ``""`` omits
    the system message.

    Raises:
        ConfigError: ``user_template`` lacks ``{text}``; a verbalisation is empty or shared by two labels;
            the separator or stop sequence is empty.
    """
    label_map = dict(label_map or {})
    check_label_map(label_map)
    if "{text}" not in user_template:
        raise ConfigError(f"user template {user_template!r} must contain {{text}}")
    if not completion_separator or not completion_stop:
        raise ConfigError("the completion separator and stop sequence must be non-empty")
    answers = sorted({label_map.get(lab, lab) for lab in labels})
    clash = _first_clash(label_map, labels)
    if clash:
        raise ConfigError(f"labels {clash[0]!r} and {clash[1]!r} would both be answered {clash[2]!r}")
    default = default_system_prompt(task_description, answers)
    system = default if system_prompt is None else (system_prompt or None)
    return Templates(
        system=system,
        instruction=system or default,
        user_template=user_template,
        label_map=label_map,
        completion_separator=completion_separator,
        completion_stop=completion_stop,
    )


def check_label_map(label_map: Mapping[str, str]) -> None:
    """Raise :class:`ConfigError` when a verbalisation is not a non-empty string or two labels share one."""
    seen: dict[str, str] = {}
    for label, answer in label_map.items():
        if not isinstance(answer, str) or not answer.strip():
            raise ConfigError(f"label map: label {label!r} has an empty answer")
        if answer in seen:
            raise ConfigError(f"label map: labels {seen[answer]!r} and {label!r} are both answered {answer!r}")
        seen[answer] = label


def _first_clash(label_map: Mapping[str, str], labels: Iterable[str]) -> tuple[str, str, str] | None:
    seen: dict[str, str] = {}
    for lab in sorted(set(labels)):
        ans = label_map.get(lab, lab)
        if ans in seen:
            return seen[ans], lab, ans
        seen[ans] = lab
    return None


# --- schema helpers -----------------------------------------------------------------------------------


def _object(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise FormatViolation(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _keys(obj: dict[str, Any], *, required: Iterable[str], allowed: Iterable[str], where: str = "") -> None:
    allowed_set = set(allowed) | set(required)
    unknown = sorted(set(obj) - allowed_set)
    if unknown:
        raise FormatViolation(f"{where}unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed_set))})")
    for key in required:
        if key not in obj:
            raise FormatViolation(f"{where}missing key {key!r}")


def _text(value: Any, what: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise FormatViolation(f"{what} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise FormatViolation(f"{what} is empty")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise FormatViolation(f"{what} must be a list, got {type(value).__name__}")
    if not value:
        raise FormatViolation(f"{what} is empty")
    return value


def _alternating(roles: list[str], *, first: str, last: str, where: str) -> None:
    if roles[0] != first:
        raise FormatViolation(f"{where}the first message must be {first!r}, got {roles[0]!r}")
    if roles[-1] != last:
        raise FormatViolation(f"{where}the last message must be {last!r}, got {roles[-1]!r}")
    for i in range(1, len(roles)):
        if roles[i] == roles[i - 1]:
            raise FormatViolation(f"{where}messages {i} and {i + 1} are both {roles[i]!r}; roles must alternate")


def _turns_example(system: str | None, turns: list[tuple[str, str]]) -> Example:
    return Example(system, tuple(turns))


# --- openai-chat --------------------------------------------------------------------------------------

_OPENAI_TOP = {"messages", "tools", "functions", "parallel_tool_calls"}
_OPENAI_MESSAGE = {"role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id"}
_OPENAI_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def _chat_messages(ex: Example) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": ex.system}] if ex.system else []
    return msgs + [{"role": r, "content": t} for r, t in ex.turns]


def openai_chat_record(ex: Example, tpl: Templates) -> dict[str, Any]:
    """``{"messages": [system?, user, assistant]}``."""
    return {"messages": _chat_messages(ex)}


def openai_chat_parse(obj: Any, tpl: Templates) -> Example:
    """Validate an OpenAI chat fine-tuning line (the checks of OpenAI's data-preparation cookbook)."""
    obj = _object(obj)
    _keys(obj, required=["messages"], allowed=_OPENAI_TOP)
    messages = _list(obj["messages"], "'messages'")
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for i, m in enumerate(messages, 1):
        where = f"message {i}: "
        if not isinstance(m, dict):
            raise FormatViolation(f"{where}expected an object, got {type(m).__name__}")
        _keys(m, required=["role"], allowed=_OPENAI_MESSAGE, where=where)
        role = m["role"]
        if role not in _OPENAI_ROLES:
            raise FormatViolation(f"{where}unrecognised role {role!r}")
        calls = role == "assistant" and ("function_call" in m or "tool_calls" in m)
        if "content" not in m and not calls:
            raise FormatViolation(f"{where}missing key 'content'")
        content = m.get("content")
        content = "" if content is None and calls else _text(content, f"{where}content")
        if "weight" in m and m["weight"] not in (0, 1):
            raise FormatViolation(f"{where}weight must be 0 or 1, got {m['weight']!r}")
        if role in ("system", "developer"):
            system.append(content)
        elif role in ("user", "assistant"):
            turns.append((role, content))
    roles = [m["role"] for m in messages]
    if "assistant" not in roles:
        raise FormatViolation("no assistant message")
    if roles[-1] != "assistant":
        raise FormatViolation(f"the last message must be 'assistant', got {roles[-1]!r}")
    return _turns_example("\n\n".join(system) or None, turns)


# --- hf-messages (TRL conversational) ---------------------------------------------------------------


def hf_messages_record(ex: Example, tpl: Templates) -> dict[str, Any]:
    """``{"messages": [...]}`` in TRL's conversational (language-modelling) format."""
    return {"messages": _chat_messages(ex)}


def hf_messages_parse(obj: Any, tpl: Templates) -> Example:
    """Validate a TRL conversational line: role/content messages, system only first, assistant last."""
    obj = _object(obj)
    _keys(obj, required=["messages"], allowed=[])
    messages = _list(obj["messages"], "'messages'")
    system = None
    turns: list[tuple[str, str]] = []
    for i, m in enumerate(messages, 1):
        where = f"message {i}: "
        if not isinstance(m, dict):
            raise FormatViolation(f"{where}expected an object, got {type(m).__name__}")
        _keys(m, required=["role", "content"], allowed=[], where=where)
        role, content = m["role"], _text(m["content"], f"{where}content")
        if role == "system":
            if i != 1:
                raise FormatViolation(f"{where}a system message may only come first")
            system = content
        elif role in ("user", "assistant"):
            turns.append((role, content))
        else:
            raise FormatViolation(f"{where}unrecognised role {role!r} (system, user or assistant)")
    if not turns:
        raise FormatViolation("no user or assistant message")
    _alternating([r for r, _ in turns], first="user", last="assistant", where="")
    return _turns_example(system, turns)


# --- alpaca -------------------------------------------------------------------------------------------


def alpaca_record(ex: Example, tpl: Templates) -> dict[str, Any]:
    """``{"instruction": system or default prompt, "input": user text, "output": answer}``."""
    if len(ex.turns) != 2:
        raise FormatViolation("alpaca holds one user/assistant exchange")
    return {"instruction": ex.system or tpl.instruction, "input": ex.user, "output": ex.assistant}


def alpaca_parse(obj: Any, tpl: Templates) -> Example:
    """Validate an Alpaca line: exactly instruction/input/output strings; instruction and output non-empty."""
    obj = _object(obj)
    _keys(obj, required=["instruction", "input", "output"], allowed=[])
    instruction = _text(obj["instruction"], "'instruction'")
    user = _text(obj["input"], "'input'", allow_empty=True)
    output = _text(obj["output"], "'output'")
    return Example.single(instruction, user, output)


# --- vertex-gemini ------------------------------------------------------------------------------------

_GEMINI_PART_DATA = {"text", "fileData", "inlineData"}


def vertex_gemini_record(ex: Example, tpl: Templates) -> dict[str, Any]:
    """``{"systemInstruction": {"parts": [{"text"}]}?, "contents": [{"role": "user"|"model", "parts"}]}``."""
    rec: dict[str, Any] = {}
    if ex.system:
        rec["systemInstruction"] = {"parts": [{"text": ex.system}]}
    rec["contents"] = [{"role": "model" if r == "assistant" else "user", "parts": [{"text": t}]} for r, t in ex.turns]
    return rec


def _gemini_text(content: Any, where: str, *, roles: set[str] | None) -> tuple[str | None, str]:
    if not isinstance(content, dict):
        raise FormatViolation(f"{where}expected an object, got {type(content).__name__}")
    _keys(content, required=["parts"], allowed=["role"], where=where)
    role = content.get("role")
    if roles is not None and role not in roles:
        raise FormatViolation(f"{where}role must be one of {', '.join(sorted(roles))}, got {role!r}")
    texts = []
    for j, part in enumerate(_list(content["parts"], f"{where}'parts'"), 1):
        pw = f"{where}part {j}: "
        if not isinstance(part, dict):
            raise FormatViolation(f"{pw}expected an object, got {type(part).__name__}")
        _keys(part, required=[], allowed=_GEMINI_PART_DATA, where=pw)
        if len(part) != 1:
            raise FormatViolation(f"{pw}a part holds exactly one of {', '.join(sorted(_GEMINI_PART_DATA))}")
        if "text" in part:
            texts.append(_text(part["text"], f"{pw}text"))
    if not texts:
        raise FormatViolation(f"{where}no text part")
    return role, "".join(texts)


def vertex_gemini_parse(obj: Any, tpl: Templates) -> Example:
    """Validate a Vertex AI Gemini supervised-tuning line (text parts; user/model contents alternating)."""
    obj = _object(obj)
    _keys(obj, required=["contents"], allowed=["systemInstruction", "tools"])
    system = None
    if "systemInstruction" in obj:
        _, system = _gemini_text(obj["systemInstruction"], "systemInstruction: ", roles=None)
    turns: list[tuple[str, str]] = []
    for i, content in enumerate(_list(obj["contents"], "'contents'"), 1):
        role, text = _gemini_text(content, f"contents {i}: ", roles={"user", "model"})
        turns.append(("assistant" if role == "model" else "user", text))
    _alternating([r for r, _ in turns], first="user", last="assistant", where="contents: ")
    return _turns_example(system, turns)


# --- bedrock-claude -----------------------------------------------------------------------------------


def bedrock_claude_record(ex: Example, tpl: Templates) -> dict[str, Any]:
    """``{"system": str?, "messages": [{"role": "user"|"assistant", "content": str}, ...]}``."""
    rec: dict[str, Any] = {}
    if ex.system:
        rec["system"] = ex.system
    rec["messages"] = [{"role": r, "content": t} for r, t in ex.turns]
    return rec


def bedrock_claude_parse(obj: Any, tpl: Templates) -> Example:
    """Validate a Bedrock Claude fine-tuning line: optional system, >= 2 alternating messages, no extra keys."""
    obj = _object(obj)
    _keys(obj, required=["messages"], allowed=["system"])
    system = _text(obj["system"], "'system'") if "system" in obj else None
    messages = _list(obj["messages"], "'messages'")
    if len(messages) < 2:
        raise FormatViolation(f"at least two messages are needed, got {len(messages)}")
    turns: list[tuple[str, str]] = []
    for i, m in enumerate(messages, 1):
        where = f"message {i}: "
        if not isinstance(m, dict):
            raise FormatViolation(f"{where}expected an object, got {type(m).__name__}")
        _keys(m, required=["role", "content"], allowed=[], where=where)
        if m["role"] not in ("user", "assistant"):
            raise FormatViolation(f"{where}role must be 'user' or 'assistant', got {m['role']!r}")
        turns.append((m["role"], _text(m["content"], f"{where}content")))
    _alternating([r for r, _ in turns], first="user", last="assistant", where="")
    return _turns_example(system, turns)


# --- openai-completion (legacy) -----------------------------------------------------------------------


def openai_completion_record(ex: Example, tpl: Templates) -> dict[str, Any]:
    """``{"prompt": "[system\\n\\n]user<separator>", "completion": " answer<stop>"}``."""
    if len(ex.turns) != 2:
        raise FormatViolation("prompt/completion holds one user/assistant exchange")
    head = f"{ex.system}\n\n" if ex.system else ""
    return {
        "prompt": f"{head}{ex.user}{tpl.completion_separator}",
        "completion": f" {ex.assistant}{tpl.completion_stop}",
    }


def openai_completion_parse(obj: Any, tpl: Templates) -> Example:
    """Validate a legacy prompt/completion line against the fixed separator and stop sequence."""
    obj = _object(obj)
    _keys(obj, required=["prompt", "completion"], allowed=[])
    prompt = _text(obj["prompt"], "'prompt'")
    completion = _text(obj["completion"], "'completion'")
    sep, stop = tpl.completion_separator, tpl.completion_stop
    if not prompt.endswith(sep):
        raise FormatViolation(f"the prompt does not end with the separator {sep!r}")
    body = prompt[: -len(sep)]
    if sep in body:
        raise FormatViolation(f"the separator {sep!r} also appears inside the prompt; choose another separator")
    if not completion.startswith(" "):
        raise FormatViolation("the completion must start with a space")
    if not completion.endswith(stop):
        raise FormatViolation(f"the completion does not end with the stop sequence {stop!r}")
    answer = completion[1 : -len(stop)]
    if stop in answer:
        raise FormatViolation(f"the stop sequence {stop!r} also appears inside the completion")
    if not answer.strip():
        raise FormatViolation("the completion holds no answer")
    system = None
    if tpl.system and body.startswith(f"{tpl.system}\n\n"):
        system, body = tpl.system, body[len(tpl.system) + 2 :]
    if not body.strip():
        raise FormatViolation("the prompt holds no text")
    return Example.single(system, body, answer)


# --- the cleaned table (csv / parquet) ----------------------------------------------------------------

#: columns of the cleaned-table exports, one row per valid input row
TABLE_COLUMNS = ["id", "text", "label", "original_label", "action", "source", "split"]


def table_bytes(frame: pd.DataFrame, fmt: Literal["csv", "parquet"]) -> bytes:
    """Serialise the cleaned table (columns :data:`TABLE_COLUMNS`) as CSV (UTF-8, CRLF, RFC 4180) or Parquet."""
    frame = frame[TABLE_COLUMNS]
    if fmt == "csv":  # RFC 4180 line ends: a field holding a lone CR is then quoted too
        return frame.to_csv(index=False, lineterminator="\r\n").encode("utf-8")
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


def read_table_bytes(data: bytes, fmt: Literal["csv", "parquet"]) -> pd.DataFrame:
    """Parse :func:`table_bytes` output back (strings stay strings; empty cells are None)."""
    if fmt == "csv":
        df = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""])
    else:
        df = pd.read_parquet(io.BytesIO(data))
    return df.astype(object).where(df.notna(), None)


# --- the registry -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormatSpec:
    """One export format.

    Attributes:
        name: the ``--format`` name.
        kind: ``jsonl`` (one example per line) or ``table`` (the cleaned table).
        provider: who consumes it.
        record / parse: the writer and the validating parser (``jsonl`` only).
        chat: count tokens as chat messages (OpenAI cookbook overheads) rather than plain fields.
        max_tokens: documented per-example token limit (None: none known).
        over_limit: ``error`` (the provider rejects or the job fails) or ``warning`` (truncated).
        min_examples: documented minimum number of training examples (an error below it; 0: none).
        recommended_examples: below this, a warning.
        max_val_examples: documented maximum size of a validation file (a warning above it).
        reference: where the schema is documented.
    """

    name: str
    kind: Literal["jsonl", "table"]
    provider: str
    record: Callable[[Example, Templates], dict[str, Any]] | None = None
    parse: Callable[[Any, Templates], Example] | None = None
    chat: bool = True
    max_tokens: int | None = None
    over_limit: Literal["error", "warning"] = "error"
    min_examples: int = 0
    recommended_examples: int = 0
    max_val_examples: int | None = None
    reference: str = ""

    def file_name(self, split: str) -> str:
        """``train.openai-chat.jsonl``, ``val.alpaca.jsonl``, ``cleaned.csv``, …"""
        if self.kind == "table":
            return f"cleaned.{self.name}"
        return f"{split}.{self.name}.jsonl"


FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec(
            "openai-chat",
            "jsonl",
            "OpenAI fine-tuning (chat models)",
            openai_chat_record,
            openai_chat_parse,
            max_tokens=16_385,
            min_examples=10,
            recommended_examples=50,
            reference="https://platform.openai.com/docs/guides/supervised-fine-tuning; "
            "cookbook examples/Chat_finetuning_data_prep.ipynb",
        ),
        FormatSpec(
            "openai-completion",
            "jsonl",
            "OpenAI legacy fine-tuning (babbage-002, davinci-002)",
            openai_completion_record,
            openai_completion_parse,
            chat=False,
            max_tokens=16_385,
            min_examples=10,
            recommended_examples=100,
            reference="https://platform.openai.com/docs/guides/legacy-fine-tuning",
        ),
        FormatSpec(
            "hf-messages",
            "jsonl",
            "Hugging Face TRL SFTTrainer (conversational)",
            hf_messages_record,
            hf_messages_parse,
            max_tokens=1024,
            over_limit="warning",
            reference="https://huggingface.co/docs/trl/dataset_formats",
        ),
        FormatSpec(
            "alpaca",
            "jsonl",
            "Alpaca-style instruction tuning (Axolotl, LLaMA-Factory, Unsloth)",
            alpaca_record,
            alpaca_parse,
            chat=False,
            max_tokens=2048,
            over_limit="warning",
            reference="https://github.com/tatsu-lab/stanford_alpaca#data-release",
        ),
        FormatSpec(
            "vertex-gemini",
            "jsonl",
            "Vertex AI Gemini supervised tuning",
            vertex_gemini_record,
            vertex_gemini_parse,
            max_tokens=131_072,
            recommended_examples=100,
            max_val_examples=5000,
            reference="https://cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning-prepare",
        ),
        FormatSpec(
            "bedrock-claude",
            "jsonl",
            "Amazon Bedrock fine-tuning of Claude 3 Haiku",
            bedrock_claude_record,
            bedrock_claude_parse,
            max_tokens=32_000,
            recommended_examples=32,
            reference="https://docs.aws.amazon.com/bedrock/latest/userguide/model-customization-prepare.html; "
            "Anthropic cookbook finetuning/finetuning_on_bedrock",
        ),
        FormatSpec("csv", "table", "the cleaned table (any tool)", chat=False),
        FormatSpec("parquet", "table", "the cleaned table (any tool)", chat=False),
    )
}


def get_format(name: str) -> FormatSpec:
    """The format ``name``.

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown export format {name!r}; available: {', '.join(FORMATS)}") from None


def parse_formats(value: str | Iterable[str]) -> list[str]:
    """``"openai-chat, alpaca"`` or a list → checked, de-duplicated format names in the given order."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = list(dict.fromkeys(s.strip() for s in items if s and s.strip()))
    if not names:
        raise ConfigError("no export format given; available: " + ", ".join(FORMATS))
    for n in names:
        get_format(n)
    return names


def to_jsonl(records: Iterable[dict[str, Any]]) -> tuple[bytes, int]:
    """Serialise records as UTF-8 JSON Lines (no ASCII escaping, key order kept); return ``(bytes, lines)``."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    return data, len(lines)
