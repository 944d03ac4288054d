"""The package's shape: no import cycle, and the drivers touch no private member of another class."""

from __future__ import annotations

import ast
from pathlib import Path

import steadyws

PACKAGE = Path(steadyws.__file__).parent
MODULES = {path.stem: path for path in PACKAGE.glob("*.py")}


def runtime_imports(path: Path) -> set[str]:
    """The package modules that ``path`` imports when it runs (``if TYPE_CHECKING:`` blocks are for
    the type checker only)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                continue
            if isinstance(child, ast.ImportFrom) and child.level == 1:
                if child.module:
                    found.add(child.module.split(".")[0])
                else:
                    found.update(alias.name for alias in child.names)
            visit(child)

    visit(tree)
    return found & set(MODULES)


def test_no_import_cycle() -> None:
    """The modules of steadyws import each other without a cycle (the package's __init__ aside, which
    only gathers the public names)."""
    graph = {name: runtime_imports(path) for name, path in MODULES.items() if name != "__init__"}
    assert all(graph.values()) or True
    state: dict[str, str] = {}

    def walk(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "active", "import cycle: " + " -> ".join([*trail, name])
        state[name] = "active"
        for dep in sorted(graph.get(name, ())):
            walk(dep, [*trail, name])
        state[name] = "done"

    for name in sorted(graph):
        walk(name, [])
    assert "_lib" in graph["aio"] and "_conn" in graph["_connection"], "the test reads the imports"


def private_uses(path: Path) -> list[str]:
    """Every ``x._name`` in ``path`` where x is not self or cls: a reach into another object's privates."""
    tree = ast.parse(path.read_text())
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            uses.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return uses


def test_the_drivers_touch_no_private_member_of_another_class() -> None:
    """aio.py, the threaded driver and the callback runners use only the public methods of the
    connection, its stream, its handle and the hub."""
    uses = [
        u for name in ("aio", "_connection", "_dispatch", "_callbacks", "_conn") for u in private_uses(MODULES[name])
    ]
    assert uses == []
