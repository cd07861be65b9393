"""Row and table validation of an ingested dataset, built on Great Expectations (GX) 1.x.

:func:`validate_rows` splits the ingested rows into the rows that pass every row-level
check (``valid``) and the rows that do not (``quarantine``, with a human-readable reason),
then checks table-level properties of what remains and raises
:class:`labelgate.errors.ValidationError` when the run cannot go on.

The checks are expressed as GX expectation suites run against an in-memory pandas
batch in an *ephemeral* GX context (nothing is written to disk). The context, its pandas
data source, dataframe asset and whole-dataframe batch definition are created lazily on
the first call and reused; the expectation suites are built per call because their
thresholds are parameters. GX is kept quiet: no progress bars, no analytics, no
warnings or log records below ERROR reach the terminal.

Row-level checks (a failing row is quarantined; a row failing several gets every reason,
joined with ``"; "`` in the order below):

=========================  ==========================================================
check                      reason
=========================  ==========================================================
text is null               ``text is missing``
text is whitespace only    ``text is blank``
stripped text too short    ``text shorter than N characters (got M)``
stripped text too long     ``text longer than N characters (got M)``
label null or ``""``       ``label is missing``
repeated ``row_id``        ``duplicate id 'X' (first at line N)`` (first occurrence kept)
=========================  ==========================================================

then, counted on the rows still valid after those checks (second pass):

* class too small: ``class 'X' has only M valid rows; at least N are needed (one per cross-validation fold)``

Table-level checks (raise :class:`~labelgate.errors.ValidationError`):

* the input has zero rows;
* no valid row remains;
* fewer than 2 classes remain among the valid rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from labelgate.errors import ConfigError, ValidationError

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite

__all__ = ["REQUIRED_COLUMNS", "ValidationOutcome", "dropped_classes_message", "merge_reason_counts", "validate_rows"]

#: columns ``validate_rows`` needs in its input; any other column is carried through to ``valid``
REQUIRED_COLUMNS: tuple[str, ...] = ("row_id", "text", "label", "source_line")

#: name of the GX suite holding the row-level expectations (run on every input row)
ROW_SUITE_NAME = "labelgate.validate.rows"
#: name of the GX suite holding the table-level expectations (run on the final valid rows)
TABLE_SUITE_NAME = "labelgate.validate.table"

# Reason kinds: the key of each row-level check in ``result_json["labelgate"]["reason_counts"]`` (the reason
# without its per-row details; the kinds of the length and class-size checks are formatted with the thresholds).
_TEXT_MISSING = "text is missing"
_TEXT_BLANK = "text is blank"
_TEXT_SHORT = "text shorter than {} characters"
_TEXT_LONG = "text longer than {} characters"
_LABEL_MISSING = "label is missing"
_DUPLICATE_ID = "duplicate id"
_CLASS_TOO_SMALL = "class with fewer than {} valid rows"

#: every character ``str.strip()`` removes (the code points for which ``str.isspace()`` is true; all are below
#: U+3001). Spelled out as a character class instead of ``\s`` so that the regex means the same under Python's
#: ``re`` and under RE2, which pandas uses for pyarrow-backed strings and where ``\s`` is ASCII-only.
_WHITESPACE_CHARS = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
#: a text matching this (with ``re.search`` semantics) is empty or whitespace-only
BLANK_TEXT_REGEX = "^[" + _WHITESPACE_CHARS + "]*$"

#: GX result format: the positions of every failing row, but not their values (they would be copied into the
#: result object for nothing: the quarantine table is built from the positions)
_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    "exclude_unexpected_values": True,
    "return_unexpected_index_query": False,
    "include_unexpected_rows": False,
    "partial_unexpected_count": 20,
}


@dataclass(frozen=True)
class ValidationOutcome:
    """What :func:`validate_rows` returns.

    Attributes:
        valid: the rows passing every row-level check, with the input's columns (extra ones included) in
            input order, index reset to a ``RangeIndex``.
        quarantine: one row per quarantined input row, in input order, columns ``row_id`` (str),
            ``source_line`` (int64) and ``reason`` (str; several failed checks joined with ``"; "``).
            ``len(valid) + len(quarantine) == len(rows)`` always.
        result_json: JSON-serialisable record of the validation: ``labelgate`` (own summary: counts per
            reason kind, classes dropped as too small, parameters), ``suites`` (the two GX suites as
            dicts: name, expectations) and ``results`` (the two GX suite validation results; the
            ``unexpected_index_list`` of each is left out, ``partial_unexpected_index_list`` kept).
        class_counts: label -> number of valid rows with that label, sorted by label.
    """

    valid: pd.DataFrame
    quarantine: pd.DataFrame
    result_json: dict[str, Any]
    class_counts: dict[str, int]


class SuiteRunner(Protocol):
    """Runs a GX expectation suite on a frame (:class:`labelgate.gx.GxEngine`); ``version`` is GX's version."""

    version: str

    def run(self, suite: ExpectationSuite, frame: pd.DataFrame, *, result_format: dict[str, Any]) -> Any: ...


