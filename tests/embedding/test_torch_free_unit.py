"""The unit layer of labelgate.embedding's torch-free path: the bf16 probe answers from the CPU flags where it can,
and a standalone tokenizer file that is missing or damaged is no tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelgate.embedding import standalone
from labelgate.embedding.backends import cpu_flags_rule_out_bf16

pytestmark = pytest.mark.unit

AMD_AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse sse2 avx avx2 fma\n"


# --- the bf16 probe from /proc/cpuinfo (no model) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("cpuinfo", "ruled_out"),
    [
        (AMD_AVX2, True),  # x86 with none of the flags oneDNN's bf16 needs: torch would say no
        (AMD_AVX2.replace("avx2", "avx2 avx512f avx512bw avx512vl"), False),  # AVX-512: ask torch
        (AMD_AVX2.replace("avx2", "avx2 amx_bf16 amx_tile"), False),  # AMX: ask torch
        (AMD_AVX2.replace("avx2", "avx2 avx_ne_convert"), False),
        ("processor\t: 0\nFeatures\t: fp asimd evtstrm\n", False),  # not x86: cannot tell, ask torch
        ("", False),
    ],
)
def test_cpu_flags_rule_out_bf16_only_on_x86_without_any_needed_flag(cpuinfo: str, ruled_out: bool) -> None:
    assert cpu_flags_rule_out_bf16(cpuinfo) is ruled_out


def test_a_missing_or_damaged_tokenizer_file_is_none(tmp_path: Path) -> None:
    assert standalone.load_tokenizer(tmp_path / "none.tokenizer.json") is None
    damaged = tmp_path / "x.tokenizer.json"
    damaged.write_text("{not json")
    assert standalone.load_tokenizer(damaged) is None
    from importlib import metadata

    name = standalone.tokenizer_file(tmp_path / "m-abc-onnx.onnx").name
    assert name == f"m-abc-onnx.tokenizers-{metadata.version('tokenizers')}.json"  # a new version checks anew
