"""The one Jinja2 environment of labelgate's pages: one template folder, autoescaping always on, every filter.

Every page (runs, review, login, error, dashboard, row history) renders through :func:`environment`; no other
module builds a ``jinja2.Environment`` (tests/test_architecture.py checks it). Filters (:data:`FILTERS`, one
function per name, all in :mod:`labelgate.web.formatting`):

- ``pct``: whole percent, blank when missing (review page); ``pct1``: one decimal, ``–`` when missing (dashboard)
- ``num(digits=2)``: fixed decimals, blank when missing
- ``score`` (3 decimals), ``signed`` (3 decimals with sign), ``duration`` (seconds as s / min / h)
- ``checkval(name)`` and ``checkname``: a quality check's figure and name
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from labelgate.web import formatting

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: filter name -> function (one definition per name)
FILTERS: dict[str, Callable[..., str]] = {
    "pct": formatting.pct,
    "pct1": formatting.pct1,
    "num": formatting.num,
    "score": formatting.score,
    "signed": formatting.signed,
    "duration": formatting.duration,
    "checkval": formatting.check_value,
    "checkname": formatting.check_name,
}


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The environment over ``labelgate/web/templates`` (autoescaped, strict undefined, :data:`FILTERS`); built
    once per process and shared by every app (it holds no per-app state)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def render(template: str, **context: Any) -> str:
    """``template`` (a file name under ``templates/``) rendered with ``context``."""
    return environment().get_template(template).render(**context)
