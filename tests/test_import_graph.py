"""The import graph of the installed packages: dependencies point one way between the components, and no module
reaches itself again through any import that runs (module level or inside a function; `if TYPE_CHECKING:` blocks
are never run and do not count)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

COMPONENTS = ("nasengine.search_spaces", "nasengine.kernels", "nasengine.supernets", "nasengine.predictors")
ALLOWED = {  # component -> the components it may import (the engine, everything else in nasengine, may import all)
    "nasengine.search_spaces": set(),
    "nasengine.kernels": {"nasengine.search_spaces"},
    "nasengine.supernets": {"nasengine.search_spaces", "nasengine.kernels"},
    "nasengine.predictors": {"nasengine.search_spaces"},
}


def _modules() -> dict[str, Path]:
    """Every module of the installed packages, by dotted name, found where the import system finds them."""
    found: dict[str, Path] = {}
    for package in ("nasengine", *COMPONENTS):
        root = Path(importlib.import_module(package).__path__[0])
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (getattr(test, "id", None) == "TYPE_CHECKING" or
                                         getattr(test, "attr", None) == "TYPE_CHECKING")


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ours that `module` imports anywhere outside `if TYPE_CHECKING:` blocks."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {t for t in targets if t in known}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) - {name} for name, path in modules.items()}


def _component(module: str) -> str:
    return next((c for c in COMPONENTS if module == c or module.startswith(c + ".")), "nasengine")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_graph_covers_every_package() -> None:
    graph = _graph()
    for package in ("nasengine", *COMPONENTS):
        assert package in graph
    assert "nasengine.measurement.devices.predicted" in graph and "nasengine.kernels.static" in graph
    assert "nasengine.kernels.static" in graph["nasengine.kernels.layers"]  # edges are found


def test_components_import_only_downward() -> None:
    wrong = [f"{module} -> {target}" for module, targets in _graph().items() for target in sorted(targets)
             if _component(module) != "nasengine" and _component(target) != _component(module)
             and _component(target) not in ALLOWED[_component(module)]]
    assert not wrong, "imports against the direction search_spaces <- kernels <- supernets; predictors <- " \
                      "search_spaces; nasengine <- all:\n" + "\n".join(wrong)


def test_no_module_imports_itself_again_at_run_time() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("component", COMPONENTS)
def test_a_bare_component_name_is_never_ours(component: str) -> None:
    """From a checkout (its root on sys.path) `import kernels` must not load nasengine's kernels/ under that name:
    the name belongs to another project (Hugging Face's kernels, a PyPI placeholder), or to nobody."""
    import subprocess
    import sys

    checkout = Path(__file__).resolve().parents[1]
    bare = component.rpartition(".")[2]
    probe = (f"import sys; sys.path.insert(0, {str(checkout)!r})\n"
             f"try:\n    import {bare} as m\nexcept ModuleNotFoundError as exc:\n    print('missing:', exc)\n"
             f"else:\n    print('found:', m.__file__)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/").stdout.strip()
    assert out.startswith(("missing:", "found:")), out
    if out.startswith("found:"):
        assert Path(out.removeprefix("found: ")).resolve() != checkout / bare / "__init__.py", out
    else:
        assert f"nasengine.{bare}" in out  # the error names where ours is
