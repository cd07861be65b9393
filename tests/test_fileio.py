"""Atomic writes: the target holds the old or the new content, never a mix, and no temp file is left."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelgate.fileio import atomic_write_bytes

pytestmark = pytest.mark.unit


def test_atomic_write_creates_and_replaces_without_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.jsonl"
    atomic_write_bytes(target, b"one\n")
    atomic_write_bytes(target, b"two\n")
    assert target.read_bytes() == b"two\n"
    assert [p.name for p in target.parent.iterdir()] == ["f.jsonl"]


def test_a_failed_write_keeps_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "f.jsonl"
    atomic_write_bytes(target, b"old\n")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.jsonl"]
