"""The package's rooms stay rooms: the import rule of docs/design/architecture.md, checked.

Every module counts, the top level, every package and ``testing`` alike, and so does every
import in it: at module level, inside functions and under ``if TYPE_CHECKING``. A deferred or
type-only import is still a dependency of the design, and a circle through one is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "evalstream"
VOCABULARY = {"_types", "_messages", "_errors", "_naming", "_options", "_summary"}
LAYERS = (
    "vocabulary",
    "stats",
    "durability",
    "details",
    "sinks",
    "actors",
    "shards",
    "run",
    "lighteval",
    "runs",
    "interop",
    "view",
    "testing",
    "cli",
    "facade",
)
"""Lowest first. What each layer may import is below (itself included)."""
ALLOWED: dict[str, set[str]] = {
    "vocabulary": {"vocabulary"},
    "stats": {"vocabulary", "stats"},
    "durability": {"vocabulary", "durability"},
    "details": {"vocabulary", "stats", "durability", "details"},
    "sinks": {"vocabulary", "stats", "durability", "details", "sinks"},
    "actors": {"vocabulary", "stats", "durability", "details", "actors"},
    "shards": {"vocabulary", "durability", "shards"},
    # everything below it, and runs/ (a live run reads its saved baseline: run/baseline.py)
    "run": {*LAYERS[: LAYERS.index("run") + 1], "runs"},
    "lighteval": {"vocabulary", "stats", "durability", "details", "run", "lighteval"},
    "runs": {"vocabulary", "stats", "durability", "sinks", "runs"},
    "interop": {"vocabulary", "stats", "durability", "sinks", "run", "runs", "interop"},
    "view": {"vocabulary", "stats", "durability", "sinks", "run", "runs", "view"},
    "testing": {"vocabulary", "testing"},
    "cli": set(LAYERS) - {"facade", "testing"},
    "facade": set(LAYERS) - {"testing"},
}
PACKAGES = tuple(layer for layer in LAYERS if layer not in ("vocabulary", "facade"))
MAX_TOP_LEVEL = 7


def _layer(module: str) -> str:
    head = module.split(".")[0]
    if module == "__init__":
        return "facade"
    if head in VOCABULARY:
        return "vocabulary"
    assert head in PACKAGES, f"{module}: a top-level module outside the vocabulary"
    return head


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts)


NAMES = {_name(p) for p in _modules()}


def _target(dotted: str) -> str:
    """The module an import names: ``evalstream.x.y`` -> ``x.y``, the package -> its __init__."""
    rel = dotted.removeprefix("evalstream").lstrip(".")
    if not rel:
        return "__init__"
    return rel if rel in NAMES else f"{rel}.__init__"


def _imports(path: Path) -> set[str]:
    """Every evalstream module ``path`` imports, wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "evalstream" or node.module.startswith("evalstream."):
                base = _target(node.module)
                for alias in node.names:  # ``from evalstream.x import y`` may name module x.y
                    sub = f"{base.removesuffix('.__init__')}.{alias.name}".lstrip(".")
                    found.add(sub if sub in NAMES else base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "evalstream" or alias.name.startswith("evalstream."):
                    found.add(_target(alias.name))
        assert not (isinstance(node, ast.ImportFrom) and node.level), "absolute imports only"
    found.discard(_name(path))
    return found


GRAPH = {_name(p): _imports(p) for p in _modules()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_module_imports_only_its_allowed_layers(module: str) -> None:
    """A module imports only from its own layer and the layers its row allows."""
    layer = _layer(module)
    bad = sorted(m for m in GRAPH[module] if _layer(m) not in ALLOWED[layer])
    assert not bad, f"{module} ({layer}) imports {bad}; see docs/design/architecture.md"


@pytest.mark.parametrize("path", _modules(), ids=_name)
def test_module_is_under_400_lines(path: Path) -> None:
    """No module passes 400 lines: split it by responsibility."""
    assert len(path.read_text().splitlines()) <= 400, f"{_name(path)}: split it by responsibility"


def test_top_level_holds_the_facade_and_the_vocabulary() -> None:
    """The top level is the public facade plus at most seven vocabulary modules."""
    top = sorted(p.stem for p in SRC.glob("*.py") if p.name != "__init__.py")
    assert set(top) <= VOCABULARY, f"top-level modules outside the vocabulary: {top}"
    assert len(top) <= MAX_TOP_LEVEL


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "testing"])
def test_subpackage_init_is_a_docstring_only(package: str) -> None:
    """A package's __init__ says what lives there and imports nothing (the worker starts
    cheaply)."""
    tree = ast.parse((SRC / package / "__init__.py").read_text())
    assert ast.get_docstring(tree), (
        f"{package}/__init__.py: say what lives there and who imports it"
    )
    assert len(tree.body) == 1, f"{package}/__init__.py must not import: the worker starts cheaply"


def test_every_package_has_a_layer() -> None:
    """A new package must be placed in the import rule before it can hold code."""
    packages = {p.parent.name for p in SRC.glob("*/__init__.py")}
    assert packages == set(PACKAGES)


def test_no_import_cycles() -> None:
    """No module reaches itself through its imports, deferred and type-only ones included."""
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node, [node])


def test_the_layers_are_acyclic() -> None:
    """The import rule itself is a ladder: no layer allows one that allows it back."""
    for layer, allowed in ALLOWED.items():
        for other in allowed - {layer}:
            assert layer not in ALLOWED[other], f"{layer} <-> {other}"
