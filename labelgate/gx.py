"""The Great Expectations engine of the validate stage: an ephemeral GX data context that runs suites on frames.

:mod:`labelgate.core.validate` builds the suites and reads their results; this module owns the GX context (created
once per process by :func:`default_engine`, or per caller with :class:`GxEngine`), so ``core`` keeps no process-wide
state. The context stores nothing on disk (no data docs, no analytics, no progress bars).
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from typing import Any

import pandas as pd

from labelgate.core.validate import ValidationOutcome, validate_rows

__all__ = ["GxEngine", "default_engine", "validate"]


class GxEngine:
    """An ephemeral GX context with one whole-dataframe batch definition; :meth:`run` validates a frame."""

    def __init__(self) -> None:
        gx_logger = logging.getLogger("great_expectations")
        if gx_logger.level == logging.NOTSET:
            gx_logger.setLevel(logging.ERROR)
        self._lock = threading.RLock()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import great_expectations as gx
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            config = DataContextConfig(
                # no temporary data-docs directory, no analytics, no tqdm bars
                store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                analytics_enabled=False,
                progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            )
            context = gx.get_context(mode="ephemeral", project_config=config)
            asset = context.data_sources.add_pandas("labelgate").add_dataframe_asset("rows")
            self._batch_definition = asset.add_batch_definition_whole_dataframe("whole")
        self.version = str(gx.__version__)

    def run(self, suite: Any, frame: pd.DataFrame, *, result_format: dict[str, Any]) -> Any:
        """Validate ``frame`` (RangeIndex) against ``suite``; the GX ExpectationSuiteValidationResult."""
        from great_expectations.validator.v1_validator import Validator

        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # What ValidationDefinition.run does, minus storing the result in the context: the batch is loaded (and
            # fingerprinted by GX) once, whereas batch_definition.get_batch(...).validate(...) loads it twice.
            validator = Validator(
                batch_definition=self._batch_definition,
                batch_parameters={"dataframe": frame},
                result_format=result_format,
            )
            return validator.validate_expectation_suite(suite)


@functools.lru_cache(maxsize=1)
def default_engine() -> GxEngine:
    """The process's engine, created on first use (creating a GX context takes about a second)."""
    return GxEngine()


def validate(rows: pd.DataFrame, **settings: Any) -> ValidationOutcome:
    """:func:`labelgate.core.validate.validate_rows` with :func:`default_engine`."""
    return validate_rows(rows, engine=default_engine(), **settings)
