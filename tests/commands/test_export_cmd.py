"""`labelgate export` from the command line: formats, templates, JSON output, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import copy_db

from labelgate.cli import main

pytestmark = pytest.mark.flow


def test_export_writes_the_requested_formats(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    out = tmp_path / "out"
    args = ["export", "--db", db, "--out", str(out), "--format", "alpaca,bedrock-claude,csv"]
    res = CliRunner().invoke(main, [*args, "--label-map", "billing=Billing,account=Account", "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output.strip().splitlines()[-1])
    assert result["run_id"] == warm_run["run_id"] and result["export_formats"] == ["alpaca", "bedrock-claude", "csv"]
    names = sorted(Path(p).name for p in result["export_files"])
    assert names == [
        "cleaned.csv",
        "train.alpaca.jsonl",
        "train.bedrock-claude.jsonl",
        "val.alpaca.jsonl",
        "val.bedrock-claude.jsonl",
    ]
    answers = {json.loads(line)["output"] for line in (out / warm_run["run_id"] / "train.alpaca.jsonl").open()}
    assert answers == {"Billing", "Account", "shipping", "technical"}
    manifest = json.loads(Path(result["manifest"]).read_text())
    assert manifest["templates"]["label_map"] == {"billing": "Billing", "account": "Account"}

    res = CliRunner().invoke(
        main, ["export", "--db", db, "--out", str(out), "--system-prompt", "", "--user-template", "Ticket: {text}"]
    )
    assert res.exit_code == 0, res.output
    assert "exported train" in res.output and "token counts are estimates (cl100k_base)" in res.output
    assert "export version 2 (earlier exports untouched)" in res.output
    assert not (out / warm_run["run_id"] / "train.openai-chat.jsonl").exists()  # the first export is as it was
    first = json.loads((out / f"{warm_run['run_id']}-v2" / "train.openai-chat.jsonl").open().readline())
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["messages"][0]["content"].startswith("Ticket: ")


def test_export_errors_are_one_line(warm_run: dict, tmp_path: Path) -> None:
    db = copy_db(warm_run, tmp_path)
    cases = [
        (["--format", "gpt4"], "unknown export format 'gpt4'"),
        (["--label-map", "billing"], "--label-map: expected LABEL=ANSWER"),
        (["--user-template", "no text"], "user template must contain {text}"),
        (["--max-tokens", "8"], "train.openai-chat.jsonl failed the openai-chat checks: line 1: about"),
    ]
    for extra, message in cases:
        res = CliRunner().invoke(main, ["export", "--db", db, "--out", str(tmp_path / "o"), *extra])
        assert res.exit_code == 2, res.output
        assert message in res.output and "Traceback" not in res.output
        assert len(res.output.strip().splitlines()) == 1
