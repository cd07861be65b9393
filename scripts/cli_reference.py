"""Print labelgate's command-line reference (docs/cli.md), generated from the click CLI and CurateParams.

Usage:
    python scripts/cli_reference.py > docs/cli.md    # regenerate the reference
    python scripts/cli_reference.py --check          # exit 1 (and say what differs) when docs/cli.md is stale

Every command and sub-command of ``labelgate.cli.main`` is listed with its usage, its help text and a table of
its arguments and options (names, type, default, help). A default comes from the option itself, else from a
``[default: …]`` note in its help, else (options of ``run``) from the CurateParams field the option sets.
The second part lists every field of :class:`labelgate.config.CurateParams` (the ``curate`` flow's ``params``,
also the deployments' ``params`` in ``prefect.yaml``) with its type, default, the CLI options that set it and
its description. The output depends on the code only, never on the environment or the date.
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # document this checkout's code, not another install of labelgate
    sys.path.insert(0, str(ROOT))
DOC = ROOT / "docs" / "cli.md"
REGENERATE = "python scripts/cli_reference.py > docs/cli.md"

_DEFAULT_NOTE = re.compile(r"\s*\[default:\s*(.*)\]\s*$")
_ENV_NOTE = re.compile(r"\s*\[env:\s*[^\]]*\]\s*$")


def _cell(text: str) -> str:
    """One markdown table cell: a single line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    """Inline code that survives backticks inside ``text``."""
    text = str(text)
    if "`" in text:
        return f"`` {text} ``"
    return f"`{text}`"


def _is_unset(value: Any) -> bool:
    return value is None or type(value).__name__ in {"Sentinel", "_Missing"} or repr(value) == "Sentinel.UNSET"


def _type_name(param: click.Parameter) -> str:
    ptype = param.type
    if isinstance(ptype, click.Choice):
        return " | ".join(str(c) for c in ptype.choices)
    if isinstance(param, click.Option) and param.is_flag:
        return "flag"
    if isinstance(ptype, click.IntRange):
        low = "" if ptype.min is None else f"{ptype.min} ≤ "
        high = "" if ptype.max is None else f" ≤ {ptype.max}"
        return f"{low}integer{high}"
    if isinstance(ptype, click.Path):
        return "path"
    names = {"STRING": "text", "INT": "integer", "FLOAT": "number", "BOOL": "boolean"}
    return names.get(ptype.name.upper(), ptype.name)


def _field_default(name: str) -> str | None:
    from labelgate.config import CurateParams

    field = CurateParams.model_fields.get(name)
    if field is None:
        return None
    return _format_value(field.get_default(call_default_factory=True))


def _format_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "(empty)"
    if isinstance(value, dict):
        return "{}" if not value else repr(value)
    if isinstance(value, str):
        return repr(value) if (value == "" or value != value.strip() or "\n" in value) else value
    return str(value)


def _option_row(param: click.Parameter, command_path: str) -> tuple[str, str, str, str]:
    """(names, type, default, help) of one option or argument."""
    help_text = getattr(param, "help", None) or ""
    envvar = param.envvar if isinstance(param.envvar, str) else None
    help_text = _ENV_NOTE.sub("", help_text)
    default: str | None = None
    note = _DEFAULT_NOTE.search(help_text)
    if note:
        default = note.group(1).strip()
        help_text = help_text[: note.start()].rstrip()
    if isinstance(param, click.Argument):
        names = _code(param.human_readable_name)
        help_text = help_text or ("required" if param.required else "optional")
        return names, _type_name(param), "—", help_text
    assert isinstance(param, click.Option)
    names = ", ".join(_code(o) for o in [*param.opts, *param.secondary_opts])
    if default is None and not _is_unset(param.default) and not (param.is_flag and param.default is False):
        default = _format_value(param.default)
    if default is None and command_path == "labelgate run" and param.name:
        default = _field_default(param.name)
    if default is None:
        default = "off" if param.is_flag else ("required" if param.required else "none")
    if envvar:
        help_text = f"{help_text} (env: {_code(envvar)})".strip()
    if param.multiple and "repeatable" not in help_text:
        help_text = f"{help_text} (may be given several times)".strip()
    return names, _type_name(param), default, help_text or "—"


_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "vs.")


def _summary(command: click.Command, *, limit: int = 100) -> str:
    """A command's one-line summary: its ``short_help``, else its help's first sentence (at most ``limit`` chars).

    Written here rather than taken from click's ``get_short_help_str``, whose cut changes between click
    releases (8.4 ends a sentence at "e.g."), so that the reference depends on labelgate's code only.
    """
    if command.short_help:
        return command.short_help
    words = inspect.cleandoc(command.help or "").split("\n\n")[0].split()
    kept: list[str] = []
    for word in words:
        kept.append(word)
        if len(" ".join(kept)) > limit:
            while kept and len(" ".join(kept)) + 3 > limit:
                kept.pop()
            return " ".join(kept) + "..."
        if word.endswith(".") and not word.lstrip("(").lower().endswith(_ABBREVIATIONS):
            break
    return " ".join(kept)


