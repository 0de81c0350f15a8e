"""Search strategies, one file each, registered by name."""

from nasengine.search.strategies.base import Strategy, available_strategies, get_strategy, register_strategy

from nasengine.search.strategies import pymoo_algorithms as _pymoo  # noqa: F401
from nasengine.search.strategies import random_search as _random  # noqa: F401

__all__ = ["Strategy", "available_strategies", "get_strategy", "register_strategy"]
