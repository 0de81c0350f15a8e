"""The recipe benchmark's variants: epochs as multiples of the base, and the resolution rule each row was measured
with (rows that name none keep one resolution per step, so they reproduce after per-subnet became the default)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "supernet_recipes.py"


def load_script():
    spec = importlib.util.spec_from_file_location("supernet_recipes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_variants_scale_epochs_and_keep_their_resolution_rule() -> None:
    recipes = load_script()
    assert recipes.train_options(recipes.VARIANTS["uniform"], 6) == ["--resolution", "per-step", "--epochs", "6"]
    assert recipes.train_options(recipes.VARIANTS["uniform x3"], 6) == ["--epochs", "18", "--resolution", "per-step"]
    scaled = recipes.train_options(recipes.VARIANTS["per-subnet x3"], 6)
    assert scaled == ["--resolution", "per-subnet", "--epochs", "18"]