def validate_rows(
    rows: pd.DataFrame,
    *,
    engine: SuiteRunner,
    min_text_chars: int = 1,
    max_text_chars: int = 20_000,
    min_rows_per_class: int = 5,
) -> ValidationOutcome:
    """Validate ingested rows: quarantine the bad ones, then check the table as a whole.

    Args:
        engine: the Great Expectations runner (:func:`labelgate.gx.default_engine`; the caller owns its context).
        rows: the ingested rows, one per example. Columns ``row_id`` (str, unique in a healthy input),
            ``text`` (str or None), ``label`` (str or None, already trimmed; ``""`` counts as missing),
            ``source_line`` (int, 1-based line/record number in the source file) and any number of extra
            columns, which are kept in ``valid``. Any index (rows are addressed by position).
        min_text_chars: a text whose stripped length is below this is quarantined (>= 1).
        max_text_chars: a text whose stripped length is above this is quarantined (>= min_text_chars).
        min_rows_per_class: after the row checks, every row of a class with fewer valid rows than this is
            quarantined (>= 1; normally the number of cross-validation folds).

    Returns:
        a :class:`ValidationOutcome`.

    Raises:
        ConfigError: a threshold is out of range.
        ValueError: a required column is missing (a bug in the caller: ingest always provides them).
        ValidationError: the input has no rows, no row is valid, or fewer than 2 classes remain. Except for
            the no-rows case, the raised error carries the would-be ``result_json`` and ``quarantine`` of the
            run as attributes of the same names, so the caller can still store them.
    """
    _check_params(min_text_chars, max_text_chars, min_rows_per_class)
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"validate_rows: input lacks column(s) {missing}; columns found: {list(rows.columns)}")
    n_rows = len(rows)
    if n_rows == 0:
        raise ValidationError("the input has no data rows")

    row_id = _as_str(rows["row_id"])
    text = _as_str(rows["text"])
    label = _as_str(rows["label"])
    source_line = pd.Series(np.asarray(rows["source_line"], dtype=np.int64))

    # --- pass 1: row-level GX suite over every row --------------------------------------------------------------
    stripped = text.str.strip()
    stripped_len = stripped.str.len()
    blank_mask = (stripped_len == 0).fillna(False).to_numpy(dtype=bool)
    # blank texts are hidden from the length check (GX skips nulls), so that they get only the blank reason
    check_frame = pd.DataFrame(
        {
            "row_id": row_id,
            "text": text,
            "text_stripped": stripped.where(~blank_mask),
            "label": label,
        }
    )
    row_suite = _row_suite(min_text_chars, max_text_chars)
    row_result = _run_suite(engine, row_suite, check_frame)
    failed = _failed_positions(row_result, n_rows)

    reasons = _ReasonBuilder(n_rows)
    reasons.add(_TEXT_MISSING, failed["text_missing"], _TEXT_MISSING)
    reasons.add(_TEXT_BLANK, failed["text_blank"], _TEXT_BLANK)
    bad_len = failed["text_length"]
    lens = stripped_len.to_numpy(dtype=float, na_value=np.nan)
    short = bad_len & (lens < min_text_chars)
    long_ = bad_len & (lens > max_text_chars)
    reasons.add(
        _TEXT_SHORT.format(min_text_chars),
        short,
        f"text shorter than {min_text_chars} characters (got " + _int_strings(lens[short]) + ")",
    )
    reasons.add(
        _TEXT_LONG.format(max_text_chars),
        long_,
        f"text longer than {max_text_chars} characters (got " + _int_strings(lens[long_]) + ")",
    )
    reasons.add(_LABEL_MISSING, failed["label_null"] | failed["label_empty"], _LABEL_MISSING)
    # GX flags every occurrence of a repeated id; keep the first one, quarantine the later ones
    flagged = failed["row_id_unique"]
    later_dup = flagged & row_id.duplicated(keep="first").to_numpy(dtype=bool)
    if later_dup.any():
        dup_ids = row_id[later_dup]
        # every occurrence of a repeated id is flagged, so the first flagged row of an id is its first occurrence
        flagged_ids = row_id[flagged].to_numpy(dtype=object)
        first_line = source_line[flagged].groupby(flagged_ids, sort=False).first()
        firsts = first_line.reindex(dup_ids.to_numpy(dtype=object)).to_numpy()
        reasons.add(
            _DUPLICATE_ID,
            later_dup,
            "duplicate id "
            + dup_ids.map(repr).to_numpy(dtype=object)
            + " (first at line "
            + _int_strings(firsts)
            + ")",
        )

    # --- pass 2: classes with too few valid rows -----------------------------------------------------------------
    ok = ~reasons.any_mask
    first_pass_counts = label[ok].value_counts()
    small = first_pass_counts[first_pass_counts < min_rows_per_class]
    dropped_classes = {str(k): int(v) for k, v in sorted(small.items())}
    if dropped_classes:
        in_small = ok & label.isin(list(dropped_classes)).to_numpy(dtype=bool)
        small_labels = label[in_small]
        counts_txt = small_labels.map(dropped_classes).astype("int64").astype(str)
        reasons.add(
            _CLASS_TOO_SMALL.format(min_rows_per_class),
            in_small,
            "class "
            + small_labels.map(repr).to_numpy(dtype=object)
            + " has only "
            + counts_txt.to_numpy(dtype=object)
            + f" valid rows; at least {min_rows_per_class} are needed (one per cross-validation fold)",
        )
    ok = ~reasons.any_mask

    # --- outputs ------------------------------------------------------------------------------------------------
    valid = rows.iloc[np.flatnonzero(ok)].reset_index(drop=True)
    bad_pos = np.flatnonzero(~ok)
    quarantine = pd.DataFrame(
        {
            "row_id": row_id.iloc[bad_pos].astype(object).to_numpy(),
            "source_line": source_line.iloc[bad_pos].to_numpy(dtype=np.int64),
            "reason": reasons.joined(bad_pos),
        }
    )
    valid_labels = label[ok]
    class_counts = {str(k): int(v) for k, v in sorted(valid_labels.value_counts().items())}

    # --- pass 3: table-level GX suite over the valid rows -------------------------------------------------------
    table_suite = _table_suite()
    table_result = _run_suite(engine, table_suite, pd.DataFrame({"label": valid_labels.reset_index(drop=True)}))

    reason_counts = reasons.kind_counts()
    result_json: dict[str, Any] = {
        "labelgate": {
            "input_rows": n_rows,
            "valid_rows": len(valid),
            "quarantined_rows": len(quarantine),
            "reason_counts": reason_counts,
            "dropped_classes": dropped_classes,
            "class_counts": class_counts,
            "params": {
                "min_text_chars": min_text_chars,
                "max_text_chars": max_text_chars,
                "min_rows_per_class": min_rows_per_class,
            },
            "great_expectations_version": engine.version,
            "note": "unexpected_index_list is left out of the GX results; the quarantine table lists every row",
        },
        "suites": [_suite_json(row_suite), _suite_json(table_suite)],
        "results": [_result_json(row_result), _result_json(table_result)],
    }

    if len(valid) == 0:
        kind, count = max(reason_counts.items(), key=lambda kv: kv[1])
        raise _with_record(
            ValidationError(
                f"no valid rows: all {n_rows} rows were quarantined (most common reason: {kind!r}, {count} rows); "
                + _fix_hint(kind, min_rows_per_class)
            ),
            result_json,
            quarantine,
        )
    if len(class_counts) < 2:
        found = ", ".join(f"{k!r}: {v}" for k, v in class_counts.items())
        msg = (
            f"only {len(class_counts)} class remains among the {len(valid)} valid rows ({found}); "
            "at least 2 classes are needed to detect label errors"
        )
        if dropped_classes:
            msg += (
                f" ({len(dropped_classes)} other class(es) had fewer than {min_rows_per_class} valid rows "
                "and were quarantined)"
            )
        msg += "; " + _fix_hint(_CLASS_TOO_SMALL if dropped_classes else "", min_rows_per_class)
        raise _with_record(ValidationError(msg), result_json, quarantine)
    if not table_result.success:  # pragma: no cover - the two checks above mirror the table suite
        raise _with_record(
            ValidationError("the table-level data checks failed; see the validation result"), result_json, quarantine
        )

    return ValidationOutcome(valid=valid, quarantine=quarantine, result_json=result_json, class_counts=class_counts)


