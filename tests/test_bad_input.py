"""Bad input: every file of tests/corpus/ (and a few generated ones) ends in a clear one-line error or a run
whose bad rows are quarantined with reasons; never a traceback; always ``rows_in == rows_valid + rows_quarantined``.

Three levels, each the real code path:

- every case through the ingest and validate tasks (their bodies, ``.fn``) on a real DuckDB file, with the
  stored rows, quarantine and metrics checked against the expected outcome (:data:`CASES`, mirrored by the
  table in ``tests/corpus/README.md``);
- a handful through ``labelgate run`` in-process (click's CliRunner, the whole Prefect flow);
- two through a real ``python -m labelgate.cli run`` process (slow), checking stderr for tracebacks.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from labelgate import store
from labelgate.config import CurateParams
from labelgate.errors import InputError, LabelgateError, MissingColumnError, ValidationError
from labelgate.tasks.ingest import ingest
from labelgate.tasks.run import start_run
from labelgate.tasks.validate import validate

pytestmark = pytest.mark.flow

CORPUS = Path(__file__).resolve().parent / "corpus"
README = CORPUS / "README.md"


#: CurateParams fields whose CLI option has another name
_OPTION = {"n_folds": "folds"}


@dataclass(frozen=True)
class Case:
    """One input and its expected outcome: an error (``error`` and message parts) or a run (counts, reasons)."""

    file: str
    options: dict = field(default_factory=dict)  # CurateParams fields (the CLI options of the same name)
    error: type[LabelgateError] | None = None
    message: tuple[str, ...] = ()  # parts of the one-line message: the problem and the fix
    rows_in: int | None = None
    rows_valid: int | None = None
    reasons: dict[str, int] = field(default_factory=dict)  # reason substring -> number of quarantined rows
    classes: tuple[str, ...] | None = None  # the labels of the valid rows

    @property
    def id(self) -> str:
        opts = " ".join(f"--{_OPTION.get(k, k).replace('_', '-')}={v}" for k, v in self.options.items())
        return f"{self.file} {opts}".strip()

    def outcome(self) -> str:
        """The expected outcome in words (the README table's right column)."""
        if self.error is not None:
            return f"error ({self.error.__name__}): " + " … ".join(f"`{m}`" for m in self.message)
        quarantined = self.rows_in - self.rows_valid
        text = f"run: {self.rows_in} in, {self.rows_valid} valid, {quarantined} quarantined"
        if self.reasons:
            text += " (" + "; ".join(f"{n}× `{r}`" for r, n in self.reasons.items()) + ")"
        return text


def _run(file: str, rows_in: int, rows_valid: int, reasons: dict[str, int] | None = None, **kw) -> Case:
    return Case(file, rows_in=rows_in, rows_valid=rows_valid, reasons=reasons or {}, **kw)


def _err(file: str, error: type[LabelgateError], *message: str, **kw) -> Case:
    return Case(file, error=error, message=message, **kw)


BILLING_TECH = ("billing", "technical")

#: what each input is (the README table's middle column); 16 support tickets, 8 billing / 8 technical, are the base
WHAT = {
    "empty.csv": "0 bytes",
    "whitespace_only.csv": "spaces, tabs and blank lines only",
    "header_only.csv": "a header line and nothing else",
    "missing_label_column.csv": "the label column is called `category`",
    "missing_keys.jsonl": "JSONL whose text key is `body`",
    "wrong_delimiter.csv": "`;`-separated with a .csv name",
    "tab_separated.csv": "tab-separated with a .csv name",
    "latin1.csv": "Latin-1 bytes (`café`) in a file read as UTF-8",
    "utf16.csv": "UTF-16 with a byte-order mark",
    "utf16le_nobom.csv": "UTF-16-LE without a byte-order mark (a NUL after every ASCII byte)",
    "nul_bytes.csv": "one raw NUL byte inside a text",
    "binary_nul.csv": "NUL bytes on every data line (a binary file named .csv)",
    "unterminated_quote.csv": "a quoted field whose closing quote is missing",
    "quote_after_close.csv": 'text after a closing quote (`"Quoted"then more`)',
    "duplicate_header.csv": "the header names `label` twice",
    "json_array.json": "a pretty-printed JSON array instead of JSON Lines",
    "all_broken.jsonl": "no line is a JSON object",
    "not_parquet.parquet": "CSV text with a .parquet name",
    "unknown_extension.txt": "CSV with a .txt name",
    "one_class.csv": "every row labelled `billing`",
    "too_few_rows.csv": "4 rows, 2 per class",
    "blank_texts.csv": 'texts `""`, spaces, and tab + NBSP',
    "null_labels.csv": "two empty labels and one of spaces only",
    "label_variants.csv": "`billing` with padding, a tab, `Billing` and `TECHNICAL`",
    "duplicate_ids.csv": "an id column with two repeated ids and one empty id",
    "broken_lines.jsonl": "a cut-off line, a JSON array line, a record without `label`, a blank line",
    "chat_no_assistant.jsonl": "chat lines without assistant (twice), without user, and a prompt/completion line",
    "nested_values.jsonl": "a list label (multi-label) and an object text",
    "ragged_rows.csv": "a row with 3 fields and one with 1",
    "repeated_header.csv": "two CSV files concatenated (second header with a BOM mid-file)",
    "singleton_class.csv": "a third class with one example",
    "html_script.csv": "`<script>`, `onerror=`, entities, template syntax in texts",
    "sql_labels.csv": "labels `'); DROP TABLE rows; --` and `x\" OR 1=1; DELETE FROM runs; --`",
    "bom.csv": "UTF-8 byte-order mark before the header",
    "crlf_multiline.csv": "CRLF line ends and quoted fields spanning lines",
    "cr_only.csv": "old-Mac CR-only line ends",
    "numeric_labels.csv": "labels `0` / `1`",
    "numeric_labels.jsonl": 'labels `1`, `1.0`, `2`, `"2"` (numbers and strings)',
    "nul_escape.jsonl": "JSON-escaped NUL and BEL characters inside a text",
    "unicode_texts.csv": "emoji, Arabic, zero-width and combining marks, U+2028/U+2029, an all-whitespace text",
    "stray_quotes.csv": 'quotes inside unquoted fields (`He said "refund me"`)',
    "big_text.csv": "*generated*: one 3.6 MB text among 16 rows",
    "big_text.jsonl": "*generated*: one 3.6 MB text among 16 rows",
    "truncated.parquet": "*generated*: a Parquet file cut in half",
    "bitflip.parquet": "*generated*: a Parquet file with its column data inverted",
    "typed.parquet": "*generated*: int ids and labels, binary texts, a null text and a null label",
}

#: every committed corpus file (some twice: as it is, and with the fix its error message names)
CASES: list[Case] = [
    _err("empty.csv", InputError, "is empty"),
    _err("whitespace_only.csv", InputError, "is empty"),
    _err("header_only.csv", InputError, "no data rows (only a header line)"),
    _err("missing_label_column.csv", MissingColumnError, "label column 'label' not found", "'category'", "--label-col"),
    _run("missing_label_column.csv", 16, 16, options={"label_col": "category"}, classes=BILLING_TECH),
    _err("missing_keys.jsonl", MissingColumnError, "text column 'text' not found", "'body'", "--text-col"),
    _run("missing_keys.jsonl", 16, 16, options={"text_col": "body"}),
    _err("wrong_delimiter.csv", MissingColumnError, "'text;label'", "--delimiter ';'"),
    _run("wrong_delimiter.csv", 16, 16, options={"delimiter": ";"}, classes=BILLING_TECH),
    _err("tab_separated.csv", MissingColumnError, "'text\\tlabel'", "--input-format tsv"),
    _run("tab_separated.csv", 16, 16, options={"input_format": "tsv"}),
    _err("latin1.csv", InputError, "not valid utf-8 at byte 367 (line 8", "--encoding"),
    _run("latin1.csv", 17, 17, options={"encoding": "latin-1"}),
    _err("utf16.csv", InputError, "UTF-16 byte-order mark", "--encoding utf-16"),
    _run("utf16.csv", 16, 16, options={"encoding": "utf-16"}, classes=BILLING_TECH),
    _err("utf16le_nobom.csv", InputError, "NUL byte at line 1", "--encoding utf-16-le"),
    _run("utf16le_nobom.csv", 16, 16, options={"encoding": "utf-16-le"}),
    _run("nul_bytes.csv", 17, 16, {"contains a NUL byte": 1}, classes=BILLING_TECH),
    _err("binary_nul.csv", InputError, "NUL byte at line 2", "remove the NUL bytes"),
    _err("unterminated_quote.csv", InputError, "line 8: unterminated quoted field", 'two quotes ("")'),
    _err("quote_after_close.csv", InputError, "line 8: malformed CSV", 'two quotes ("")'),
    _err("duplicate_header.csv", InputError, "column 'label' appears 2 times", "rename the copies"),
    _err("json_array.json", InputError, "none of the 66 lines", "one JSON array", "one JSON object per line"),
    _err("all_broken.jsonl", InputError, "none of the 4 lines", "invalid JSON", "one JSON object"),
    _err("not_parquet.parquet", InputError, "cannot read", "as Parquet", "--input-format"),
    _err("unknown_extension.txt", InputError, "extension '.txt'", "--input-format"),
    _run("unknown_extension.txt", 16, 16, options={"input_format": "csv"}),
    _err("one_class.csv", ValidationError, "only 1 class remains", "at least 2 classes"),
    _err("too_few_rows.csv", ValidationError, "no valid rows", "class with fewer than 5 valid rows", "--folds"),
    _run("too_few_rows.csv", 4, 4, options={"n_folds": 2}),
    _run("blank_texts.csv", 19, 16, {"text is blank": 3}, classes=BILLING_TECH),
    _run("null_labels.csv", 19, 16, {"label is missing": 3}, classes=BILLING_TECH),
    _run(
        "label_variants.csv",
        19,
        17,
        {"class 'Billing' has only 1 valid rows": 1, "class 'TECHNICAL' has only 1 valid rows": 1},
        classes=BILLING_TECH,
    ),
    _run("label_variants.csv", 19, 19, options={"label_case": "lower"}, classes=BILLING_TECH),
    _run(
        "duplicate_ids.csv",
        19,
        17,
        {"duplicate id 't02' (first at line 4)": 1, "duplicate id 't07' (first at line 10)": 1},
    ),
    _run(
        "broken_lines.jsonl",
        19,
        16,
        {"invalid JSON": 1, "expected a JSON object, got list": 1, "missing key 'label'": 1},
        classes=BILLING_TECH,
    ),
    _run(
        "chat_no_assistant.jsonl",
        20,
        16,
        {"no assistant message": 2, "no user message": 1, "no 'messages' list": 1},
        classes=BILLING_TECH,
    ),
    _run("nested_values.jsonl", 18, 16, {"label is a list": 1, "text is a JSON object": 1}),
    _run("ragged_rows.csv", 18, 16, {"has 3 fields, the header has 2": 1, "has 1 field, the header has 2": 1}),
    _run("repeated_header.csv", 17, 16, {"repeats the header line": 1}, classes=BILLING_TECH),
    _run("singleton_class.csv", 17, 16, {"class 'account' has only 1 valid rows; at least 5 are needed": 1}),
    _run("html_script.csv", 21, 21, classes=BILLING_TECH),
    _run("sql_labels.csv", 17, 17, classes=("'); DROP TABLE rows; --", 'x" OR 1=1; DELETE FROM runs; --')),
    _run("bom.csv", 16, 16, classes=BILLING_TECH),
    _run("crlf_multiline.csv", 16, 16, classes=BILLING_TECH),
    _run("cr_only.csv", 16, 16, classes=BILLING_TECH),
    _run("numeric_labels.csv", 16, 16, classes=("0", "1")),
    _run("numeric_labels.jsonl", 16, 16, classes=("1", "2")),
    _run("nul_escape.jsonl", 16, 16),
    _run("unicode_texts.csv", 21, 20, {"text is blank": 1}),
    _run("stray_quotes.csv", 18, 18),
]

# --- inputs generated at test time (too large to commit, or binary) ----------------------------------------------

BIG = "lorem ipsum dolor " * 200_000  # 3.6 MB of text in one field


def _base_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((CORPUS / "bom.csv").read_text(encoding="utf-8-sig"))))


