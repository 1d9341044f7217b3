"""The import graph of ``src/beamlink`` tells the architecture: no import cycles (imports under
``TYPE_CHECKING`` included) and no layer importing one above it (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "beamlink"

# Lowest first; a module may import its own rank or lower. A name matches its longest prefix.
LAYERS: list[tuple[str, ...]] = [
    ("beamlink._version", "beamlink._lazy", "beamlink.logs", "beamlink.errors", "beamlink.settings", "beamlink.listener"),
    ("beamlink.etf",),
    ("beamlink.epmd", "beamlink.distribution"),
    ("beamlink.connection",),
    ("beamlink.node.errors", "beamlink.node.atoms"),
    ("beamlink.node.runtime",),
    ("beamlink.node.monitors", "beamlink.node.genserver", "beamlink.node.rpc"),
    ("beamlink.node.kernel",),
    ("beamlink.node.node",),
    ("beamlink.node",),
    ("beamlink.cluster",),
    ("beamlink",),
    ("beamlink.cli", "beamlink.__main__"),
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()
# Compiled extensions (the etf accelerator) import nothing from beamlink.
EXTENSIONS = {
    ".".join([*p.relative_to(SRC).parent.parts, p.name.split(".")[0]])
    for pattern in ("*.c", "*.so", "*.pyd")
    for p in PACKAGE.rglob(pattern)
}


def _nodes(tree: ast.AST, *, lazy: bool) -> list[ast.AST]:
    """Every node of ``tree``; with ``lazy=False``, not those inside functions (imports that
    run only when called)."""
    found = []
    todo = [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if lazy or not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                todo.append(child)
    return found


def _imports(name: str, path: Path, *, lazy: bool) -> set[str]:
    """Modules of beamlink that ``name`` imports, as they resolve (a ``from P import n``
    names module ``P.n`` when that is a module, else the package ``P``). ``lazy`` includes
    imports inside functions; imports under ``TYPE_CHECKING`` always count."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _nodes(tree, lazy=lazy):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{alias.name}"
                if f"{base}.{alias.name}" in MODULES.keys() | EXTENSIONS
                else base
                for alias in node.names
            ]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


# Every import, for the layer rules; imports that run when the module loads, for cycles (a
# function-local import is how a module defers a same-layer dependency on purpose).
GRAPH = {name: _imports(name, path, lazy=True) for name, path in MODULES.items()}
LOAD_GRAPH = {name: _imports(name, path, lazy=False) for name, path in MODULES.items()}


def rank(module: str) -> int:
    best, best_len = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best >= 0, f"{module} is in no layer: add it to LAYERS (and docs/architecture.md)"
    return best


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        rank(module)


def test_no_layer_imports_one_above_it() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in sorted(targets)
        if rank(target) > rank(module)
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(LOAD_GRAPH[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(LOAD_GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_kernel_services_never_see_the_node() -> None:
    """A service reaches its node only through the ServiceHost protocol."""
    for module, targets in GRAPH.items():
        if module.startswith("beamlink.node.kernel"):
            assert "beamlink.node.node" not in targets, module
            assert "beamlink.node" not in targets, module


def test_the_checker_sees_cycles_and_upward_imports() -> None:
    """The graph is real: known edges are found (so an empty result means something)."""
    assert "beamlink.node.runtime.runtime" in GRAPH["beamlink.node.node"] or (
        "beamlink.node.runtime" in GRAPH["beamlink.node.node"]
    )
    assert "beamlink.node.kernel.host" in GRAPH["beamlink.node.kernel.rex"]
    assert rank("beamlink.cli.main") > rank("beamlink.node.node") > rank("beamlink.node.kernel.rex")