def dropped_classes_message(dropped: dict[str, int], *, min_rows_per_class: int) -> str:
    """The warning (or, with ``--strict``, the error) for classes quarantined whole because they are too small.

    Args:
        dropped: label -> valid rows of each class that had fewer than ``min_rows_per_class`` (non-empty).
        min_rows_per_class: the rows per class detection needs (the fold count, or the fewest automatic folds).

    Returns:
        one line naming every dropped class with its rows, what it means (missing from the export and the
        system prompt) and the fixes: merge the class, add examples, or fewer folds where that would keep it.
    """
    shown = ", ".join(f"{label!r} ({n} row{'s' * (n != 1)})" for label, n in dropped.items())
    what = "class" if len(dropped) == 1 else f"{len(dropped)} classes"
    fixes = ["merge it into another class", f"add examples (at least {min_rows_per_class} per class)"]
    fewest = min(dropped.values())
    if fewest >= 2:
        fixes.append(f"pass --folds {fewest} (detection with fewer folds)")
    return (
        f"{what} {shown} dropped: fewer than {min_rows_per_class} valid rows, the least cross-validated detection "
        f"needs; the export and its system prompt lack {'it' if len(dropped) == 1 else 'them'}. Fix: "
        + ", or ".join(fixes)
    )


def merge_reason_counts(*counts: dict[str, int]) -> dict[str, int]:
    """Sum reason-kind counts (ingest's and validation's, each counted from structured data), most frequent first."""
    total: dict[str, int] = {}
    for c in counts:
        for kind, n in c.items():
            total[kind] = total.get(kind, 0) + int(n)
    return dict(sorted(total.items(), key=lambda kv: (-kv[1], kv[0])))