def _make_big_csv(path: Path) -> None:
    rows = [*_base_rows()[:5], {"text": BIG, "label": "billing"}, *_base_rows()[5:]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["text", "label"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _make_big_jsonl(path: Path) -> None:
    rows = [*_base_rows(), {"text": BIG, "label": "technical"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _parquet_bytes() -> bytes:
    buf = io.BytesIO()
    pd.DataFrame(_base_rows()).to_parquet(buf)
    return buf.getvalue()


def _make_truncated_parquet(path: Path) -> None:
    data = _parquet_bytes()
    path.write_bytes(data[: len(data) // 2])


def _make_bitflip_parquet(path: Path) -> None:
    data = bytearray(_parquet_bytes())
    for i in range(100, 400):  # the column chunks; the footer (schema, offsets) stays intact
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _make_typed_parquet(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = _base_rows()
    texts = [r["text"].encode("utf-8") for r in base] + [None, b"A text whose label is null."]
    labels = [0 if r["label"] == "billing" else 1 for r in base] + [1, None]
    table = pa.table(
        {
            "id": pa.array(range(100, 100 + len(texts)), pa.int64()),
            "text": pa.array(texts, pa.binary()),  # some writers store strings as binary
            "label": pa.array(labels, pa.int64()),
        }
    )
    pq.write_table(table, path)


GENERATED = {
    "big_text.csv": _make_big_csv,
    "big_text.jsonl": _make_big_jsonl,
    "truncated.parquet": _make_truncated_parquet,
    "bitflip.parquet": _make_bitflip_parquet,
    "typed.parquet": _make_typed_parquet,
}

GENERATED_CASES: list[Case] = [
    _run("big_text.csv", 17, 16, {"text longer than 20000 characters (got 3599999)": 1}, classes=BILLING_TECH),
    _run("big_text.jsonl", 17, 16, {"text longer than 20000 characters (got 3599999)": 1}, classes=BILLING_TECH),
    _err("truncated.parquet", InputError, "as Parquet", "truncated or damaged"),
    _err("bitflip.parquet", InputError, "as Parquet", "re-export the file"),
    _run("typed.parquet", 18, 16, {"text is missing": 1, "label is missing": 1}, classes=("0", "1")),
]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("generated-corpus")
    for name, make in GENERATED.items():
        make(folder / name)
    return folder


def _path(case: Case, generated: Path) -> Path:
    return generated / case.file if case.file in GENERATED else CORPUS / case.file


# --- level 1: ingest + validate tasks on a real DuckDB file ----------------------------------------------------


def run_stages(path: Path, db: Path, options: dict) -> tuple[str, dict | LabelgateError]:
    """Start a run and run the ingest and validate tasks' bodies; return (run_id, metrics or the error raised)."""
    params = CurateParams(**options)
    run_id = start_run.fn(str(db), str(path), params)
    metrics: dict = {}
    try:
        metrics.update(ingest.fn(str(db), run_id, str(path), params).to_json())
        metrics.update(validate.fn(str(db), run_id, params).to_json())
    except LabelgateError as err:
        return run_id, err
    return run_id, metrics


def assert_one_line_error(err: LabelgateError, case: Case) -> None:
    assert isinstance(err, case.error), f"{type(err).__name__}: {err}"
    message = str(err)
    assert "\n" not in message and "Traceback" not in message
    for part in case.message:
        assert part in message, f"{part!r} not in {message!r}"


def assert_reconciled(db: Path, run_id: str, metrics: dict, case: Case) -> None:
    """The stored rows, quarantine and metrics agree with each other and with the case."""
    with store.connect(db, read_only=True) as con:
        n_rows = store.scalar(con, "SELECT count(*) FROM rows WHERE run_id = ?", [run_id])
        n_valid = store.scalar(con, "SELECT count(*) FROM valid_rows WHERE run_id = ?", [run_id])
        quarantine = store.query_df(con, "SELECT seq, reason FROM quarantine WHERE run_id = ?", [run_id])
        labels = {
            r[0] for r in con.execute("SELECT DISTINCT label FROM valid_rows WHERE run_id = ?", [run_id]).fetchall()
        }
    assert metrics["rows_in"] == metrics["rows_valid"] + metrics["rows_quarantined"]
    assert (n_rows, n_valid, len(quarantine)) == (
        metrics["rows_in"],
        metrics["rows_valid"],
        metrics["rows_quarantined"],
    )
    assert quarantine["seq"].is_unique
    assert (metrics["rows_in"], metrics["rows_valid"]) == (case.rows_in, case.rows_valid), list(quarantine["reason"])
    for part, count in case.reasons.items():
        assert sum(part in r for r in quarantine["reason"]) == count, (part, list(quarantine["reason"]))
    assert all(r.strip() for r in quarantine["reason"])
    if case.classes is not None:
        assert labels == set(case.classes)


ALL_CASES = CASES + GENERATED_CASES


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_each_input_ends_in_a_clear_error_or_a_reconciled_run(case: Case, generated: Path, tmp_path: Path) -> None:
    db = tmp_path / "bad.duckdb"
    run_id, outcome = run_stages(_path(case, generated), db, case.options)
    if case.error is not None:
        assert isinstance(outcome, LabelgateError), f"expected {case.error.__name__}, the run went on: {outcome}"
        assert_one_line_error(outcome, case)
    else:
        assert not isinstance(outcome, LabelgateError), f"{type(outcome).__name__}: {outcome}"
        assert_reconciled(db, run_id, outcome, case)


def _csv_records(name: str, **fmt: str) -> list[tuple[str, str]]:
    """The (text, label) pairs as Python's csv module reads the file: the reference for 'stored verbatim'."""
    raw = (CORPUS / name).read_bytes().decode("utf-8-sig")  # no newline translation: CRLF stays CRLF
    return [(r["text"], r["label"]) for r in csv.DictReader(io.StringIO(raw, newline=""), **fmt)]


@pytest.mark.parametrize("name", ["html_script.csv", "sql_labels.csv", "crlf_multiline.csv", "unicode_texts.csv"])
def test_tricky_texts_and_labels_are_stored_verbatim(name: str, tmp_path: Path) -> None:
    """Markup, SQL-looking labels, CRLF inside fields and unusual unicode are data: stored byte for byte."""
    db = tmp_path / "v.duckdb"
    run_id, metrics = run_stages(CORPUS / name, db, {})
    assert not isinstance(metrics, LabelgateError)
    with store.connect(db, read_only=True) as con:
        stored = con.execute("SELECT text, label_raw FROM rows WHERE run_id = ? ORDER BY seq", [run_id]).fetchall()
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        n_runs = store.scalar(con, "SELECT count(*) FROM runs")
    assert stored == _csv_records(name)
    assert {"rows", "runs", "embeddings", "quarantine"} <= tables and n_runs == 1  # nothing was executed as SQL


def test_crlf_multiline_records_keep_their_starting_line(tmp_path: Path) -> None:
    from labelgate.readers import read_dataset

    rows = read_dataset(CORPUS / "crlf_multiline.csv").rows
    raw = (CORPUS / "crlf_multiline.csv").read_bytes().decode()
    expected, line = [], 2
    for text, _ in _csv_records("crlf_multiline.csv"):
        expected.append(line)
        line += text.count("\r\n") + 1
    assert list(rows["source_line"]) == expected
    assert raw.count("\r\n") == line - 1  # every line ends in CRLF


def test_every_corpus_file_has_an_expected_outcome_and_a_readme_row() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "README.md"}
    covered = {c.file for c in CASES}
    assert files == covered, f"without a case: {files - covered}; missing files: {covered - files}"
    assert len(files) + len(GENERATED) >= 20
    readme = README.read_text(encoding="utf-8")
    for case in ALL_CASES:
        row = f"| `{case.id}` | {WHAT[case.file]} | {case.outcome()} |"
        assert row in readme, f"README row of {case.id} is missing or stale; expected {row}"


# --- level 2: the CLI in-process (the whole Prefect flow) ------------------------------------------------------

CLI_CASES = [
    c
    for c in ALL_CASES
    if (c.file, bool(c.options))
    in {
        ("wrong_delimiter.csv", False),
        ("json_array.json", False),
        ("one_class.csv", False),
        ("truncated.parquet", False),
        ("sql_labels.csv", False),
        ("broken_lines.jsonl", False),
        ("big_text.csv", False),
        ("label_variants.csv", True),
    }
]


@pytest.fixture(scope="module")
def cli_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database for the CLI cases: their texts overlap, so later runs reuse the embedding cache."""
    return tmp_path_factory.mktemp("cli-bad") / "cli.duckdb"


def _cli_args(case: Case) -> list[str]:
    args = []
    for key, value in case.options.items():
        option = _OPTION.get(key, key).replace("_", "-")
        args += [f"--{option}", str(value)]
    return args


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli_run_in_process(case: Case, generated: Path, cli_db: Path, tmp_path: Path, prefect_harness: None) -> None:
    from click.testing import CliRunner

    from labelgate.cli import main

    path = _path(case, generated)
    args = ["run", str(path), "--db", str(cli_db), "--out", str(tmp_path / "out"), "--json", *_cli_args(case)]
    res = CliRunner().invoke(main, args)
    assert "Traceback" not in res.output
    if case.error is not None:
        assert res.exit_code == 2, res.output
        errors = [line for line in res.stderr.splitlines() if line.startswith("labelgate: error:")]
        assert len(errors) == 1, res.stderr
        for part in case.message:
            assert part in errors[0]
        # the CLI's pre-flight check finds wrong columns, unknown formats and one-class files before any run
        # starts (no Prefect, no model); whatever it cannot decide reaches the flow, which records a failed run
        if cli_db.exists():
            with store.connect(cli_db, read_only=True) as con:
                found = con.execute(
                    "SELECT status, message FROM runs WHERE input_path = ? ORDER BY started_at DESC LIMIT 1",
                    [str(path.resolve())],
                ).fetchall()
        else:
            found = []
        if case.file in ("wrong_delimiter.csv", "one_class.csv"):
            assert found == [], found
        elif case.error is ValidationError:
            status, message = found[0]
            assert status == "failed" and case.message[0] in message
        return
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["rows_in"] == summary["rows_valid"] + summary["rows_quarantined"]
    assert (summary["rows_in"], summary["rows_valid"]) == (case.rows_in, case.rows_valid)
    assert summary["exported_train"] + summary["exported_val"] <= summary["rows_valid"]
    assert all(Path(f).exists() for f in summary["export_files"])
    if case.file == "sql_labels.csv":  # the labels reach the fine-tuning file unchanged
        answers = set()
        for f in summary["export_files"]:
            if f.endswith(".jsonl"):
                for line in Path(f).read_text(encoding="utf-8").splitlines():
                    answers.add(json.loads(line)["messages"][-1]["content"])
        assert answers <= set(case.classes) and answers
    if case.file == "big_text.csv":  # the 3.6 MB text was quarantined before embedding
        assert summary["texts_embedded"] + summary["texts_cached"] == case.rows_valid


# --- level 3: a real process ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_real_process_never_shows_a_traceback(tmp_path: Path) -> None:
    """Two inputs through `python -m labelgate.cli run`, side by side: one fails, one runs with quarantine."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)  # the test harness's API belongs to the pytest process
    env.pop("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", None)  # set by conftest; a user's shell does not have it
    exe = [sys.executable, "-m", "labelgate.cli", "run"]
    procs = {
        name: subprocess.Popen(
            [
                *exe,
                str(CORPUS / name),
                "--db",
                str(tmp_path / f"{name}.duckdb"),
                "--out",
                str(tmp_path / "o"),
                "--json",
            ],
            env={**env, "PREFECT_HOME": str(tmp_path / f"prefect-{name}")},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("binary_nul.csv", "chat_no_assistant.jsonl")
    }
    out = {name: p.communicate(timeout=600) for name, p in procs.items()}

    stdout, stderr = out["binary_nul.csv"]
    assert procs["binary_nul.csv"].returncode == 2
    assert "Traceback" not in stdout + stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("labelgate: error: ") and "NUL byte at line 2" in last and "remove the NUL bytes" in last

    stdout, stderr = out["chat_no_assistant.jsonl"]
    assert procs["chat_no_assistant.jsonl"].returncode == 0, stderr[-2000:]
    assert "Traceback" not in stdout + stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert (summary["rows_in"], summary["rows_valid"], summary["rows_quarantined"]) == (20, 16, 4)