def _help_block(text: str | None) -> list[str]:
    """A command's docstring as markdown paragraphs."""
    if not text:
        return []
    text = inspect.cleandoc(text).replace("\b\n", "")
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _usage(command: click.Command, ctx: click.Context) -> str:
    pieces = command.collect_usage_pieces(ctx)
    return " ".join([ctx.command_path, *pieces])


def _walk(command: click.Command, ctx: click.Context) -> list[tuple[click.Command, click.Context]]:
    found = [(command, ctx)]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            sub = command.commands[name]
            if getattr(sub, "hidden", False):
                continue
            found += _walk(sub, click.Context(sub, info_name=name, parent=ctx))
    return found


def _annotation(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if origin in {typing.Union, types.UnionType}:
        inner = [a for a in args if a is not type(None)]
        text = " or ".join(_annotation(a) for a in inner)
        return f"{text} or none" if len(inner) < len(args) else text
    if origin in {list, tuple, set}:
        return f"list of {_annotation(args[0]) if args else 'values'}"
    if origin is dict:
        return "mapping " + " → ".join(_annotation(a) for a in args)
    return {"str": "text", "int": "integer", "float": "number", "bool": "boolean"}.get(
        getattr(annotation, "__name__", str(annotation)), getattr(annotation, "__name__", str(annotation))
    )


def _settings_section(options_by_field: dict[str, list[str]]) -> list[str]:
    from labelgate.config import CurateParams

    lines = [
        "## Run settings (`CurateParams`)",
        "",
        "Every field of `labelgate.config.CurateParams`: the `params` of the `curate` flow, of the deployments in",
        "`prefect.yaml` and of `labelgate run` (a field without an option is set through a deployment's or a flow",
        "run's `params`). The flow's other parameters are `input_path` (a file, folder or glob), `db_path`",
        "(default `labelgate.duckdb`) and `out_dir` (default `exports`); a flow run's `params` replaces the",
        "deployment's whole mapping, so pass every field you rely on.",
        "",
        "| field | type | default | CLI | description |",
        "|---|---|---|---|---|",
    ]
    for name, field in CurateParams.model_fields.items():
        default = _format_value(field.get_default(call_default_factory=True))
        cli = ", ".join(_code(o) for o in options_by_field.get(name, [])) or "—"
        lines.append(
            f"| `{name}` | {_cell(_annotation(field.annotation))} | {_cell(default)} | {cli} | "
            f"{_cell(field.description or '—')} |"
        )
    return lines


def render() -> str:
    """The whole of docs/cli.md."""
    from labelgate.cli import main

    root = click.Context(main, info_name="labelgate", **main.context_settings)
    lines = [
        "# Command-line reference",
        "",
        f"<!-- Generated by scripts/cli_reference.py from the click CLI and CurateParams: do not edit by hand. "
        f"Regenerate with `{REGENERATE}`; tests/test_docs.py fails when this file is stale. -->",
        "",
        "Every command takes `-h/--help`. Errors are one line (`labelgate: error: …`) with exit code 2 (3: the",
        "database is busy); `-v/--verbose` shows Prefect's logs and tracebacks. `--run` takes a run id, a unique",
        "prefix of one, or `latest`.",
        "",
        "## Commands",
        "",
    ]
    commands = _walk(main, root)
    for command, ctx in commands[1:]:
        anchor = ctx.command_path.replace(" ", "-")
        short = _summary(command)
        lines.append(f"- [`{ctx.command_path}`](#{anchor}): {short}")
    lines.append("")
    options_by_field: dict[str, list[str]] = {}
    for command, ctx in commands:
        path = ctx.command_path
        params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
        lines += [f"## {path}", "", "```", _usage(command, ctx), "```", ""]
        for paragraph in _help_block(command.help):
            lines += [paragraph, ""]
        if isinstance(command, click.Group) and command is not main:
            lines += ["Sub-commands: " + ", ".join(f"`{path} {n}`" for n in sorted(command.commands)) + ".", ""]
        rows = [_option_row(p, path) for p in params]
        if rows:
            lines += ["| option | type | default | help |", "|---|---|---|---|"]
            lines += [f"| {n} | {_cell(t)} | {_cell(d)} | {_cell(h)} |" for n, t, d, h in rows]
            lines.append("")
        if path in {"labelgate run", "labelgate export", "labelgate evaluate"}:
            for p in params:
                if isinstance(p, click.Option) and p.name:
                    from labelgate.config import CurateParams

                    if p.name in CurateParams.model_fields:
                        opt = f"{path.removeprefix('labelgate ')} {p.opts[-1]}"
                        options_by_field.setdefault(p.name, []).append(opt)
    lines += _settings_section(options_by_field)
    text = "\n".join(lines).replace("\n\n\n", "\n\n").rstrip() + "\n"
    return text


def main_(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current == text:
            print(f"{DOC.relative_to(ROOT)} is current")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(), text.splitlines(), "docs/cli.md", "generated", lineterm="", n=1
        )
        print("\n".join(list(diff)[:60]))
        print(f"docs/cli.md is stale: regenerate it with `{REGENERATE}`")
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main_(sys.argv[1:]))
