"""The documentation matches the code: the generated CLI reference, every option, every environment variable,
every link and repository path, and the README's length. Reads files only; writes nothing tracked."""

from __future__ import annotations

import difflib
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import click
import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
REGENERATE = "python scripts/cli_reference.py > docs/cli.md"

#: a LABELGATE_ environment variable as the code spells it (digits included: LABELGATE_EMBED_BF16)
ENV_VAR = re.compile(r"\bLABELGATE_[A-Z0-9_]*[A-Z0-9]\b")
#: top-level entries of the repository that a path in backticks may start with
REPO_ROOTS = ("labelgate/", "tests/", "scripts/", "benchmarks/", "docs/", "data/", ".ci/")
REPO_FILES = ("README.md", "LICENSE", "prefect.yaml", "pyproject.toml")
MD_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cli_reference", REPO / "scripts" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _doc_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _sections(text: str) -> dict[str, str]:
    """``## heading`` -> the text up to the next ``## `` heading."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _commands() -> list[tuple[str, click.Command, click.Context]]:
    from labelgate.cli import main

    found = []

    def walk(command: click.Command, ctx: click.Context) -> None:
        found.append((ctx.command_path, command, ctx))
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, click.Context(sub, info_name=name, parent=ctx))

    walk(main, click.Context(main, info_name="labelgate", **main.context_settings))
    return found


def env_vars_in_code(package: Path) -> set[str]:
    """Every LABELGATE_* name that appears in the package's Python source."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        names |= set(ENV_VAR.findall(path.read_text(encoding="utf-8")))
    return names


def _anchors(doc: Path) -> set[str]:
    """GitHub's anchors of a markdown file's headings: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"^```.*?^```", "", doc.read_text(encoding="utf-8"), flags=re.M | re.S)
    slugs = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        slugs.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return slugs


def missing_targets(doc: Path, root: Path) -> list[str]:
    """Relative links and repository paths in backticks of ``doc`` that do not exist under ``root``.

    A link is checked relative to the document, and its #anchor against the target's headings; a code span is
    a repository path when it is one word starting with a top-level folder of the repo (``labelgate/``,
    ``tests/``, …) or naming a top-level file; ``path:obj`` and ``path::test`` suffixes are dropped, and spans
    with a placeholder (``<``, ``*``, ``{``, ``…``) are skipped.
    """
    text = doc.read_text(encoding="utf-8")
    text_no_fences = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    missing: list[str] = []
    for match in MD_LINK.finditer(text_no_fences):
        target = match.group(1) or match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        path, _, anchor = target.partition("#")
        file = doc.parent / path if path else doc
        if not file.exists():
            missing.append(f"link {path}")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            missing.append(f"anchor {target}")
    for match in CODE_SPAN.finditer(text_no_fences):
        span = match.group(1).strip()
        if " " in span or any(c in span for c in "<*{…$") or span.startswith(("-", "/")):
            continue
        if not (span.startswith(REPO_ROOTS) or span in REPO_FILES):
            continue
        path = re.split(r"::|:(?=[A-Za-z_])", span, maxsplit=1)[0].rstrip("/")
        if not (root / path).exists():
            missing.append(f"path {span}")
    return missing


def test_cli_reference_is_current() -> None:
    generated = _load_generator().render()
    current = (DOCS / "cli.md").read_text(encoding="utf-8")
    diff = difflib.unified_diff(
        current.splitlines(), generated.splitlines(), "docs/cli.md", "generated", n=0, lineterm=""
    )
    first = "\n".join(list(diff)[:12])
    assert current == generated, f"docs/cli.md is stale: regenerate it with `{REGENERATE}`\n{first}"


@pytest.mark.parametrize(
    ("help_text", "short_help", "expected"),
    [
        (
            "Write again (e.g. after a review). More.",
            None,
            "Write again (e.g. after a review).",
        ),
        ("First sentence.\n\nSecond paragraph.", None, "First sentence."),
        ("word " * 30, None, ("word " * 19).strip() + "..."),
        ("Long help. More.", "Its own summary", "Its own summary"),
        ("", None, ""),
    ],
)
def test_a_command_summary_is_its_first_sentence_whatever_click_version(
    help_text: str, short_help: str | None, expected: str
) -> None:
    command = click.Command("x", help=help_text, short_help=short_help)
    summary = _load_generator()._summary(command)
    assert summary == expected
    assert len(summary) <= 100


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    sections = _sections((DOCS / "cli.md").read_text(encoding="utf-8"))
    missing = []
    for path, command, ctx in _commands():
        body = sections.get(path)
        if body is None:
            missing.append(f"command {path}")
            continue
        for param in command.get_params(ctx):
            is_option = isinstance(param, click.Option)
            names = param.opts + param.secondary_opts if is_option else [param.human_readable_name]
            missing += [f"{path} {n}" for n in names if f"`{n}`" not in body]
    assert not missing, f"not in docs/cli.md: {missing}; regenerate it with `{REGENERATE}`"


def test_every_run_setting_is_in_the_cli_reference() -> None:
    from labelgate.config import CurateParams

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [name for name in CurateParams.model_fields if f"| `{name}` |" not in text]
    assert not missing, f"CurateParams fields missing from docs/cli.md: {missing}; regenerate: `{REGENERATE}`"


def test_every_labelgate_environment_variable_is_documented() -> None:
    in_code = env_vars_in_code(REPO / "labelgate")
    assert "LABELGATE_DB_WAIT_S" in in_code  # the scan itself works
    operations = (DOCS / "operations.md").read_text(encoding="utf-8")
    documented = set(ENV_VAR.findall(operations))
    missing = sorted(in_code - documented)
    assert not missing, f"LABELGATE_* variables read by labelgate/ but not documented in docs/operations.md: {missing}"


def test_every_link_and_repository_path_in_the_docs_exists() -> None:
    problems = {doc.name: missing for doc in _doc_files() if (missing := missing_targets(doc, REPO))}
    assert not problems, f"missing link targets or paths: {problems}"


def test_the_readme_fits_and_keeps_the_set_up_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 220, f"README.md has {len(text.splitlines())} lines (at most 220)"
    assert "pip install -e . && labelgate demo" in text
    assert "bash scripts/test.sh" in text


def test_the_docs_index_names_every_doc() -> None:
    text = README.read_text(encoding="utf-8")
    unlinked = [p.name for p in sorted(DOCS.glob("*.md")) if f"(docs/{p.name})" not in text]
    assert not unlinked, f"docs not linked from the README's index: {unlinked}"


def test_the_checkers_find_what_is_wrong(tmp_path: Path) -> None:
    """The link/path and env-var scans report a broken doc and an undocumented variable (they can fail)."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "labelgate").mkdir()
    (tmp_path / "labelgate" / "real.py").write_text('X = os.environ.get("LABELGATE_SOME_VAR_2")\n')
    doc = tmp_path / "docs" / "x.md"
    doc.write_text(
        "# Top\n[ok](../labelgate/real.py) [gone](nope.md#a) [web](https://example.org) [here](#top) [no](#nowhere)\n"
        "`labelgate/real.py:func` `labelgate/missing.py` `tests/x.py::test_y` `exports/<run_id>/` `not a path`\n"
        "```\n`labelgate/in_a_fence.py`\n```\n"
    )
    assert missing_targets(doc, tmp_path) == [
        "link nope.md",
        "anchor #nowhere",
        "path labelgate/missing.py",
        "path tests/x.py::test_y",
    ]
    assert env_vars_in_code(tmp_path / "labelgate") == {"LABELGATE_SOME_VAR_2"}
