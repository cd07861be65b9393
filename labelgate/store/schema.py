"""The one schema: every table, created and upgraded by numbered migrations (:data:`SCHEMA_VERSION`).

A migration is a list of statements applied in one transaction; a database records the versions it has
(``schema_version``). Add a migration with the next number; never edit an applied one."""

from __future__ import annotations

import duckdb

from labelgate.store.base import transaction

SCHEMA_VERSION = 11


_MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE runs (
            run_id VARCHAR PRIMARY KEY,
            dataset VARCHAR NOT NULL,
            dataset_version VARCHAR,
            input_path VARCHAR NOT NULL,
            input_sha256 VARCHAR,
            input_format VARCHAR,
            params_json JSON NOT NULL,
            status VARCHAR NOT NULL,
            message VARCHAR,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            metrics_json JSON,
            prefect_flow_run_id VARCHAR,
            labelgate_version VARCHAR
        )""",
        """CREATE TABLE rows (
            run_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            row_id VARCHAR NOT NULL,
            text VARCHAR,
            label VARCHAR,
            label_raw VARCHAR,
            text_sha256 VARCHAR,
            source_line INTEGER,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE quarantine (
            run_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            row_id VARCHAR NOT NULL,
            source_line INTEGER,
            stage VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            raw_json VARCHAR,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE validations (
            run_id VARCHAR PRIMARY KEY,
            success BOOLEAN NOT NULL,
            result_json JSON NOT NULL
        )""",
        """CREATE TABLE embeddings (
            model VARCHAR NOT NULL,
            text_sha256 VARCHAR NOT NULL,
            dim INTEGER NOT NULL,
            vector FLOAT[] NOT NULL,
            created_at TIMESTAMP DEFAULT current_timestamp,
            PRIMARY KEY (model, text_sha256)
        )""",
        """CREATE TABLE detections (
            run_id VARCHAR PRIMARY KEY,
            method VARCHAR NOT NULL,
            classes VARCHAR[] NOT NULL,
            n_folds INTEGER,
            metrics_json JSON
        )""",
        """CREATE TABLE predictions (
            run_id VARCHAR NOT NULL,
            row_id VARCHAR NOT NULL,
            probs FLOAT[] NOT NULL,
            PRIMARY KEY (run_id, row_id)
        )""",
        """CREATE TABLE issues (
            run_id VARCHAR NOT NULL,
            row_id VARCHAR NOT NULL,
            issue_type VARCHAR NOT NULL,
            score DOUBLE,
            is_issue BOOLEAN NOT NULL,
            given_label VARCHAR,
            suggested_label VARCHAR,
            suggested_prob DOUBLE,
            reason VARCHAR,
            related_row_id VARCHAR,
            PRIMARY KEY (run_id, row_id, issue_type)
        )""",
        """CREATE VIEW valid_rows AS
            SELECT r.* FROM rows r
            WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.run_id = r.run_id AND q.seq = r.seq)""",
        "CREATE SEQUENCE decision_seq START 1",
        """CREATE TABLE decisions (
            decision_id BIGINT PRIMARY KEY DEFAULT nextval('decision_seq'),
            run_id VARCHAR NOT NULL,
            row_id VARCHAR NOT NULL,
            action VARCHAR NOT NULL CHECK (action IN ('keep', 'relabel', 'exclude')),
            label VARCHAR,
            source VARCHAR NOT NULL CHECK (source IN ('policy', 'human')),
            reviewer VARCHAR,
            reason VARCHAR,
            decided_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        """CREATE TABLE exports (
            run_id VARCHAR NOT NULL,
            format VARCHAR NOT NULL,
            split VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            sha256 VARCHAR NOT NULL,
            lines INTEGER NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
    ],
    # 2: before/after evaluations (labelgate evaluate): one row per (run, test file, variant raw|cleaned)
    2: [
        """CREATE TABLE evaluations (
            run_id VARCHAR NOT NULL,
            test_sha256 VARCHAR NOT NULL,
            variant VARCHAR NOT NULL CHECK (variant IN ('raw', 'cleaned')),
            test_path VARCHAR,
            model VARCHAR NOT NULL,
            n_train INTEGER NOT NULL,
            n_test INTEGER NOT NULL,
            accuracy DOUBLE NOT NULL,
            macro_f1 DOUBLE NOT NULL,
            per_class_f1 JSON NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (run_id, test_sha256, variant)
        )""",
    ],
    # 3: the process running each run, so that a later run can mark a killed one 'crashed' (mark_crashed_runs)
    3: [
        "ALTER TABLE runs ADD COLUMN pid INTEGER",
        "ALTER TABLE runs ADD COLUMN host VARCHAR",
    ],
    # 4: the quality gate's verdict per run (labelgate.core.quality): enforced or only recorded
    4: [
        """CREATE TABLE quality (
            run_id VARCHAR PRIMARY KEY,
            enforced BOOLEAN NOT NULL,
            passed BOOLEAN NOT NULL,
            message VARCHAR NOT NULL,
            reasons JSON NOT NULL,
            checks_json JSON NOT NULL,
            baseline_run_id VARCHAR,
            baseline_version VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
    ],
    # 5: the label detector's plain model probability of its suggestion (suggested_prob became the noise-corrected
    # probability that the suggestion is the true label; the auto gate reads both)
    5: ["ALTER TABLE issues ADD COLUMN model_prob DOUBLE"],
    # 6: evaluations keyed by trainer too (the TF-IDF proxy at several strengths, a fine-tuned encoder, ...)
    6: [
        """CREATE TABLE evaluations_v6 (
            run_id VARCHAR NOT NULL,
            test_sha256 VARCHAR NOT NULL,
            trainer VARCHAR NOT NULL DEFAULT 'proxy',
            variant VARCHAR NOT NULL CHECK (variant IN ('raw', 'cleaned')),
            test_path VARCHAR,
            model VARCHAR NOT NULL,
            n_train INTEGER NOT NULL,
            n_test INTEGER NOT NULL,
            accuracy DOUBLE NOT NULL,
            macro_f1 DOUBLE NOT NULL,
            per_class_f1 JSON NOT NULL,
            seconds DOUBLE,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (run_id, test_sha256, trainer, variant)
        )""",
        """INSERT INTO evaluations_v6 (run_id, test_sha256, trainer, variant, test_path, model, n_train, n_test,
                                      accuracy, macro_f1, per_class_f1, created_at)
           SELECT run_id, test_sha256, 'proxy', variant, test_path, model, n_train, n_test, accuracy, macro_f1,
                  per_class_f1, created_at FROM evaluations""",
        "DROP TABLE evaluations",
        "ALTER TABLE evaluations_v6 RENAME TO evaluations",
    ],
    # 7: curation memory. Decisions get a third source, 'memory' (a remembered decision carried into a later run);
    # `memory` is the append-only log of the decisions remembered per dataset and content (text sha256, given
    # label, occurrence of that content in the run); detections record the key of what they were computed from
    # (reused by a later run with the same key); exports are versioned (a re-export never replaces files).
    7: [
        """CREATE TABLE decisions_v7 (
            decision_id BIGINT PRIMARY KEY DEFAULT nextval('decision_seq'),
            run_id VARCHAR NOT NULL,
            row_id VARCHAR NOT NULL,
            action VARCHAR NOT NULL CHECK (action IN ('keep', 'relabel', 'exclude')),
            label VARCHAR,
            source VARCHAR NOT NULL CHECK (source IN ('policy', 'human', 'memory')),
            reviewer VARCHAR,
            reason VARCHAR,
            decided_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        """INSERT INTO decisions_v7 (decision_id, run_id, row_id, action, label, source, reviewer, reason, decided_at)
           SELECT decision_id, run_id, row_id, action, label, source, reviewer, reason, decided_at FROM decisions""",
        "DROP TABLE decisions",
        "ALTER TABLE decisions_v7 RENAME TO decisions",
        "CREATE SEQUENCE memory_seq START 1",
        """CREATE TABLE memory (
            memory_id BIGINT PRIMARY KEY DEFAULT nextval('memory_seq'),
            dataset VARCHAR NOT NULL,
            text_sha256 VARCHAR NOT NULL,
            given_label VARCHAR NOT NULL,
            occurrence INTEGER NOT NULL DEFAULT 1,
            action VARCHAR NOT NULL CHECK (action IN ('keep', 'relabel', 'exclude', 'revoke')),
            label VARCHAR,
            source VARCHAR NOT NULL CHECK (source IN ('human', 'policy')),
            reviewer VARCHAR,
            reason VARCHAR,
            run_id VARCHAR,
            row_id VARCHAR,
            decision_id BIGINT,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        )""",
        "ALTER TABLE detections ADD COLUMN detection_key VARCHAR",
        "ALTER TABLE exports ADD COLUMN version INTEGER",
    ],
    # 8: several annotators per item (labelgate.core.annotators): every label of the long input, the consensus
    # per item and the estimated quality per annotator
    8: [
        """CREATE TABLE annotations (
            run_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            item_id VARCHAR NOT NULL,
            annotator VARCHAR,
            label VARCHAR,
            source_line INTEGER,
            reason VARCHAR,
            PRIMARY KEY (run_id, seq)
        )""",
        """CREATE TABLE consensus (
            run_id VARCHAR NOT NULL,
            item_id VARCHAR NOT NULL,
            consensus_label VARCHAR NOT NULL,
            consensus_quality DOUBLE NOT NULL,
            agreement DOUBLE NOT NULL,
            n_labels INTEGER NOT NULL,
            majority_label VARCHAR,
            model_label VARCHAR,
            model_prob DOUBLE,
            labels_json JSON NOT NULL,
            PRIMARY KEY (run_id, item_id)
        )""",
        """CREATE TABLE annotator_quality (
            run_id VARCHAR NOT NULL,
            annotator VARCHAR NOT NULL,
            quality DOUBLE NOT NULL,
            quality_sd DOUBLE NOT NULL,
            n_labels INTEGER NOT NULL,
            agreement DOUBLE NOT NULL,
            method VARCHAR,
            PRIMARY KEY (run_id, annotator)
        )""",
    ],
    # 9: state is data, not prose. An undo entry names the decision it undoes (`undoes`) and whether it restores
    # "no decision" (`no_decision`): until now both were parsed out of the free-text `reason`, which is read here
    # one last time to fill the columns of the entries already stored. A left-out annotation records its reason's
    # kind (labelgate.core.annotators.KIND_*) beside the reason's words.
    9: [
        "ALTER TABLE decisions ADD COLUMN undoes BIGINT",
        "ALTER TABLE decisions ADD COLUMN no_decision BOOLEAN DEFAULT false",
        """UPDATE decisions SET undoes = CAST(regexp_extract(reason, '^undo of #([0-9]+)', 1) AS BIGINT)
           WHERE regexp_matches(coalesce(reason, ''), '^undo of #[0-9]+')""",
        """UPDATE decisions SET no_decision = regexp_matches(coalesce(reason, ''), '^undo of #[0-9]+: no decision')""",
        # and why a label was left out, as a kind (labelgate.core.annotators.KIND_*) beside the reason's words
        "ALTER TABLE annotations ADD COLUMN reason_kind VARCHAR",
    ],
    # 10: no change (the number was reserved for a branch that turned out to need no migration)
    10: [],
    # 11: a flagged label issue's kind (labelgate.core.ambiguity: 'mislabelled', a confident disagreement, or
    # 'ambiguous', the text supports both labels) and its ambiguity score in [0, 1]; null for other issue types,
    # unflagged rows and runs detected before this version
    11: [
        "ALTER TABLE issues ADD COLUMN label_kind VARCHAR",
        "ALTER TABLE issues ADD COLUMN ambiguity DOUBLE",
    ],
}


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Create or upgrade the schema in ``con`` to :data:`SCHEMA_VERSION`; return the version."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP)")
    current = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with transaction(con):
            for statement in _MIGRATIONS[version]:
                con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?, current_timestamp)", [version])
    return SCHEMA_VERSION


_TABLES = {
    "annotations",
    "consensus",
    "annotator_quality",
    "runs",
    "rows",
    "quarantine",
    "validations",
    "embeddings",
    "detections",
    "predictions",
    "issues",
    "decisions",
    "exports",
    "evaluations",
    "quality",
    "memory",
}
