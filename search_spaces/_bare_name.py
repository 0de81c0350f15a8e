"""nasengine's component folders kernels/, supernets/, predictors/ and search_spaces/ sit at a checkout's top level and
install as `nasengine.kernels`, ... (this module lives in the lowest component, so every component can use it).
When the checkout's root is on sys.path (pytest and `python -m` from the checkout put it
there), `import kernels` would find our folder instead of the package that owns that name (Hugging Face's `kernels`,
which transformers imports). A component imported under its bare name hands the name to that package, or fails
with an error that names ours."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path


def _resolved(entry: str) -> Path | None:
    try:
        return Path(entry or ".").resolve()
    except OSError:
        return None


def defer_bare_name(name: str) -> None:
    """Called first thing in a component's __init__: nothing happens under its installed name `nasengine.<name>`;
    under the bare `name` the module becomes the installed package of that name, or a ModuleNotFoundError."""
    if name.startswith("nasengine."):
        return
    ours = sys.modules.pop(name)
    checkout = Path(str(ours.__file__)).resolve().parents[1]
    spec = importlib.machinery.PathFinder.find_spec(name, [p for p in sys.path if _resolved(p) != checkout])
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}: nasengine's {name} is imported as 'nasengine.{name}' "
                                  f"(from nasengine.{name} import ...)", name=name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
