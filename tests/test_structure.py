"""The package's shape: dalib's modules import each other without a cycle (lazy imports inside
functions count too), and the layers point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import dalib

PACKAGE = Path(dalib.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The dalib modules that ``path`` imports anywhere (not under ``if TYPE_CHECKING``)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in known:
                found.add(node.module)
            found.update(
                f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known
            )
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(_module_name(path))
    found.discard("dalib")  # the package itself: its __init__ imports nothing heavy
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts]
    known = {_module_name(p) for p in files}
    return {_module_name(p): imports_of(p, known) for p in files}


def test_no_import_cycle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (cycle := walk(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := walk(module)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))
    assert len(graph) > 30 and "dalib.model" in graph["dalib.train"] | graph["dalib.loop"]


def test_checkpoint_and_hub_know_nothing_of_models():
    graph = import_graph()
    assert graph["dalib.checkpoint"] <= {"dalib.io"}
    assert graph["dalib.hub"] <= {"dalib.config", "dalib.download"}
    assert {"dalib.checkpoint", "dalib.hub", "dalib.official"} <= graph["dalib.model"]


def _layers() -> dict[str, int]:
    """Module -> its group's position in the map of ``dalib/__init__.py``'s docstring."""
    layer, position = {}, -1
    for line in dalib.__doc__.splitlines():
        if line and not line.startswith(" "):
            position += line[0].isupper()  # a heading starts a group
            continue
        for name in line.split("``")[1::2]:
            if name.isidentifier() and name not in layer and position >= 0:
                layer[name] = position
    return layer


def test_modules_import_only_from_groups_above_them_in_the_package_map():
    layer = _layers()
    graph = import_graph()
    group = {m: layer.get(m.split(".")[1]) for m in graph if m != "dalib"}
    missing = sorted(m for m, g in group.items() if g is None)
    assert not missing, f"modules missing from dalib/__init__.py's map: {missing}"
    wrong = [
        f"{m} -> {t}"
        for m, targets in graph.items()
        if m != "dalib"
        for t in targets
        if group[t] > group[m]
    ]
    assert not wrong, "imports against the map's order: " + ", ".join(sorted(wrong))
