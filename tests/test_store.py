"""The DuckDB store: schema, embedding cache, transactions, run lookup, a busy file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelgate import store
from labelgate.errors import DatabaseBusyError, RunNotFoundError

pytestmark = pytest.mark.unit


def _add_run(con, run_id: str, started: str) -> None:
    con.execute(
        "INSERT INTO runs (run_id, dataset, input_path, params_json, status, started_at) "
        "VALUES (?, 'd', 'in.csv', '{}', 'completed', ?)",
        [run_id, started],
    )


def test_migrate_is_idempotent_and_records_the_version(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    with store.connect(db) as con:
        assert store.migrate(con) == store.SCHEMA_VERSION
    with store.connect(db) as con:
        versions = con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert [v for (v,) in versions] == list(range(1, store.SCHEMA_VERSION + 1))
    assert {"runs", "rows", "quarantine", "embeddings", "issues", "decisions", "exports", "valid_rows"} <= tables


def test_read_only_connect_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with (
        pytest.raises(RunNotFoundError, match="does not exist"),
        store.connect(tmp_path / "nope.duckdb", read_only=True),
    ):
        pass


def test_embedding_cache_returns_vectors_in_the_requested_order(tmp_path: Path) -> None:
    vecs = np.arange(12, dtype=np.float32).reshape(4, 3)
    with store.connect(tmp_path / "s.duckdb") as con:
        store.put_embeddings(con, "m", ["a", "b", "c", "d"], vecs)
        store.put_embeddings(con, "m", ["a"], np.full((1, 3), -1, dtype=np.float32))  # existing key: ignored
        assert store.cached_hashes(con, "m", ["a", "x", "d"]) == {"a", "d"}
        assert store.cached_hashes(con, "other-model", ["a"]) == set()
        got = store.get_embeddings(con, "m", ["d", "a", "c"])
        with pytest.raises(KeyError, match="no cached vector"):
            store.get_embeddings(con, "m", ["a", "zzz"])
    np.testing.assert_array_equal(got, vecs[[3, 0, 2]])


def test_cached_vectors_come_back_in_numpys_memory_not_arrows(tmp_path: Path) -> None:
    import pyarrow as pa

    vecs = np.random.default_rng(0).normal(size=(20_000, 16)).astype(np.float32)  # 1.3 MB
    hashes = [f"h{i}" for i in range(len(vecs))]
    with store.connect(tmp_path / "s.duckdb") as con:
        store.put_embeddings(con, "m", hashes, vecs)
    before = pa.total_allocated_bytes()
    with store.connect(tmp_path / "s.duckdb", read_only=True) as con:
        got = store.get_embeddings(con, "m", hashes)
    # Arrow's pool holds nothing of the result (it would keep those bytes for the run once the array is dropped)
    assert pa.total_allocated_bytes() - before < 100_000
    assert got.flags.owndata and got.flags.c_contiguous and got.dtype == np.float32
    np.testing.assert_array_equal(got, vecs)


def test_cached_vectors_streamed_in_batches_land_in_their_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """get_embeddings puts each streamed batch's vectors in their own rows (the join's order is not the order asked),
    and names the missing texts in the order asked, whichever batches they came in."""
    from labelgate.store import embeddings

    monkeypatch.setattr(embeddings, "VECTOR_BATCH", 7)
    vecs = np.random.default_rng(1).normal(size=(200, 5)).astype(np.float32)
    hashes = [f"h{i:03d}" for i in range(200)]
    with store.connect(tmp_path / "s.duckdb") as con:
        store.put_embeddings(con, "m", hashes, vecs)
        order = np.random.default_rng(2).permutation(200)
        got = store.get_embeddings(con, "m", [hashes[i] for i in order] + [hashes[5]])
        np.testing.assert_array_equal(got, vecs[[*order, 5]])
        with pytest.raises(KeyError, match=r"no cached vector for 3 texts \(e.g. \['x1', 'x2', 'x0'\]\)"):
            store.get_embeddings(con, "m", ["x1", *hashes[:50], "x2", *hashes[50:], "x0"])


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    with store.connect(tmp_path / "s.duckdb") as con:
        with pytest.raises(RuntimeError), store.transaction(con):
            _add_run(con, "r1", "2026-01-01")
            raise RuntimeError("boom")
        assert store.scalar(con, "SELECT count(*) FROM runs") == 0


def test_resolve_run_latest_prefix_and_errors(tmp_path: Path) -> None:
    with store.connect(tmp_path / "s.duckdb") as con:
        with pytest.raises(RunNotFoundError, match="no run yet"):
            store.resolve_run(con, "latest")
        _add_run(con, "20260101T000000-aaaaaa", "2026-01-01")
        _add_run(con, "20260102T000000-bbbbbb", "2026-01-02")
        _add_run(con, "20260102T000000-bbbbcc", "2026-01-02 00:00:01")
        assert store.resolve_run(con, "latest") == "20260102T000000-bbbbcc"
        assert store.resolve_run(con, "20260101") == "20260101T000000-aaaaaa"
        with pytest.raises(RunNotFoundError, match="matches 2 runs"):
            store.resolve_run(con, "20260102")
        with pytest.raises(RunNotFoundError, match="no run 'zz'"):
            store.resolve_run(con, "zz")


def test_migration_9_reads_undo_state_out_of_old_reasons_once(tmp_path: Path) -> None:
    from labelgate.store.schema import _MIGRATIONS

    db = tmp_path / "v8.duckdb"
    import duckdb

    with duckdb.connect(str(db)) as con:  # a database written by schema version 8
        con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP)")
        for version in range(1, 9):
            for statement in _MIGRATIONS[version]:
                con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?, current_timestamp)", [version])
        for row, reason in [
            ("a", "looked twice"),
            ("a", "undo of #1: back to #0"),
            ("b", None),
            ("b", "undo of #3: no decision"),
        ]:
            con.execute(
                "INSERT INTO decisions (run_id, row_id, action, label, source, reason) VALUES ('r', ?, 'keep', 'x', "
                "'human', ?)",
                [row, reason],
            )
    with store.connect(db) as con:
        log = store.decision_log(con, run_id="r")
        latest = store.latest_decisions(con, "r").set_index("row_id")
    assert [None if pd.isna(u) else int(u) for u in log["undoes"]] == [None, 1, None, 3]
    assert log["no_decision"].tolist() == [False, False, False, True]
    assert latest["no_decision"].to_dict() == {"a": False, "b": True}


def test_latest_decision_per_row_wins_and_history_is_kept(tmp_path: Path) -> None:
    with store.connect(tmp_path / "s.duckdb") as con:
        for row, action, label in [("a", "relabel", "x"), ("b", "keep", "y"), ("a", "exclude", None)]:
            con.execute(
                "INSERT INTO decisions (run_id, row_id, action, label, source) VALUES ('r', ?, ?, ?, 'human')",
                [row, action, label],
            )
        latest = store.latest_decisions(con, "r").set_index("row_id")["action"].to_dict()
        assert latest == {"a": "exclude", "b": "keep"}
        assert store.scalar(con, "SELECT count(*) FROM decisions") == 3
        with pytest.raises(Exception, match=r"CHECK|constraint"):
            con.execute("INSERT INTO decisions (run_id, row_id, action, source) VALUES ('r', 'c', 'delete', 'human')")


def test_a_second_process_holding_the_file_makes_connect_wait_then_fail_clearly(tmp_path: Path) -> None:
    db = tmp_path / "busy.duckdb"
    with store.connect(db):
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(db)!r})
            print("locked", flush=True)
            time.sleep(30)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with (
            pytest.raises(DatabaseBusyError, match=r"in use by another process.*waited 1s"),
            store.connect(db, wait_s=1.0),
        ):
            pass
        assert time.monotonic() - started >= 1.0
    finally:
        holder.kill()
        holder.wait()
    with store.connect(db, wait_s=5.0) as con:  # free again
        assert store.scalar(con, "SELECT 1") == 1


_cell = st.one_of(st.none(), st.text(max_size=30))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.lists(st.tuples(_cell, _cell), min_size=1, max_size=20))
def test_rows_round_trip_through_duckdb(tmp_path: Path, data: list[tuple[str | None, str | None]]) -> None:
    """Texts and labels (None, unicode, quotes, NUL-free control chars) come back exactly."""
    frame = pd.DataFrame(
        {
            "run_id": "r",
            "seq": range(len(data)),
            "row_id": [f"id{i}" for i in range(len(data))],
            "text": pd.array([t for t, _ in data], dtype=object),
            "label": pd.array([lab for _, lab in data], dtype=object),
            "source_line": range(2, len(data) + 2),
        }
    )
    db = tmp_path / "rt.duckdb"
    with store.connect(db) as con:
        con.execute("DELETE FROM rows")
        store.insert_frame(con, "rows", frame)
        back = store.query_df(con, "SELECT text, label FROM rows WHERE run_id = 'r' ORDER BY seq")
    norm = lambda v: None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v  # noqa: E731
    assert [norm(v) for v in back["text"]] == [t for t, _ in data]
    assert [norm(v) for v in back["label"]] == [lab for _, lab in data]