# --------------------------------------------------------------------------------------------------------------------
# helpers: pandas
# --------------------------------------------------------------------------------------------------------------------


def _fix_hint(kind: str, min_rows_per_class: int) -> str:
    """What the user can do when the run stops because ``kind`` (a reason kind) emptied the table."""
    if kind.startswith("class with fewer than"):
        lower = " or lower --folds (2 at least)" if min_rows_per_class > 2 else ""
        return f"add examples so that each class has at least {min_rows_per_class} rows{lower}"
    if kind.startswith("text"):
        return "check --text-col names the text column and the --min-text-chars/--max-text-chars limits"
    if kind.startswith("label"):
        return "check --label-col names the label column"
    if kind.startswith("duplicate id"):
        return "check --id-col names a column of unique ids"
    return "add labelled examples of at least 2 classes"


def _check_params(min_text_chars: int, max_text_chars: int, min_rows_per_class: int) -> None:
    """Raise :class:`ConfigError` for thresholds no validation can use."""
    if min_text_chars < 1:
        raise ConfigError(f"min_text_chars must be at least 1 (got {min_text_chars})")
    if max_text_chars < min_text_chars:
        raise ConfigError(f"max_text_chars ({max_text_chars}) must be at least min_text_chars ({min_text_chars})")
    if min_rows_per_class < 1:
        raise ConfigError(f"min_rows_per_class must be at least 1 (got {min_rows_per_class})")


