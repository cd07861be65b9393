"""Shared plumbing of labelgate's commands: environment, error handling, common options.

Command modules (``labelgate/cli.py``, ``labelgate/commands/*.py``) build on these so that every
command turns errors into one line and a non-zero exit the same way.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from labelgate.errors import ConfigError, LabelgateError

DEFAULT_DB = "labelgate.duckdb"


def prepare_environment(verbose: bool = False) -> None:
    """Settings for the in-process Prefect API and quiet libraries; set before Prefect is imported.

    Values already set in the environment win.
    """
    defaults = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "GX_ANALYTICS_ENABLED": "false",
        "TOKENIZERS_PARALLELISM": "false",
        # Prefect logs still reach its API (and UI); the terminal gets labelgate's own summary.
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO" if verbose else "CRITICAL",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn exceptions into one-line messages and exit codes."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        verbose = bool(kwargs.get("verbose"))
        try:
            return func(*args, **kwargs)
        except LabelgateError as err:
            if verbose:
                traceback.print_exc()
            click.echo(f"labelgate: error: {err}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("labelgate: interrupted", err=True)
            sys.exit(130)
        except click.exceptions.Exit:
            raise
        except Exception as err:
            if verbose:
                traceback.print_exc()
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            click.echo(
                f"labelgate: internal error: {type(err).__name__}: {first} (run again with --verbose for details)",
                err=True,
            )
            sys.exit(1)

    return wrapper


def make_params(**options: Any) -> Any:
    """Build CurateParams from the options the user set (None = keep the default)."""
    from pydantic import ValidationError as PydanticValidationError

    from labelgate.config import CurateParams

    given = {k: v for k, v in options.items() if v is not None}
    try:
        return CurateParams(**given)
    except PydanticValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "parameters"
        raise ConfigError(f"--{field.replace('_', '-')}: {first['msg']} (got {first.get('input')!r})") from None


verbose_option = click.option("-v", "--verbose", is_flag=True, help="Show Prefect's logs and tracebacks.")
db_option = click.option("--db", "db_path", default=DEFAULT_DB, show_default=True, help="DuckDB file of the runs.")
