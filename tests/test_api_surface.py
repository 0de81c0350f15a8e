"""The public API stays small and explicit: every package lists what users import (`__all__`, each name real), and no
public function or method takes more than eight parameters (more settings travel in an options dataclass)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGES = ("nasengine", "nasengine.kernels", "nasengine.supernets", "nasengine.predictors", "nasengine.search_spaces")
MAX_PARAMETERS = 8


def _files() -> list[tuple[str, Path]]:
    """(dotted package of the file, path) of every module of the installed packages."""
    found = []
    for package in PACKAGES:
        root = Path(importlib.import_module(package).__path__[0])
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found.append((".".join([package, *parts]), path))
    return found


def _packages() -> list[str]:
    return [name.removesuffix(".__init__") for name, path in _files() if path.name == "__init__.py"]


@pytest.mark.parametrize("package", _packages())
def test_every_package_lists_its_public_names(package: str) -> None:
    module = importlib.import_module(package)
    names = getattr(module, "__all__", None)
    assert isinstance(names, list) and names, f"{package} has no __all__"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{package}.__all__ names what it does not have: {missing}"


def test_public_signatures_take_at_most_eight_parameters() -> None:
    wide = []
    for name, path in _files():
        if any(part.startswith("_") and part != "__init__" for part in name.split(".")):
            continue  # a private module
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name.startswith("_") \
                    and node.name != "__init__":
                continue
            args = node.args
            params = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
            count = len(params) - (params[:1] in (["self"], ["cls"])) + (args.vararg is not None) \
                + (args.kwarg is not None)
            if count > MAX_PARAMETERS:
                wide.append(f"{path}:{node.lineno} {node.name} ({count} parameters)")
    assert not wide, "public signatures over eight parameters:\n" + "\n".join(wide)
