"""A folder or glob of batch files read as one input: which files, in which order, and what disagrees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelgate.batches import batch_dataset_name, input_files, is_batch_input
from labelgate.core.ingest_settings import IngestSettings
from labelgate.errors import InputError, MissingColumnError
from labelgate.preflight import PreflightError, check_run_input
from labelgate.readers import read_dataset

pytestmark = pytest.mark.unit


def _csv(path: Path, rows: list[tuple[str, ...]], header: str = "id,text,label") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    """Three batches written out of name order, a README and a hidden file that are not data."""
    folder = tmp_path / "incoming"
    _csv(folder / "batch-02.csv", [("b1", "where is my parcel", "shipping"), ("b2", "card declined", "billing")])
    _csv(folder / "batch-10.csv", [("c1", "reset my password", "account")])
    _csv(folder / "batch-01.csv", [("a1", "refund please", "billing"), ("a2", "app crashes", "technical")])
    (folder / "README.txt").write_text("nightly batches\n", encoding="utf-8")
    _csv(folder / ".batch-00.csv", [("h1", "half written", "billing")])
    return folder


def test_a_folder_is_its_data_files_in_name_order(incoming: Path) -> None:
    names = [p.name for p in input_files(incoming)]
    assert names == ["batch-01.csv", "batch-02.csv", "batch-10.csv"]
    assert is_batch_input(incoming) and is_batch_input(f"{incoming}/*.csv")
    assert not is_batch_input(incoming / "batch-01.csv")


def test_a_folder_reads_as_one_input_with_the_file_of_each_row(incoming: Path) -> None:
    result = read_dataset(incoming)
    rows = result.rows
    assert list(rows["row_id"]) == ["a1", "a2", "b1", "b2", "c1"]
    assert list(rows["seq"]) == [0, 1, 2, 3, 4]
    assert list(rows["source_line"]) == [2, 3, 2, 3, 2]  # the line in the row's own file
    assert [(Path(f["path"]).name, f["rows"], f["first_seq"]) for f in result.input_files] == [
        ("batch-01.csv", 2, 0),
        ("batch-02.csv", 2, 2),
        ("batch-10.csv", 1, 4),
    ]
    assert result.input_format == "csv" and result.id_source == "id"
    assert "read 3 files" in result.notes[0] and "batch-02.csv (2)" in result.notes[0]
    # the same rows in one file: the same dataset version (content, not files)
    one = _csv(incoming.parent / "one.csv", [(r.row_id, r.text, r.label) for r in rows.itertuples()])
    single = read_dataset(one)
    assert single.dataset_version == result.dataset_version and single.input_files == []
    assert result.input_sha256 != single.input_sha256


def test_a_glob_reads_only_what_it_matches_and_its_order(incoming: Path) -> None:
    result = read_dataset(f"{incoming}/batch-0*.csv")
    assert list(result.rows["row_id"]) == ["a1", "a2", "b1", "b2"]
    assert len(result.input_files) == 2


def test_content_hash_ids_count_repeats_across_files(tmp_path: Path) -> None:
    _csv(tmp_path / "in" / "1.csv", [("same text", "billing"), ("other", "account")], header="text,label")
    _csv(tmp_path / "in" / "2.csv", [("same text", "billing")], header="text,label")
    result = read_dataset(tmp_path / "in")
    ids = list(result.rows["row_id"])
    assert result.id_source == "content-hash"
    assert ids[2] == f"{ids[0]}~2" and len(set(ids)) == 3  # what one file with these rows would give
    both = _csv(
        tmp_path / "both.csv",
        [("same text", "billing"), ("other", "account"), ("same text", "billing")],
        header="text,label",
    )
    assert list(read_dataset(both).rows["row_id"]) == ids


def test_quarantined_records_name_their_file(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "hi", "label": "x"}\n', encoding="utf-8")
    (folder / "b.jsonl").write_text('{"text": "yo", "label": "y"}\n{broken\n', encoding="utf-8")
    result = read_dataset(folder)
    (q,) = result.quarantine.itertuples()
    assert q.seq == 2 and q.source_line == 2 and q.reason.startswith("b.jsonl: invalid JSON")
    assert result.rows.loc[result.rows["seq"] == 2, "row_id"].item() == q.row_id
    assert result.reason_counts == {"invalid JSON": 1}


def test_files_whose_columns_disagree_are_an_error_naming_both(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _csv(folder / "a.csv", [("1", "hi", "x")])
    _csv(folder / "b.csv", [("2", "yo", "y", "web")], header="id,text,label,channel")
    for read in (lambda: read_dataset(folder), lambda: check_run_input(str(folder), settings=IngestSettings())):
        with pytest.raises((InputError, PreflightError)) as err:
            read()
        msg = str(err.value)
        assert "'b.csv' differs from 'a.csv'" in msg and "'channel'" in msg and str(folder) in msg, msg


def test_a_file_without_the_text_column_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _csv(folder / "a.csv", [("1", "hi", "x")])
    _csv(folder / "b.csv", [("2", "yo", "y")], header="id,sentence,label")
    with pytest.raises(MissingColumnError, match="--text-col"):
        read_dataset(folder)
    with pytest.raises(PreflightError, match=r"b\.csv"):
        check_run_input(str(folder), settings=IngestSettings())


def test_files_of_two_formats_are_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _csv(folder / "a.csv", [("1", "hi", "x")])
    (folder / "b.jsonl").write_text('{"text": "yo", "label": "y"}\n', encoding="utf-8")
    for read in (lambda: read_dataset(folder), lambda: check_run_input(str(folder), settings=IngestSettings())):
        with pytest.raises(
            (InputError, PreflightError), match=r"different formats: 'b.jsonl' is jsonl, 'a.csv' is csv"
        ):
            read()
    assert len(read_dataset(f"{folder}/*.csv").rows) == 1  # a glob picks one format


def test_nothing_to_read_names_the_pattern_or_folder(tmp_path: Path) -> None:
    pattern = f"{tmp_path}/incoming/*.csv"
    with pytest.raises(InputError, match=r"INPUT pattern '.*incoming/\*\.csv' matches no file"):
        read_dataset(pattern)
    with pytest.raises(PreflightError, match="matches no file"):
        check_run_input(pattern, settings=IngestSettings())
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match=r"INPUT folder .* holds no data file"):
        read_dataset(empty)


def test_one_class_batches_pass_the_preflight_check_together(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _csv(folder / "a.csv", [("1", "hi", "x"), ("2", "hello", "x")])
    _csv(folder / "b.csv", [("3", "yo", "y"), ("4", "hey", "y")])
    check_run_input(str(folder), settings=IngestSettings())  # each file holds one class, together two
    with pytest.raises(PreflightError, match="only"):
        check_run_input(str(folder / "a.csv"), settings=IngestSettings())


def test_the_dataset_name_is_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "incoming"
    _csv(folder / "a.csv", [("1", "hi", "x")])
    assert batch_dataset_name(folder) == "incoming"
    assert batch_dataset_name(f"{folder}/") == "incoming"
    assert batch_dataset_name(f"{folder}/*.csv") == "incoming"
    assert batch_dataset_name(f"{folder}/**/*.csv") == "incoming"
    assert batch_dataset_name(folder / "a.csv") == "a"
    monkeypatch.chdir(folder)
    assert batch_dataset_name("*.csv") == "incoming"


def test_jsonl_batches_may_leave_out_optional_keys(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text(json.dumps({"text": "hi", "label": "x", "meta": 1}) + "\n", encoding="utf-8")
    (folder / "b.jsonl").write_text(json.dumps({"text": "yo", "label": "y"}) + "\n", encoding="utf-8")
    assert list(read_dataset(folder).rows["text"]) == ["hi", "yo"]
