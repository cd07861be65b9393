"""The layers hold (issue 17): every SQL statement in the store, no import cycle, tasks/CLI/web apart.

Static checks over the package's source with :mod:`ast` (nothing is imported, no model, no Prefect):

- (a) no module outside ``labelgate/store`` calls ``.execute`` / ``.executemany`` / ``.sql`` or holds an SQL
  string (docstrings aside);
- (b) the import graph among labelgate modules, module-level and function-local imports alike, has no cycle;
- (c) no module under ``labelgate/tasks`` imports click or the web layer; the CLI and the web app never import
  ``labelgate.tasks``; the service layer (``labelgate/services``) imports no task, flow, click or CLI module;
- (d) one Jinja2 environment: no module but ``labelgate/web/templating.py`` builds a ``jinja2.Environment`` (or
  imports the class), so every page shares its filters.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "labelgate"

#: calls that run SQL on a DuckDB connection
SQL_CALLS = {"execute", "executemany", "sql"}
#: an SQL statement in a string (upper-case keywords, as the code base writes them)
SQL_RE = re.compile(
    r"\b(SELECT\b.*\bFROM\b|INSERT\s+(OR\s+\w+\s+)?INTO\b|DELETE\s+FROM\b|UPDATE\s+\w+\s+SET\b|"
    r"CREATE\s+(TABLE|VIEW|SEQUENCE|INDEX)\b|ALTER\s+TABLE\b|DROP\s+(TABLE|VIEW)\b)",
    re.DOTALL,
)
#: what the tasks must not import: the CLI's toolkit and the web layer
TASKS_MUST_NOT_IMPORT = ("click", "labelgate.web", "labelgate.cli", "labelgate.clikit", "labelgate.commands")
#: the CLI and web modules, which call the service layer, never the tasks
EDGE_PREFIXES = ("labelgate.cli", "labelgate.clikit", "labelgate.commands", "labelgate.web")
#: what the service layer must not import: it is called by the tasks, the flows and the CLI, never the other way
SERVICES_MUST_NOT_IMPORT = ("labelgate.tasks", "labelgate.flows", "click", *TASKS_MUST_NOT_IMPORT[2:])


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package under ``root``."""
    found = {}
    for path in sorted((root / "labelgate").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def is_store(name: str) -> bool:
    return name == "labelgate.store" or name.startswith("labelgate.store.")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def sql_violations(source: str, name: str) -> list[str]:
    """``name:line what`` for each SQL call or SQL string in ``source`` (docstrings are prose, not SQL)."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
            out.append(f"{name}:{node.lineno} calls .{node.func.attr}()")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docs
            and SQL_RE.search(node.value)
        ):
            out.append(f"{name}:{node.lineno} holds an SQL string {node.value.strip()[:60]!r}")
    return out


def imported_names(source: str) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every import in ``source``, at module level or inside a function.

    ``from a.b import c`` yields ``a.b.c`` (a module when ``c`` is one, else resolved to ``a.b`` by the caller).
    Relative imports are not used in this package and are skipped.
    """
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the labelgate modules it imports anywhere in its body (the package ``labelgate`` itself aside)."""
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for _, imported in imported_names(path.read_text(encoding="utf-8")):
            if imported.split(".")[0] != "labelgate":
                continue
            target = _resolve(imported, known)
            if target and target not in (name, "labelgate"):
                targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (each one holds an import cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = iter(range(10**9))

    def visit(v: str) -> None:  # Tarjan; the graph is small (~100 modules), recursion is fine
        index[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _starts(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer_violations(known: dict[str, Path]) -> list[str]:
    """Imports that cross the layers the wrong way: tasks -> click/web/CLI, CLI/web -> tasks, services -> tasks/
    flows/click/CLI."""
    out = []
    for name, path in known.items():
        for line, imported in imported_names(path.read_text(encoding="utf-8")):
            if _starts(name, ("labelgate.tasks",)) and _starts(imported, TASKS_MUST_NOT_IMPORT):
                out.append(f"{name}:{line} (a task module) imports {imported}")
            if _starts(name, EDGE_PREFIXES) and _starts(imported, ("labelgate.tasks",)):
                out.append(f"{name}:{line} (CLI/web) imports {imported}")
            if _starts(name, ("labelgate.services",)) and _starts(imported, SERVICES_MUST_NOT_IMPORT):
                out.append(f"{name}:{line} (a service) imports {imported}")
    return out


#: what pure logic may import from labelgate: itself and the error types
CORE_MAY_IMPORT = ("labelgate.core", "labelgate.errors")
#: calls and names that touch files or the environment (``core`` takes bytes and values from its callers)
IO_CALLS = {"open", "read_bytes", "read_text", "write_bytes", "write_text", "getenv", "iterdir", "glob", "mkdir"}


def core_violations(known: dict[str, Path]) -> list[str]:
    """``labelgate.core`` modules that import other labelgate layers, read or write files, or touch os.environ."""
    out = []
    for name, path in known.items():
        if not _starts(name, ("labelgate.core",)):
            continue
        source = path.read_text(encoding="utf-8")
        for line, imported in imported_names(source):
            if _starts(imported, ("labelgate",)) and not _starts(imported, CORE_MAY_IMPORT):
                out.append(f"{name}:{line} imports {imported}")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call):
                fn = node.func
                called = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else None
                if called in IO_CALLS:
                    out.append(f"{name}:{node.lineno} calls {called}()")
            if isinstance(node, ast.Attribute) and node.attr == "environ":
                out.append(f"{name}:{node.lineno} uses os.environ")
    return out


#: the one module that builds the Jinja2 environment of the pages
TEMPLATING = "labelgate.web.templating"


def jinja_environment_violations(source: str, name: str) -> list[str]:
    """``name:line what`` for each ``Environment(...)`` call or ``from jinja2 import Environment`` in ``source``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            fn = node.func
            called = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else None
            if called == "Environment":
                out.append(f"{name}:{node.lineno} builds a jinja2.Environment")
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module == "jinja2"
            and any(alias.name in ("Environment", "*") for alias in node.names)
        ):
            out.append(f"{name}:{node.lineno} imports jinja2.Environment")
    return out