def _as_str(series: pd.Series) -> pd.Series:
    """Return ``series`` positionally indexed, as strings: a string-dtype or all-``str`` object column as it is,
    anything else (categorical, numbers, mixed objects) as an object column of ``str`` with nulls kept."""
    s = series.reset_index(drop=True)
    if isinstance(s.dtype, pd.StringDtype):
        return s
    if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
        return s
    out = s.astype(object)
    notna = out.notna()
    out[notna] = out[notna].astype(str)
    return out.where(notna, None)


def _int_strings(values: np.ndarray) -> np.ndarray:
    """Render numbers (float or int array, no NaN) as decimal integer strings, as an object array."""
    return np.asarray(values, dtype=np.int64).astype(str).astype(object)


class _ReasonBuilder:
    """Accumulates, per input position, the reasons of the failed checks in the order they are added."""

    def __init__(self, n_rows: int) -> None:
        self._n = n_rows
        self._parts: list[tuple[str, np.ndarray, np.ndarray]] = []  # (kind, positions, reason per position)
        self.any_mask = np.zeros(n_rows, dtype=bool)

    def add(self, kind: str, mask: np.ndarray, reason: str | np.ndarray) -> None:
        """Record ``reason`` (one string, or one per ``True`` of ``mask``, in order) for the rows of ``mask``."""
        pos = np.flatnonzero(mask)
        if len(pos) == 0:
            return
        texts = np.full(len(pos), reason, dtype=object) if isinstance(reason, str) else np.asarray(reason, object)
        self._parts.append((kind, pos, texts))
        self.any_mask[pos] = True

    def kind_counts(self) -> dict[str, int]:
        """Number of rows that failed each kind of check (a row may count under several kinds)."""
        counts: dict[str, int] = {}
        for kind, pos, _ in self._parts:
            counts[kind] = counts.get(kind, 0) + len(pos)
        return counts

    def joined(self, positions: np.ndarray) -> np.ndarray:
        """Reasons of the rows at ``positions`` (sorted), each joined with ``"; "``, as an object array."""
        out = np.full(self._n, None, dtype=object)
        for _, pos, texts in self._parts:
            prev = out[pos]
            has_prev = prev != None  # noqa: E711 - elementwise comparison on an object array
            combined = texts.copy()
            if has_prev.any():
                combined[has_prev] = prev[has_prev] + "; " + texts[has_prev]
            out[pos] = combined
        return out[positions]


