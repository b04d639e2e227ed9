"""The package's rooms stay rooms: the import rule of docs/design/architecture.md, checked."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "evalstream"
VOCABULARY = {"_types", "_messages", "_errors", "_naming", "_summary"}
ALLOWED = {
    "vocabulary": {"vocabulary"},
    "stats": {"vocabulary", "stats"},
    "durability": {"vocabulary", "durability"},
    "sinks": {"vocabulary", "stats", "durability", "sinks"},
    "actors": {"vocabulary", "stats", "durability", "sinks", "actors"},
    "runs": {"vocabulary", "stats", "durability", "sinks", "runs"},
}
PACKAGES = ("actors", "sinks", "durability", "stats", "runs")


def _layer(module: str) -> str:
    head = module.split(".")[0]
    if head in PACKAGES or head == "testing":
        return head
    return "vocabulary" if head in VOCABULARY else "top"


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "testing" not in p.relative_to(SRC).parts)


def _imports(path: Path, *, top_level_only: bool) -> list[str]:
    """The evalstream modules ``path`` imports (module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: list[str] = []
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only:
            nodes.extend(node.body)  # TYPE_CHECKING blocks count: they are the module's design
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("evalstream.")
        ):
            found.append(node.module.removeprefix("evalstream."))
        elif isinstance(node, ast.Import):
            found += [
                a.name.removeprefix("evalstream.")
                for a in node.names
                if a.name.startswith("evalstream.")
            ]
    return found


def _name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts)


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_module_imports_only_its_allowed_layers(path: Path) -> None:
    layer = _layer(_name(path))
    if layer == "top" or _name(path) == "__init__":
        return
    bad = [m for m in _imports(path, top_level_only=True) if _layer(m) not in ALLOWED[layer]]
    assert not bad, f"{_name(path)} ({layer}) imports {bad}; see docs/design/architecture.md"


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_module_is_under_400_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 400, f"{_name(path)}: split it by responsibility"


@pytest.mark.parametrize("package", [*PACKAGES, "cli"])
def test_subpackage_init_is_a_docstring_only(package: str) -> None:
    tree = ast.parse((SRC / package / "__init__.py").read_text())
    assert ast.get_docstring(tree), (
        f"{package}/__init__.py: say what lives there and who imports it"
    )
    assert len(tree.body) == 1, f"{package}/__init__.py must not import: the worker starts cheaply"


def test_no_import_cycles_at_module_level() -> None:
    names = {_name(p) for p in _modules()}
    runtime = {_name(p): set(_runtime_imports(p)) & names for p in _modules()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in runtime.get(node, ()):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in runtime:
        if node not in state:
            visit(node, [node])


def _runtime_imports(path: Path) -> list[str]:
    """Module-level imports that run at import time (not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    found: list[str] = []
    for node in tree.body:
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("evalstream.")
        ):
            found.append(node.module.removeprefix("evalstream."))
    return found
