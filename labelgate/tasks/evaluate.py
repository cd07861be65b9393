"""Evaluate task: the proxy classifier trained on a run's raw and cleaned rows, scored on a held-out test file.

Both training sets leave out the rows that leak the test set (detector-flagged or same text), so the
comparison measures the labels, not memorisation. ``raw`` is every other valid row with its given label;
``cleaned`` is what the export writes (train + validation) with the curated labels. The scores are stored
in the ``evaluations`` table (one row per variant, keyed by run and test-file sha256) and merged into the
run's metrics under ``evaluation``.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.evaluate import Comparison, compare, format_table
from labelgate.core.export import LEAKAGE_SOURCE
from labelgate.errors import ConfigError
from labelgate.tasks._common import TASK_OPTIONS
from labelgate.tasks.export import load_curated


def evaluate_run(
    db_path: str, run_id: str, params: CurateParams, *, test_path: str | None = None
) -> tuple[Comparison, dict[str, Any]]:
    """Train the proxy on the run's raw and cleaned rows, score both on ``test_path``, store the result.

    Args:
        test_path: the held-out test file (default ``params.test_path``), read with the run's column settings.

    Returns:
        ``(comparison, summary)``; ``summary`` is what is merged into the run's metrics as ``evaluation``.

    Raises:
        ConfigError: no test file given, or it does not exist.
        ValidationError: a training set has fewer than two classes, or the test set is empty.
    """
    test_path = test_path or params.test_path
    if not test_path:
        raise ConfigError("no test file: pass --test FILE (a held-out file with the same columns as the input)")
    curated = load_curated(db_path, run_id, params, apply=params.gate != "none", test_path=test_path)
    assert curated.test is not None
    c = curated.cleaned
    raw = c.loc[c["source"] != LEAKAGE_SOURCE, ["text", "original_label"]].rename(columns={"original_label": "label"})
    cleaned = c.loc[c["action"] != "exclude", ["text", "label"]]
    comparison = compare(raw, cleaned, curated.test.rows, seed=params.seed)
    summary = {
        "test_path": curated.test.path,
        "test_sha256": curated.test.sha256,
        "leakage_excluded": curated.leakage["leakage_excluded"],
        **comparison.as_dict(),
    }
    with store.connect(db_path) as con, store.transaction(con):
        con.execute(
            "DELETE FROM evaluations WHERE run_id = ? AND test_sha256 = ? AND trainer = 'proxy'",
            [run_id, curated.test.sha256],
        )
        for score in (comparison.raw, comparison.cleaned):
            con.execute(
                """INSERT INTO evaluations (run_id, test_sha256, variant, test_path, model, n_train, n_test,
                                            accuracy, macro_f1, per_class_f1)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    run_id,
                    curated.test.sha256,
                    score.variant,
                    curated.test.path,
                    comparison.model,
                    score.n_train,
                    comparison.n_test,
                    score.accuracy,
                    score.macro_f1,
                    json.dumps(score.per_class_f1, sort_keys=True),
                ],
            )
        store.merge_metrics(con, run_id, {"evaluation": summary})
    return comparison, summary


def evaluations_frame(db_path: str, run_id: str) -> Any:
    """The stored evaluations of ``run_id`` (newest first), as a DataFrame."""
    with store.connect(db_path, read_only=True) as con:
        return store.query_df(
            con,
            """SELECT test_path, test_sha256, variant, model, n_train, n_test, accuracy, macro_f1, per_class_f1,
                      created_at
               FROM evaluations WHERE run_id = ? ORDER BY created_at DESC, variant DESC""",
            [run_id],
        )


@task(name="evaluate", **TASK_OPTIONS)
def evaluate(db_path: str, run_id: str, params: CurateParams) -> dict[str, Any]:
    """Prefect task around :func:`evaluate_run`; publishes the side-by-side table as artifacts."""
    comparison, summary = evaluate_run(db_path, run_id, params)
    frame = comparison.frame()
    create_table_artifact(
        key="labelgate-evaluation",
        table=[
            {"metric": m, "raw": round(float(r), 4), "cleaned": round(float(c), 4), "delta": round(float(d), 4)}
            for m, r, c, d in frame.itertuples(index=False)
        ],
        description=f"Proxy classifier trained on raw vs cleaned rows of run {run_id}, "
        f"scored on {comparison.n_test} test rows",
    )
    create_markdown_artifact(
        key="labelgate-evaluation-summary",
        markdown=f"# Before/after evaluation of run `{run_id}`\n\n"
        f"Proxy: {comparison.model}; test file `{summary['test_path']}` ({comparison.n_test} rows).\n\n"
        f"```\n{format_table(comparison)}\n```\n",
        description=f"labelgate evaluation of run {run_id}",
    )
    print(f"evaluation of run {run_id} on {comparison.n_test} test rows:\n{format_table(comparison)}")
    return summary
