"""Export service: apply the latest decisions, keep the test set out, write checked fine-tuning files and a manifest.

The files of a run's first export go to ``<out_dir>/<run_id>/``, those of each later export of the same run to a
new folder ``<out_dir>/<run_id>-v2/``, ``-v3/``, ...: exports are immutable, a re-export never deletes or
overwrites a file an earlier export wrote. Each folder holds:

- ``train.<format>.jsonl`` and ``val.<format>.jsonl`` for every JSONL format,
- ``cleaned.csv`` / ``cleaned.parquet`` for the table formats,
- ``manifest.json``: lineage (run, input sha256, dataset version, counts, decisions, thresholds, model,
  prompt templates, tokenizer, labelgate version), each file's check report, sha256 and line count.

The folder is written atomically: everything goes to a staging folder first (the data files chunk by chunk as
they are built and checked, so no file is ever held whole in memory), which is then renamed onto the
version's folder (claimed empty first, so two exports never pick the same one). A folder holding another
run's manifest, or files without a manifest, is never written to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import labelgate
from labelgate import store
from labelgate.config import CurateParams
from labelgate.core.export import (
    ExportPlan,
    apply_decisions,
    decision_summary,
    exclude_leakage,
    plan_export,
    text_fingerprints,
)
from labelgate.core.metrics import DetectMetrics, ExportMetrics, RunMetrics, ValidateMetrics
from labelgate.errors import ConfigError, ExportError
from labelgate.fileio import atomic_write_bytes
from labelgate.readers import sha256_file
from labelgate.services.inputs import read_input
from labelgate.tokenizers import get_counter

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` wrote: one export version of a run.

    Attributes:
        exported / exported_train / exported_val: rows written in all, to the training and the validation split.
        excluded: rows left out (decisions ``exclude`` and leaks of the test set).
        relabelled: rows written with a label other than the given one.
        leakage_flagged / leakage_text_match / leakage_excluded: rows leaking the test set: flagged by the leakage
            detector, with the text of a test row, and excluded for either reason.
        export_dir: the version's folder (absolute); manifest: its ``manifest.json`` (absolute).
        export_files: the data files written (absolute paths), in the plan's order.
        export_formats: the formats written, in the order asked.
        export_warnings: what the format checks warned about (nothing failed).
        export_version: 1 for ``<out>/<run_id>/``, n for ``<out>/<run_id>-v<n>/``.
        tokenizer: name of the offline token counter of the checks.
    """

    exported: int
    exported_train: int
    exported_val: int
    excluded: int
    relabelled: int
    leakage_flagged: int
    leakage_text_match: int
    leakage_excluded: int
    export_dir: str
    manifest: str
    export_files: tuple[str, ...]
    export_formats: tuple[str, ...]
    export_warnings: tuple[str, ...]
    export_version: int
    tokenizer: str

    def to_dict(self) -> dict[str, Any]:
        """The figures as the JSON object merged into the run's metrics and printed by ``labelgate export --json``
        (key per field; tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_metrics(self) -> ExportMetrics:
        """The export stage's figures for the run's metrics (:class:`labelgate.core.metrics.ExportMetrics`)."""
        return ExportMetrics.from_json(self.to_dict())


@dataclass(frozen=True)
class HeldOutSet:
    """The held-out test file as read with the run's column settings: ``rows`` has text and label."""

    path: str
    sha256: str
    rows: pd.DataFrame


@dataclass(frozen=True)
class Curated:
    """A run's rows after decisions and leakage exclusion (``cleaned``: :data:`CLEANED_COLUMNS`)."""

    run: dict[str, Any]
    cleaned: pd.DataFrame
    leakage: dict[str, int]
    test: HeldOutSet | None


def read_test_set(test_path: str, params: CurateParams) -> HeldOutSet:
    """Read the test file with the run's format and column settings; rows without text or label are dropped.

    Raises:
        ConfigError: the file does not exist.
    """
    if not Path(test_path).exists():
        raise ConfigError(f"test file {test_path!r} does not exist; pass --test PATH")
    result = read_input(test_path, params.ingest_settings())
    rows = result.rows[result.rows["text"].notna() & result.rows["label"].notna()]
    rows = rows[rows["text"].str.strip() != ""][["row_id", "text", "label"]].reset_index(drop=True)
    return HeldOutSet(str(Path(test_path).resolve()), sha256_file(test_path), rows)