# --- the checks ----------------------------------------------------------------------------------


def test_every_sql_statement_is_in_the_store() -> None:
    known = modules()
    assert "labelgate.store" in known or any(is_store(m) for m in known)
    found = [v for name, path in known.items() if not is_store(name) for v in sql_violations(path.read_text(), name)]
    assert found == [], "SQL outside labelgate/store:\n" + "\n".join(found)


def test_no_import_cycle_among_labelgate_modules() -> None:
    graph = import_graph(modules())
    assert graph.get("labelgate.flows.curate"), "the scan found no imports"
    found = cycles(graph)
    detail = "\n".join(f"{c}: " + "; ".join(f"{a} -> {sorted(graph[a] & set(c))}" for a in c) for c in found)
    assert found == [], "import cycles:\n" + detail


def test_tasks_import_no_click_or_web_and_cli_web_import_no_tasks() -> None:
    found = layer_violations(modules())
    assert found == [], "\n".join(found)


def test_core_is_pure_logic_no_files_no_environment_no_other_layers() -> None:
    found = core_violations(modules())
    assert found == [], "\n".join(found)


def test_only_web_templating_builds_a_jinja_environment() -> None:
    known = modules()
    assert jinja_environment_violations(known[TEMPLATING].read_text(), TEMPLATING), "the scan found no environment"
    found = [
        v
        for name, path in known.items()
        if name != TEMPLATING
        for v in jinja_environment_violations(path.read_text(encoding="utf-8"), name)
    ]
    assert found == [], "a second Jinja2 environment:\n" + "\n".join(found)


# --- the checks can fail -----------------------------------------------------------------------------


