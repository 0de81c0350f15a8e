"""nasengine: hardware-aware neural architecture search (CLI, devices, evaluation, search, run store, export).

Python entry points: `search(space, objectives={...})` searches any space with any objectives (see
nasengine.searching.api); `load_subnet(EXP)` returns an exported subnet as a plain torch module;
`evaluate_subnet(EXP)` re-computes its accuracy on the split recorded in its manifest; `load_predictor(EXP)` runs it
on raw images or strings (labels out) and `preprocess(EXP, raw)` gives the model inputs the engine would have made.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"
__all__ = ["SearchOptions", "__version__", "evaluate_subnet", "load_predictor", "load_subnet", "preprocess", "search"]


def __getattr__(name: str) -> Any:
    """Import the heavy parts on first use, so `import nasengine` and the CLI start fast."""
    if name in ("load_subnet", "evaluate_subnet"):
        from nasengine.exporting import subnet

        return getattr(subnet, name)
    if name == "load_predictor":
        from nasengine.exporting.predictor import load_predictor

        return load_predictor
    if name == "preprocess":
        from nasengine.exporting.preprocess import preprocess

        return preprocess
    if name in ("search", "SearchOptions"):
        from nasengine.searching import api

        return getattr(api, name)
    raise AttributeError(f"module 'nasengine' has no attribute {name!r}")