# --------------------------------------------------------------------------------------------------------------------
# helpers: Great Expectations
# --------------------------------------------------------------------------------------------------------------------


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence Python warnings while GX runs (GX and its dependencies emit deprecation/future warnings)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _row_suite(min_text_chars: int, max_text_chars: int) -> ExpectationSuite:
    """The row-level suite, run on a frame with columns row_id, text, text_stripped (None if blank), label."""
    with _quiet():
        import great_expectations as gx
        import great_expectations.expectations as gxe

        suite = gx.ExpectationSuite(name=ROW_SUITE_NAME)
        for key, exp in (
            ("text_missing", gxe.ExpectColumnValuesToNotBeNull(column="text")),
            ("text_blank", gxe.ExpectColumnValuesToNotMatchRegex(column="text", regex=BLANK_TEXT_REGEX)),
            (
                "text_length",
                gxe.ExpectColumnValueLengthsToBeBetween(
                    column="text_stripped", min_value=min_text_chars, max_value=max_text_chars
                ),
            ),
            ("label_null", gxe.ExpectColumnValuesToNotBeNull(column="label")),
            ("label_empty", gxe.ExpectColumnValueLengthsToBeBetween(column="label", min_value=1)),
            ("row_id_unique", gxe.ExpectColumnValuesToBeUnique(column="row_id")),
        ):
            exp.meta = {"labelgate_check": key}
            suite.add_expectation(exp)
    return suite


def _table_suite() -> ExpectationSuite:
    """The table-level suite, run on a frame with the single column ``label`` of the final valid rows."""
    with _quiet():
        import great_expectations as gx
        import great_expectations.expectations as gxe

        suite = gx.ExpectationSuite(name=TABLE_SUITE_NAME)
        for key, exp in (
            ("has_valid_rows", gxe.ExpectTableRowCountToBeBetween(min_value=1)),
            ("at_least_2_classes", gxe.ExpectColumnUniqueValueCountToBeBetween(column="label", min_value=2)),
        ):
            exp.meta = {"labelgate_check": key}
            suite.add_expectation(exp)
    return suite


def _run_suite(engine: SuiteRunner, suite: ExpectationSuite, frame: pd.DataFrame) -> Any:
    """Validate ``frame`` (RangeIndex) against ``suite`` with ``engine``; return the GX suite validation result.

    Raises RuntimeError when GX itself failed on an expectation (an exception inside GX is a bug, not bad data).
    """
    result = engine.run(suite, frame, result_format=_RESULT_FORMAT)
    for r in result.results:
        info = r.exception_info or {}
        if info.get("raised_exception"):
            raise RuntimeError(
                f"great_expectations failed on {r.expectation_config.type}: {info.get('exception_message')}"
            )
    return result


def _failed_positions(result: Any, n_rows: int) -> dict[str, np.ndarray]:
    """Map each ``labelgate_check`` key of a row-suite result to a boolean mask of the failing positions."""
    masks: dict[str, np.ndarray] = {}
    for r in result.results:
        key = r.expectation_config.meta["labelgate_check"]
        mask = np.zeros(n_rows, dtype=bool)
        if not r.success:
            idx = r.result.get("unexpected_index_list")
            if idx is None:  # pragma: no cover - COMPLETE result format always returns it for map expectations
                raise RuntimeError(f"great_expectations returned no unexpected_index_list for {key}")
            mask[np.asarray(idx, dtype=np.int64)] = True
        masks[key] = mask
    return masks


def _suite_json(suite: ExpectationSuite) -> dict[str, Any]:
    """JSON-serialisable dict of a suite (name, expectations with their kwargs and meta)."""
    with _quiet():
        return dict(suite.to_json_dict())


def _result_json(result: Any) -> dict[str, Any]:
    """JSON-serialisable dict of a suite validation result, without the (possibly huge) full index lists."""
    for r in result.results:
        r.result.pop("unexpected_index_list", None)
    with _quiet():
        return dict(result.to_json_dict())


def _with_record(err: ValidationError, result_json: dict[str, Any], quarantine: pd.DataFrame) -> ValidationError:
    """Attach the validation record and the quarantine table to ``err`` (as ``err.result_json`` and
    ``err.quarantine``) so that a caller can still store them when the run stops."""
    err.result_json = result_json  # type: ignore[attr-defined]
    err.quarantine = quarantine  # type: ignore[attr-defined]
    return err