def load_curated(
    db_path: str, run_id: str, params: CurateParams, *, apply: bool = True, test_path: str | None = None
) -> Curated:
    """Read a run's valid rows, apply its latest decisions (when ``apply``) and exclude the test set's leaks.

    Leaks are the rows the leakage detector flagged (``issues`` of type ``leakage``) and the rows whose
    text equals a row of ``test_path`` (default ``params.test_path``) exactly or after normalisation.
    """
    with store.connect(db_path) as con:
        run = store.run_record(con, run_id)
        rows = store.valid_rows(con, run_id)
        decisions = store.latest_decisions(con, run_id) if apply else None
        flagged = store.flagged_row_ids(con, run_id=run_id, issue_type="leakage")
    test_path = test_path or params.test_path
    test = read_test_set(test_path, params) if test_path else None
    cleaned = apply_decisions(rows, decisions)
    cleaned, leakage = exclude_leakage(
        cleaned, flagged=flagged, test_fingerprints=text_fingerprints(test.rows["text"]) if test else None
    )
    return Curated(run, cleaned, leakage, test)


def export_run(
    db_path: str,
    run_id: str,
    out_dir: str,
    params: CurateParams,
    *,
    apply: bool = True,
    formats: list[str] | None = None,
    test_path: str | None = None,
) -> ExportResult:
    """Write the run's files in ``formats`` (default ``params.export_formats``) under ``out_dir/<run_id>/``.

    The figures are recorded in the ``exports`` table and merged into the run's metrics
    (:meth:`ExportResult.to_dict`).

    Args:
        apply: apply the run's decisions (False exports the valid rows as given: ``--gate none``); the
            test set's leaks are excluded either way.
        test_path: the held-out test file (default ``params.test_path``).

    Returns:
        What was written: counts, leaks excluded, the folder, files and manifest (:class:`ExportResult`).

    Raises:
        ExportError: a file failed its checks (nothing is written), or the folder holds another run's export.
    """
    curated = load_curated(db_path, run_id, params, apply=apply, test_path=test_path)
    formats = list(formats or params.export_formats)
    settings = dataclasses.replace(params.export_settings(), formats=tuple(formats))
    clean_stale_staging(db_path, Path(out_dir))
    with store.connect(db_path) as con:
        earlier = store.export_folders(con, run_id)
    folder, version = next_folder(Path(out_dir), run_id)
    with staged_folder(folder, run_id) as staging:
        # the files go into the staging folder chunk by chunk as they are checked: a failed check discards them
        with FolderSink(staging) as sink:
            plan = plan_export(
                curated.cleaned, settings=settings, counter=get_counter(settings.token_counter), sink=sink
            )
        manifest = build_manifest(curated, plan, params, formats=formats, applied=apply)
        manifest["export_version"] = version
        manifest["earlier_exports"] = earlier
        write_manifest(staging, manifest)
    paths = [str((folder / f.name).resolve()) for f in plan.files]
    result = ExportResult(
        **{k: v for k, v in plan.counts.items() if k != "rows_valid"},
        **curated.leakage,
        export_dir=str(folder.resolve()),
        manifest=str((folder / MANIFEST).resolve()),
        export_files=tuple(paths),
        export_formats=tuple(formats),
        export_warnings=tuple(plan.warnings),
        export_version=version,
        tokenizer=plan.tokenizer["name"],
    )
    with store.connect(db_path) as con, store.transaction(con):
        store.record_export(
            con, run_id, version, [(f.format, f.split, path, f.sha256, f.records) for f, path in zip(plan.files, paths)]
        )
        store.merge_metrics(con, run_id, result.to_dict())
    return result


def _version_folder(out_dir: Path, run_id: str, version: int) -> Path:
    return out_dir / (run_id if version == 1 else f"{run_id}-v{version}")


