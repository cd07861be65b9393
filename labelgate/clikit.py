"""Shared plumbing of labelgate's commands: environment, error handling, common options.

The command modules (``labelgate/commands/*.py``, registered on the group in ``labelgate/cli.py``) build on these
so that every command turns errors into one line and a non-zero exit the same way.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from labelgate.errors import ConfigError, LabelgateError

DEFAULT_DB = "labelgate.duckdb"


class _Off:
    """The type of :data:`OFF` (one instance; compared with ``is``, so no option's own text can be taken for it)."""

    def __repr__(self) -> str:
        return "off"


#: what ``--exclude-doubtful off`` (and the other :class:`ThresholdOrOff` options) turns into: the option was given,
#: and it asks for the setting's "off" value (None), which click's own None (option not given) cannot say
OFF = _Off()


class ThresholdOrOff(click.ParamType):
    """A threshold a user can switch off: a number, or ``off`` (also ``never``, ``none``) for the setting's None.

    ``off`` converts to :data:`OFF`; :func:`make_params` turns it into None, so the CurateParams field that allows
    None gets it. Range checks stay with CurateParams (their message names the option and quotes the value).
    """

    name = "number|off"
    words = ("off", "never", "none")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float) or value is OFF:
            return value
        text = str(value).strip()
        if text.lower() in self.words:
            return OFF
        try:
            return float(text)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor one of {', '.join(self.words)}", param, ctx)


def prepare_environment(verbose: bool = False) -> None:
    """Settings for the in-process Prefect API and quiet libraries; set before Prefect is imported.

    Values already set in the environment win.
    """
    defaults = {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        # the ephemeral API registers Prefect's block types at each start (~3 s on a fresh PREFECT_HOME); labelgate
        # uses no blocks. Without memoizing, the memo store keeps no hash, so a `prefect server start` on the same
        # PREFECT_HOME still registers them.
        "PREFECT_SERVER_REGISTER_BLOCKS_ON_START": "false",
        "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
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


def option_names(ctx: click.Context | None = None) -> dict[str, str]:
    """Parameter name -> the option a user types (``n_folds`` -> ``--folds``) for the current click command."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return {}
    names: dict[str, str] = {}
    for param in ctx.command.params:
        if isinstance(param, click.Option) and param.name:
            long = [o for o in param.opts if o.startswith("--")]
            names[param.name] = (long or param.opts)[0]
    return names


def describe_field(field: str, names: dict[str, str]) -> str:
    """How to name a CurateParams field in an error: the option typed for it, else ``parameter FIELD``."""
    return names.get(field) or f"parameter {field}"


def _name_fields(message: str, names: dict[str, str]) -> str:
    """Replace the CurateParams field names that ``message`` mentions with the options a user types."""
    from labelgate.config import CurateParams

    fields = sorted((f for f in CurateParams.model_fields if f in names), key=len, reverse=True)
    if not fields:
        return message
    pattern = re.compile(r"\b(" + "|".join(re.escape(f) for f in fields) + r")\b")
    return pattern.sub(lambda m: names[m.group(1)], message)


def make_params(**options: Any) -> Any:
    """Build CurateParams from the options the user set (None = keep the default).

    Raises:
        ConfigError: every invalid value at once, each named by the option the user typed (``--folds``, not
            the field ``n_folds``) when the current click command has one for it.
    """
    from pydantic import ValidationError as PydanticValidationError

    from labelgate.config import CurateParams

    given = {k: (None if v is OFF else v) for k, v in options.items() if v is not None}
    try:
        return CurateParams(**given)
    except PydanticValidationError as err:
        names = option_names()
        problems = []
        for e in err.errors():
            msg = _name_fields(str(e["msg"]).removeprefix("Value error, "), names)
            if e["loc"]:
                field = str(e["loc"][0])
                problems.append(f"{describe_field(field, names)}: {msg} (got {e.get('input')!r})")
            else:
                problems.append(msg)
        raise ConfigError("; ".join(problems)) from None


def stored_params(stored: dict[str, Any], **overrides: Any) -> Any:
    """A stored run's CurateParams (``runs.params_json``) with the options the user set now (None = not set).

    A setting the run had off (stored None) stays off, and a setting of :data:`labelgate.config.ONCE_OFF` the run's
    record lacks (stored before the setting existed) is off, where :func:`make_params` would give today's default:
    what a later export's manifest records is what the run did.

    Raises:
        ConfigError: as :func:`make_params`.
    """
    from labelgate.config import ONCE_OFF

    was = {k: OFF if v is None else v for k, v in stored.items()}
    for name in ONCE_OFF:
        was.setdefault(name, OFF)
    return make_params(**{**was, **{k: v for k, v in overrides.items() if v is not None}})


verbose_option = click.option("-v", "--verbose", is_flag=True, help="Show Prefect's logs and tracebacks.")
db_option = click.option("--db", "db_path", default=DEFAULT_DB, show_default=True, help="DuckDB file of the runs.")
