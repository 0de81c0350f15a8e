"""Search strategies, one file each, registered by name."""

from nasengine.searching.strategies.base import Strategy, available_strategies, get_strategy, register_strategy

from nasengine.searching.strategies import linas as _linas  # noqa: F401
from nasengine.searching.strategies import members as _members  # noqa: F401
from nasengine.searching.strategies import optuna_samplers as _optuna  # noqa: F401
from nasengine.searching.strategies import pymoo_algorithms as _pymoo  # noqa: F401
from nasengine.searching.strategies import random_search as _random  # noqa: F401

__all__ = ["Strategy", "available_strategies", "get_strategy", "register_strategy"]