def next_folder(out_dir: Path, run_id: str, start: int = 1) -> tuple[Path, int]:
    """The folder and version of the run's next export, from version ``start`` on.

    Version 1 is ``<out_dir>/<run_id>``, version n > 1 ``<out_dir>/<run_id>-v<n>``; a version whose folder holds
    an earlier export of the run is skipped, so an earlier export is never written to.

    Raises:
        ExportError: the folder is a file, holds another run's export, or files without a manifest.
    """
    version = max(1, start)
    while True:
        folder = _version_folder(out_dir, run_id, version)
        if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
            return folder, version
        if not folder.is_dir():
            raise ExportError(f"{str(folder)!r} is a file, not a folder; choose another --out")
        existing = folder / MANIFEST
        if not existing.exists():
            raise ExportError(f"{str(folder)!r} already holds files but no labelgate manifest; choose another --out")
        try:
            other = json.loads(existing.read_text(encoding="utf-8")).get("run_id")
        except (ValueError, OSError):
            other = "?"
        if other != run_id:
            raise ExportError(f"{str(folder)!r} holds the export of run {other!r}; choose another --out")
        version += 1


def build_manifest(
    curated: Curated, plan: ExportPlan, params: CurateParams, *, formats: list[str], applied: bool
) -> dict[str, Any]:
    """The manifest's content (see the module docstring)."""
    run = curated.run
    metrics = RunMetrics.from_json(run["metrics_json"])
    validated = metrics.validate or ValidateMetrics()
    detected = metrics.detect or DetectMetrics()
    tpl = plan.templates
    # the settings objects the layers ran with, recorded whole (dataclasses.asdict), so no setting can be left out
    layers = {
        "ingest": params.ingest_settings(),
        "detect": params.detector_settings(),
        "quality": params.quality_limits(),
        "gate": params.gate_settings(),
        "export": dataclasses.replace(params.export_settings(), formats=tuple(formats)),
    }
    gate, export = layers["gate"], layers["export"]
    return {
        "labelgate_version": labelgate.__version__,
        "run_id": run["run_id"],
        "dataset": run["dataset"],
        "dataset_version": run["dataset_version"],
        "input_path": run["input_path"],
        "input_sha256": run["input_sha256"],
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "formats": formats,
        "counts": {
            "rows_in": metrics.rows_in,
            "rows_valid": plan.counts["rows_valid"],
            "rows_quarantined": metrics.rows_quarantined,
            "label_issues": metrics.label_issues,
            **{k: v for k, v in plan.counts.items() if k != "rows_valid"},
            **curated.leakage,
        },
        "decisions": {"applied": applied, **decision_summary(curated.cleaned)},
        "warnings": metrics.warnings,
        "dropped_classes": dict(validated.dropped_classes or {}),
        "gate": params.gate,
        # the gate's settings under their flow-parameter names (relabel_model_threshold, as documented) and their
        # own (model_threshold)
        "thresholds": {**CurateParams.as_params("gate_settings", gate), **dataclasses.asdict(gate)},
        "memory": {
            **(metrics.memory.to_json() if metrics.memory else {"carried": 0}),
            "carry_policy_decisions": params.carry_policy_decisions,
        },
        "detection_reused_from": detected.detection_reused_from,
        # every setting of the run (reading, validation, detection, gate, split, templates): all that can change
        # which rows are exported and how
        "settings": params.model_dump(mode="json"),
        "settings_by_layer": {name: dataclasses.asdict(obj) for name, obj in layers.items()},
        "split": {"val_fraction": export.val_fraction, "seed": export.seed, "stratified_by": "label"},
        "test": (
            {"path": curated.test.path, "sha256": curated.test.sha256, "rows": len(curated.test.rows)}
            if curated.test
            else None
        ),
        "model": {
            "embedding": (metrics.embed.embedding_model if metrics.embed else None) or params.model,
            "detector": detected.detector,
            "n_folds": detected.n_folds if detected.n_folds is not None else layers["detect"].n_folds,
        },
        "templates": {
            "system_prompt": tpl.system,
            "instruction": tpl.instruction,
            "user_template": tpl.user_template,
            "label_map": dict(tpl.label_map),
            "completion_separator": tpl.completion_separator,
            "completion_stop": tpl.completion_stop,
        },
        "tokenizer": {**plan.tokenizer, "note": "token counts and costs are estimates"},
        "checks": {name: r.as_dict() for name, r in plan.reports.items()},
        "files": [
            {
                "name": f.name,
                "format": f.format,
                "split": f.split,
                "sha256": f.sha256,
                "bytes": f.size,
                "lines": f.lines,
                "records": f.records,
            }
            for f in plan.files
        ],
    }


_STAGING_RE = re.compile(r"^\.(?P<run>[^/]+?)\.(?:staging|old)-[^/]+$")


