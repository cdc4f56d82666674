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
