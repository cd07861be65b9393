"""Which sentence-transformers pipelines the one-pass forward reproduces (fake modules: no model, no torch)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from labelgate.embedding.forward import one_pass_problem

pytestmark = pytest.mark.unit


def _module(name: str, **attrs):
    return type(name, (), attrs)()


def test_one_pass_needs_a_transformer_first_module_with_the_plain_text_forward():
    text = {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}
    plain = [_module("Transformer", auto_model=SimpleNamespace(), modality_config=text), _module("Pooling")]
    assert one_pass_problem(plain) is None
    assert one_pass_problem([_module("Transformer", auto_model=SimpleNamespace())]) is None  # older: no config
    assert "StaticEmbedding" in (one_pass_problem([_module("StaticEmbedding")]) or "")
    other = {"text": {"method": "get_text_features", "method_output_name": None}}
    problem = one_pass_problem([_module("Transformer", auto_model=SimpleNamespace(), modality_config=other)])
    assert problem is not None and "get_text_features" in problem