def test_the_core_check_finds_files_environment_and_layer_imports(tmp_path: Path) -> None:
    core = tmp_path / "labelgate" / "core"
    core.mkdir(parents=True)
    (core / "x.py").write_text(
        "import os\nfrom labelgate import store\n\ndef f(p):\n    os.environ['A'] = '1'\n    return p.read_bytes()\n"
    )
    found = sorted(core_violations(modules(tmp_path)))
    assert found == [
        "labelgate.core.x:2 imports labelgate.store",
        "labelgate.core.x:5 uses os.environ",
        "labelgate.core.x:6 calls read_bytes()",
    ]


@pytest.mark.parametrize(
    "source",
    [
        'def f(con):\n    con.execute("DELETE FROM rows WHERE run_id = ?", ["r"])\n',
        "def f(con):\n    return con.sql(q).df()\n",
        'Q = """SELECT row_id\n FROM issues WHERE run_id = ?"""\n',
        'def f(t):\n    return f"INSERT INTO {t} VALUES (1)"\n',
    ],
)
def test_the_sql_scan_finds_sql(source: str) -> None:
    assert sql_violations(source, "m")


def test_the_sql_scan_leaves_prose_alone() -> None:
    source = '"""Docstring: DELETE FROM rows WHERE run_id = ? is what the store does."""\nX = "select a label"\n'
    assert sql_violations(source, "m") == []


def test_the_cycle_check_sees_function_local_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "labelgate"
    (pkg / "flows").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "flows" / "__init__.py").write_text("")
    (pkg / "runners.py").write_text("def flow():\n    from labelgate.flows.curate import curate\n    return curate\n")
    (pkg / "flows" / "curate.py").write_text("from labelgate.runners import flow\n")
    (pkg / "alone.py").write_text("import labelgate.runners\n")
    found = cycles(import_graph(modules(tmp_path)))
    assert found == [["labelgate.flows.curate", "labelgate.runners"]]


def test_the_layer_check_finds_a_task_importing_click(tmp_path: Path) -> None:
    pkg = tmp_path / "labelgate"
    (pkg / "tasks").mkdir(parents=True)
    (pkg / "commands").mkdir()
    (pkg / "tasks" / "x.py").write_text("def f():\n    import click\n")
    (pkg / "commands" / "y.py").write_text("from labelgate.tasks.x import f\n")
    found = sorted(layer_violations(modules(tmp_path)))
    assert found == [
        "labelgate.commands.y:1 (CLI/web) imports labelgate.tasks.x.f",
        "labelgate.tasks.x:2 (a task module) imports click",
    ]


@pytest.mark.parametrize(
    "source",
    [
        "import jinja2\n\ndef env():\n    return jinja2.Environment(autoescape=True)\n",
        "from jinja2 import Environment\n",
        "from jinja2 import Environment as E\nENV = E()\n",
    ],
)
def test_the_jinja_scan_finds_an_environment(source: str) -> None:
    assert jinja_environment_violations(source, "m")


def test_the_jinja_scan_leaves_other_jinja_use_alone() -> None:
    source = "import jinja2\nfrom jinja2 import StrictUndefined\n\ndef f(env: jinja2.Environment):\n    return env\n"
    assert jinja_environment_violations(source, "m") == []


def repeated_test_basenames(root: Path) -> dict[str, list[str]]:
    """Test file names that occur in more than one folder under ``root`` (the test folders have no ``__init__.py``,
    so pytest imports each file under its bare name: a second ``test_x.py`` stops the whole collection)."""
    seen: dict[str, list[str]] = {}
    for path in sorted(root.rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(root)))
    return {name: paths for name, paths in seen.items() if len(paths) > 1}


def test_every_test_file_name_is_unique() -> None:
    assert repeated_test_basenames(ROOT / "tests") == {}


def test_the_name_check_finds_a_repeat(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "test_same.py").write_text("")
    (tmp_path / "a" / "test_other.py").write_text("")
    assert repeated_test_basenames(tmp_path) == {"test_same.py": ["a/test_same.py", "b/test_same.py"]}
