"""The core's shape: no import circle among coldkit's modules, and no long functions."""

from __future__ import annotations

import ast
from pathlib import Path

import coldkit

ROOT = Path(coldkit.__file__).parent
#: The CLI's commands are long lists of typer options, not logic.
LONG_FUNCTIONS_ALLOWED = {"cli.py"}
MAX_FUNCTION_LINES = 60
#: The floors of the core, bottom first (docs/architecture.md): a module imports only from its own
#: floor or below. Top-level modules are named by file, subpackages by folder.
FLOORS = (
    ("coldkit", "errors", "protocols", "hookspecs", "validation"),
    ("runtime",),
    ("plugins",),
    ("config",),
    ("data", "runs"),
    ("training",),
    ("evaluation",),
    ("generation",),
    ("preview", "run", "sweep", "testing", "streaming", "export"),
    ("api", "cli", "__main__"),
)


def _module_name(path: Path) -> str:
    parts = ["coldkit", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in ROOT.rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every coldkit module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in modules}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[module] = 2
        stack.pop()
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_import_circle_among_coldkit_modules():
    modules = _modules()
    graph = {
        name: {target for target in _imports(path, modules) if target != name}
        for name, path in modules.items()
    }
    # A package's own __init__ re-exporting its submodules is not a circle.
    for name in graph:
        graph[name] = {target for target in graph[name] if not target.startswith(name + ".")}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def _floor(module: str) -> int:
    part = module.split(".")[1] if "." in module else "coldkit"
    return next(number for number, floor in enumerate(FLOORS) if part in floor)


def test_no_module_imports_from_a_floor_above_it():
    modules = _modules()
    upward = [
        f"{name} -> {target}"
        for name, path in modules.items()
        for target in _imports(path, modules)
        if _floor(target) > _floor(name)
    ]
    assert not upward, ", ".join(upward)


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_function_in_the_core_is_over_sixty_lines():
    long = []
    for path in ROOT.rglob("*.py"):
        if path.name in LONG_FUNCTIONS_ALLOWED and path.parent == ROOT:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.name} ({length} lines)")
    assert not long, ", ".join(long)
