"""The shape of ``src/``: no import cycle inside the package, no module over 500 lines.

The import graph is read from the source with :mod:`ast`, so it sees every import that runs:
at module level and inside functions (a function-local import that dodges a cycle at import
time is still a cycle in the design). Only imports under ``if TYPE_CHECKING:`` are left out;
they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "beacon_orchestrator"
MAX_LINES = 500

Graph = Mapping[str, frozenset[str]]


# -- reading the graph ------------------------------------------------------------------------


def modules_of(package: Path) -> dict[str, Path]:
    """Every module under ``package`` by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in ``nodes`` and below, except under ``if TYPE_CHECKING:``."""
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _runtime_imports(node.orelse)  # an ``else:`` beside it does run
        else:
            yield from _runtime_imports(ast.iter_child_nodes(node))


def _base_of(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name ``from <base> import ...`` refers to, in ``module``."""
    if node.level == 0:
        return node.module or ""
    here = module.split(".") if is_package else module.split(".")[:-1]
    anchor = here[: len(here) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """The modules of the package that ``module`` (at ``path``) imports when it runs.

    ``from pkg import name`` imports ``pkg`` (its ``__init__``), and ``pkg.name`` too when that
    is a submodule. The one exception is ``from . import sibling`` (a submodule of the module's
    own package): that package is already being imported, and Python loads the submodule
    without needing its ``__init__`` to have finished, so it is an edge to the sibling only.
    """
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _runtime_imports([ast.parse(path.read_text(encoding="utf-8"), str(path))]):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = _base_of(node, module, is_package)
        submodules = {f"{base}.{alias.name}" for alias in node.names} & known.keys()
        own_package = module.startswith(f"{base}.")
        if not (own_package and len(submodules) == len(node.names)):
            found.add(base)
        found.update(submodules)
    return {name for name in found if name in known and name != module}


def import_graph(package: Path) -> dict[str, frozenset[str]]:
    """Module -> the modules of the same package it imports, for every module of ``package``."""
    known = modules_of(package)
    return {name: frozenset(imports_of(name, path, known)) for name, path in known.items()}


# -- finding cycles ---------------------------------------------------------------------------


def _strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's components, each with more than one module (self-imports are not collected)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(out)


def _path_back(graph: Graph, start: str, members: set[str]) -> list[str]:
    """A shortest cycle from ``start`` back to itself through ``members`` (breadth first)."""
    parent: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        reached: list[str] = []
        for node in frontier:
            for nxt in sorted(graph.get(node, frozenset()) & members):
                if nxt == start:
                    path = [node]
                    while (before := parent[path[-1]]) is not None:
                        path.append(before)
                    return [*reversed(path), start]
                if nxt not in parent:
                    parent[nxt] = node
                    reached.append(nxt)
        frontier = reached
    raise AssertionError(f"{start} is in a component but on no cycle")  # pragma: no cover


def find_cycles(graph: Graph) -> list[list[str]]:
    """One import cycle per knot of mutually importing modules, as ``[a, b, ..., a]``."""
    return [_path_back(graph, c[0], set(c)) for c in _strongly_connected(graph)]


# -- the package ------------------------------------------------------------------------------


def test_no_import_cycle_inside_the_package() -> None:
    cycles = find_cycles(import_graph(PACKAGE))
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_is_over_500_lines() -> None:
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(SRC.rglob("*.py"))
    }
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert over == {}, f"modules over {MAX_LINES} lines: " + ", ".join(
        f"{name} ({n})" for name, n in over.items()
    )


# -- the detector itself, on small packages written for it ------------------------------------


def write_package(root: Path, files: Mapping[str, str]) -> Path:
    """Write ``files`` (path under the package -> source) as package ``pkg`` under ``root``."""
    package = root / "pkg"
    for name, source in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return package


def test_detector_finds_a_cycle_through_a_function_local_import(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from .b import helper\n",
            "b.py": "def helper():\n    from pkg.a import thing\n    return thing\n",
        },
    )
    assert find_cycles(import_graph(package)) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_detector_ignores_type_checking_imports(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from .b import helper\n",
            "b.py": (
                "import typing\nfrom typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from .a import Thing\n"
                "if typing.TYPE_CHECKING:\n    from . import a\nelse:\n    import pkg.c\n"
            ),
            "c.py": "",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.b"] == {"pkg.c"}  # the else branch runs
    assert find_cycles(graph) == []


def test_detector_finds_a_submodule_importing_its_own_package(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "__init__.py": "from .sub import thing\nname = 1\n",
            "sub.py": "from . import name\nthing = name\n",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.sub"] == {"pkg"}
    assert find_cycles(graph) == [["pkg", "pkg.sub", "pkg"]]


def test_detector_lets_a_submodule_import_a_sibling_submodule(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "__init__.py": "from .sub import thing\n",
            "sub.py": "from . import other\nthing = other\n",
            "other.py": "",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.sub"] == {"pkg.other"}
    assert find_cycles(graph) == []


def test_detector_resolves_relative_imports(tmp_path: Path) -> None:
    package = write_package(
        tmp_path,
        {
            "__init__.py": "from .inner import run\n",
            "_spec.py": "",
            "inner/__init__.py": "from ._app import run\nfrom . import _app\n",
            "inner/_app.py": (
                "from .._spec import X\nfrom .. import _spec\nimport os\n"
                "def run():\n    from ._late import y\n"
            ),
            "inner/_late.py": "from pkg._spec import X as Y\n",
        },
    )
    assert import_graph(package) == {
        "pkg": {"pkg.inner"},
        "pkg._spec": set(),
        "pkg.inner": {"pkg.inner._app"},
        "pkg.inner._app": {"pkg._spec", "pkg.inner._late"},  # pkg is already importing
        "pkg.inner._late": {"pkg._spec"},
    }
    assert find_cycles(import_graph(package)) == []


@pytest.mark.parametrize(
    ("graph", "cycles"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c", "a"]]),
        ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b", "a"], ["c", "d", "c"]]),
    ],
)
def test_find_cycles(graph: dict[str, set[str]], cycles: list[list[str]]) -> None:
    assert find_cycles({k: frozenset(v) for k, v in graph.items()}) == cycles
