"""The core imports no plugin: no module of ``core/`` imports a plugin package (``core_*``),
at module level or inside a function, read from the source with ``ast``."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

CORE = Path(__file__).parent.parent / "core"
PLUGIN_PREFIX = "core_"


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every module an ``import``, a ``from ... import`` or an ``importlib.import_module`` /
    ``__import__`` call with a literal name brings in, anywhere in ``tree``: (line, name)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def plugin_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [f"{path.relative_to(CORE.parent)}:{line} imports {name}"
            for line, name in imported_modules(tree) if name.split(".")[0].startswith(PLUGIN_PREFIX)]


def test_no_core_module_imports_a_plugin():
    modules = sorted(CORE.rglob("*.py"))
    assert len(modules) > 20  # the scan sees the package
    found = [problem for module in modules for problem in plugin_imports(module)]
    assert found == [], "core must not import plugins; give them a hook instead:\n" + "\n".join(found)


@pytest.mark.parametrize("source", [
    "import core_mlcomponent",
    "from core_mlcomponent.manifest import config_from_manifest",
    "def f():\n    from core_protocol_v2 import routes\n",
    "class C:\n    def m(self):\n        import core_binarizer_onnx.model as m\n",
    "import importlib\nimportlib.import_module('core_storage_disk')",
    "__import__('core_storage_memory.storage')",
])
def test_the_scan_finds_every_form_of_import(source):
    names = [name for _line, name in imported_modules(ast.parse(source))]
    assert any(name.startswith(PLUGIN_PREFIX) for name in names), names


def test_the_scan_leaves_core_and_other_packages_alone():
    tree = ast.parse("import core.config\nfrom core import hookimpl\nimport corelib\nfrom . import x\n"
                     "import importlib\nimportlib.import_module(name)\n")
    assert [name for _line, name in imported_modules(tree)] == ["core.config", "core", "corelib", "importlib"]


# ---------------------------------------------------------------------- no import circles


def core_module(path: Path) -> str:
    """``core/http/gate.py`` -> ``core.http.gate``; ``core/http/__init__.py`` -> ``core.http``."""
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each module of ``core`` and the modules of ``core`` it imports, in any form (under
    ``TYPE_CHECKING`` and inside functions too): ``from core import x`` counts as importing
    ``core.x`` when that is a module, else the package ``core``."""
    modules = {core_module(path): path for path in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                           else node.module for alias in node.names]
            edges |= {target for target in targets if target in modules and target != name}
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_core_modules_form_no_import_circle():
    graph = import_graph()
    assert "core.http.gate" in graph and "core.web" in graph["core.up"]  # the scan sees the package
    assert circles(graph) == [], "core's modules import each other in a circle; pass a narrow " \
                                 "interface (a Protocol) instead of importing upward"


def test_the_architectures_know_nothing_of_http():
    graph = import_graph()
    for path in sorted((CORE / "architectures").glob("*.py")):
        name = core_module(path)
        assert not {t for t in graph[name] if t.startswith(("core.http", "core.web", "core.up"))}, name
        assert "starlette" not in path.read_text(), name


def test_the_circle_finder_finds_one():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
