"""Format writers and validators: golden records, round trips, the providers' documented examples, refusals."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelgate.core.formats import (
    FORMATS,
    Example,
    FormatViolation,
    Templates,
    get_format,
    make_templates,
    parse_formats,
)
from labelgate.errors import ConfigError

pytestmark = pytest.mark.unit

JSONL = [name for name, spec in FORMATS.items() if spec.kind == "jsonl"]
TPL = make_templates(["neg", "pos"], task_description="Classify the review")
SYSTEM = "Classify the review into one of: neg, pos. Answer with the label only."


def roundtrip(fmt: str, ex: Example, tpl: Templates = TPL) -> Example:
    spec = get_format(fmt)
    line = json.dumps(spec.record(ex, tpl), ensure_ascii=False)  # type: ignore[misc]
    return spec.parse(json.loads(line), tpl)  # type: ignore[misc]


def test_default_templates_name_the_task_and_the_answers() -> None:
    assert TPL.system == SYSTEM
    assert TPL.example("great film", "pos") == Example(SYSTEM, (("user", "great film"), ("assistant", "pos")))
    tpl = make_templates(["neg", "pos"], label_map={"pos": "Positive"}, user_template="Review: {text}")
    assert "one of: Positive, neg." in (tpl.system or "")
    assert tpl.example("ok {x}", "pos").turns == (("user", "Review: ok {x}"), ("assistant", "Positive"))
    assert make_templates(["a", "b"], system_prompt="").system is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"user_template": "no placeholder"}, "must contain"),
        ({"label_map": {"neg": "Same", "pos": "Same"}}, "both answered"),
        ({"label_map": {"neg": " "}}, "empty answer"),
        ({"label_map": {"neg": "pos"}}, "would both be answered 'pos'"),
        ({"completion_stop": ""}, "non-empty"),
    ],
)
def test_bad_templates_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_templates(["neg", "pos"], **kwargs)


GOLDEN = {
    "openai-chat": {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "great film"},
            {"role": "assistant", "content": "pos"},
        ]
    },
    "hf-messages": {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "great film"},
            {"role": "assistant", "content": "pos"},
        ]
    },
    "openai-completion": {"prompt": f"{SYSTEM}\n\ngreat film\n\n###\n\n", "completion": " pos END"},
    "alpaca": {"instruction": SYSTEM, "input": "great film", "output": "pos"},
    "vertex-gemini": {
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
        "contents": [
            {"role": "user", "parts": [{"text": "great film"}]},
            {"role": "model", "parts": [{"text": "pos"}]},
        ],
    },
    "bedrock-claude": {
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "great film"}, {"role": "assistant", "content": "pos"}],
    },
}


@pytest.mark.parametrize("fmt", JSONL)
def test_each_format_writes_the_documented_shape(fmt: str) -> None:
    ex = TPL.example("great film", "pos")
    assert get_format(fmt).record(ex, TPL) == GOLDEN[fmt]  # type: ignore[misc]
    assert roundtrip(fmt, ex) == ex


texts = st.text(min_size=1, max_size=60).filter(lambda s: s.strip() and "###" not in s and "END" not in s)


@settings(max_examples=60, deadline=None)
@given(text=texts, answer=texts, system=st.one_of(st.none(), texts))
@pytest.mark.parametrize("fmt", JSONL)
def test_every_format_round_trips(fmt: str, text: str, answer: str, system: str | None) -> None:
    tpl = make_templates([answer], system_prompt=system or "")
    ex = Example.single(system, text, answer)
    back = roundtrip(fmt, ex, tpl)
    expected = Example(system or tpl.instruction, ex.turns) if fmt == "alpaca" else ex
    assert back == expected


def test_without_system_prompt_no_system_field_is_written() -> None:
    tpl = make_templates(["a", "b"], system_prompt="")
    ex = tpl.example("hello", "a")
    assert "systemInstruction" not in get_format("vertex-gemini").record(ex, tpl)  # type: ignore[misc]
    assert "system" not in get_format("bedrock-claude").record(ex, tpl)  # type: ignore[misc]
    assert [m["role"] for m in get_format("openai-chat").record(ex, tpl)["messages"]] == ["user", "assistant"]  # type: ignore[misc]
    assert get_format("alpaca").record(ex, tpl)["instruction"] == tpl.instruction  # type: ignore[misc]
    assert roundtrip("openai-completion", ex, tpl) == ex


# the providers' own documented examples parse (shapes from their docs pages)
DOCUMENTED = {
    "openai-chat": [
        {
            "messages": [
                {"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."},
                {"role": "user", "content": "What's the capital of France?"},
                {"role": "assistant", "content": "Paris, as if everyone doesn't know that already."},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Who wrote 'Romeo and Juliet'?"},
                {"role": "assistant", "content": "Oh, just some guy named William Shakespeare.", "weight": 0},
                {"role": "user", "content": "Can you be more sarcastic?"},
                {"role": "assistant", "content": "Yes, a playwright named Shakespeare.", "weight": 1},
            ]
        },
    ],
    "hf-messages": [
        {
            "messages": [
                {"role": "user", "content": "What color is the sky?"},
                {"role": "assistant", "content": "It is blue."},
            ]
        }
    ],
    "alpaca": [{"instruction": "Give three tips for staying healthy.", "input": "", "output": "1. Eat well."}],
    "vertex-gemini": [
        {
            "systemInstruction": {
                "role": "system",
                "parts": [{"text": "You are a pirate dog named Capitan Barktholomew."}],
            },
            "contents": [
                {"role": "user", "parts": [{"text": "Hi"}]},
                {"role": "model", "parts": [{"text": "Argh! What brings ye to my shores?"}]},
                {"role": "user", "parts": [{"text": "What's your name?"}]},
                {"role": "model", "parts": [{"text": "Capitan Barktholomew."}]},
            ],
        }
    ],
    "bedrock-claude": [
        {
            "system": "You are a helpful assistant.",
            "messages": [
                {"role": "user", "content": "user message"},
                {"role": "assistant", "content": "assistant response"},
            ],
        },
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
    ],
}


@pytest.mark.parametrize(("fmt", "obj"), [(f, o) for f, objs in DOCUMENTED.items() for o in objs])
def test_documented_examples_are_accepted(fmt: str, obj: dict) -> None:
    ex = get_format(fmt).parse(obj, TPL)  # type: ignore[misc]
    assert ex.turns[-1][0] == "assistant" and ex.assistant


def test_legacy_completion_with_its_documented_markers() -> None:
    tpl = make_templates(["yellow"], system_prompt="", completion_separator=" ->", completion_stop="\n")
    ex = get_format("openai-completion").parse({"prompt": "banana ->", "completion": " yellow\n"}, tpl)  # type: ignore[misc]
    assert ex == Example.single(None, "banana", "yellow")


def _chat(*msgs: tuple[str, str]) -> dict:
    return {"messages": [{"role": r, "content": c} for r, c in msgs]}


BAD = [
    ("openai-chat", [1, 2], "expected a JSON object"),
    ("openai-chat", {"msgs": []}, "unknown key 'msgs'"),
    ("openai-chat", _chat(("user", "hi")), "no assistant message"),
    ("openai-chat", _chat(("user", "hi"), ("assistant", "a"), ("user", "again")), "last message must be 'assistant'"),
    ("openai-chat", _chat(("robot", "hi"), ("assistant", "a")), "unrecognised role 'robot'"),
    ("openai-chat", _chat(("user", "  "), ("assistant", "a")), "message 1: content is empty"),
    ("openai-chat", {"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}, "missing key 'content'"),
    (
        "openai-chat",
        {"messages": [{"role": "user", "content": "q", "extra": 1}, {"role": "assistant", "content": "a"}]},
        "unknown key 'extra'",
    ),
    (
        "openai-chat",
        {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]},
        "must be a string",
    ),
    ("openai-chat", {"messages": []}, "'messages' is empty"),
    ("hf-messages", _chat(("user", "q"), ("system", "s"), ("assistant", "a")), "system message may only come first"),
    ("hf-messages", _chat(("user", "q"), ("user", "q2"), ("assistant", "a")), "roles must alternate"),
    (
        "hf-messages",
        {"messages": [{"role": "user", "content": "q", "name": "x"}, {"role": "assistant", "content": "a"}]},
        "unknown key 'name'",
    ),
    ("alpaca", {"instruction": "i", "output": "o"}, "missing key 'input'"),
    ("alpaca", {"instruction": "i", "input": "", "output": ""}, "'output' is empty"),
    ("alpaca", {"instruction": "i", "input": "", "output": "o", "history": []}, "unknown key 'history'"),
    (
        "vertex-gemini",
        {"contents": [{"role": "assistant", "parts": [{"text": "a"}]}]},
        "role must be one of model, user",
    ),
    ("vertex-gemini", {"contents": [{"role": "user", "parts": [{"text": "q"}]}]}, "last message must be 'assistant'"),
    (
        "vertex-gemini",
        {"contents": [{"role": "user", "parts": []}, {"role": "model", "parts": [{"text": "a"}]}]},
        "'parts' is empty",
    ),
    ("vertex-gemini", {"messages": []}, "unknown key 'messages'"),
    (
        "vertex-gemini",
        {"contents": [{"role": "user", "parts": [{"txt": "q"}]}, {"role": "model", "parts": [{"text": "a"}]}]},
        "unknown key 'txt'",
    ),
    ("bedrock-claude", {"messages": [{"role": "user", "content": "q"}]}, "at least two messages"),
    (
        "bedrock-claude",
        {"system": "s", "messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]},
        "first message must be 'user'",
    ),
    (
        "bedrock-claude",
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "id": 1},
        "unknown key 'id'",
    ),
    (
        "bedrock-claude",
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a"},
            ]
        },
        "role must be 'user' or 'assistant'",
    ),
    ("openai-completion", {"prompt": "q", "completion": " a END"}, "does not end with the separator"),
    ("openai-completion", {"prompt": "q\n\n###\n\n", "completion": "a END"}, "must start with a space"),
    ("openai-completion", {"prompt": "q\n\n###\n\n", "completion": " a"}, "stop sequence"),
    (
        "openai-completion",
        {"prompt": "x\n\n###\n\ny\n\n###\n\n", "completion": " a END"},
        "also appears inside the prompt",
    ),
]


@pytest.mark.parametrize(("fmt", "obj", "match"), BAD)
def test_schema_violations_are_refused(fmt: str, obj: object, match: str) -> None:
    with pytest.raises(FormatViolation, match=match):
        get_format(fmt).parse(obj, TPL)  # type: ignore[misc]


def test_format_names_are_checked() -> None:
    assert parse_formats("openai-chat, alpaca,openai-chat") == ["openai-chat", "alpaca"]
    assert get_format("csv").file_name("all") == "cleaned.csv"
    assert get_format("alpaca").file_name("val") == "val.alpaca.jsonl"
    with pytest.raises(ConfigError, match="unknown export format 'gpt'; available: openai-chat"):
        parse_formats("gpt")
    with pytest.raises(ConfigError, match="no export format"):
        parse_formats(" , ")