def clean_stale_staging(db_path: str, out_dir: Path) -> list[str]:
    """Remove the staging (``.<run>.staging-*``) and swap (``.<run>.old-*``) folders a killed export left in
    ``out_dir``; return their names.

    Only folders of runs this database knows as no longer running (crashed, failed or completed) are removed:
    a run still exporting into the same folder keeps its staging folder.
    """
    if not out_dir.is_dir():
        return []
    found: dict[str, list[Path]] = {}
    for entry in out_dir.iterdir():
        match = _STAGING_RE.match(entry.name)
        if match and entry.is_dir():
            found.setdefault(match["run"], []).append(entry)
    if not found:
        return []
    with store.connect(db_path) as con:
        store.mark_crashed_runs(con)
        ended = store.ended_runs(con, run_ids=list(found))
    removed = []
    for run, paths in sorted(found.items()):
        if run in ended:
            for path in paths:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
    return removed


class FolderSink:
    """An :class:`~labelgate.core.export.ExportSink` that appends each file's chunks to ``folder/<name>``.

    One file is open at a time; every file is flushed to disk (fsync) when the next one starts and on
    :meth:`close` (also on leaving a ``with`` block). A name is never opened twice: the file must be new.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._name: str | None = None
        self._fh: Any = None
        self._done: set[str] = set()

    def write(self, name: str, data: bytes) -> None:
        if name != self._name:
            self._finish()
            if name in self._done:
                raise ExportError(f"{name!r} was already written to this export; a file is written in one go")
            self._fh = open(self.folder / name, "xb")  # noqa: SIM115 (closed by _finish)
            self._name = name
        self._fh.write(data)

    def _finish(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._done.add(self._name)  # type: ignore[arg-type]
        self._fh, self._name = None, None

    def close(self) -> None:
        """Flush and close the open file."""
        self._finish()

    def __enter__(self) -> FolderSink:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None and exc[0] is not None:
            self._fh.close()  # the staging folder is about to be removed: nothing to flush
            self._fh = None
        self._finish()


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` as ``folder/manifest.json`` (indented JSON, atomically, an ordinary file's mode)."""
    body = json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"
    path = atomic_write_bytes(folder / MANIFEST, body.encode("utf-8"))
    os.chmod(path, 0o666 & ~_umask())  # temporary files are created 0600; exports are ordinary files
    return path


@contextlib.contextmanager
def staged_folder(folder: Path, run_id: str) -> Iterator[Path]:
    """A staging folder beside ``folder``, renamed onto ``folder`` when the block ends without an error.

    ``folder`` must be absent or empty (:func:`next_folder`): the rename fails when another export filled it
    meanwhile (nothing is overwritten then). On an error the staging folder is removed, and so are the folders
    this call created above it: a failed export leaves nothing behind.

    Raises:
        ExportError: ``folder`` is a file or holds anything, or another export filled it meanwhile.
    """
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{str(folder)!r} is a file, not a folder; choose another --out")
    if folder.exists() and any(folder.iterdir()):
        raise ExportError(f"{str(folder)!r} already holds files; an export never writes into an earlier one")
    created = [p for p in [folder.parent, *folder.parent.parents] if not p.exists()]
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_id}.staging-", dir=folder.parent))
    done = False
    try:
        os.chmod(staging, 0o777 & ~_umask())
        yield staging
        try:
            os.rename(staging, folder)  # atomic; replaces an empty folder, never one holding files
        except OSError as err:
            raise ExportError(
                f"{str(folder)!r} was written by another export meanwhile ({err.strerror}); export again"
            ) from None
        done = True
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
        if not done:
            for path in created:  # deepest first
                with contextlib.suppress(OSError):
                    path.rmdir()


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def verify_manifest(folder: str | Path) -> list[str]:
    """Compare every file listed in ``folder``'s manifest with the file on disk; return the mismatches."""
    from labelgate.core.export import sha256_bytes

    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    problems = []
    for entry in manifest["files"]:
        path = folder / entry["name"]
        if not path.exists():
            problems.append(f"{entry['name']}: missing")
            continue
        data = path.read_bytes()
        if sha256_bytes(data) != entry["sha256"]:
            problems.append(f"{entry['name']}: sha256 differs")
        lines = data.count(b"\n")
        if entry.get("lines") is not None and lines != entry["lines"]:
            problems.append(f"{entry['name']}: {lines} lines, manifest says {entry['lines']}")
    return problems
