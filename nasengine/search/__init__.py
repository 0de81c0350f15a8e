"""Multi-objective search over a trained supernet: objectives, strategies, the problem and the runner."""

from nasengine.records import Evaluation
from nasengine.search.objectives import OBJECTIVES, bind_objectives, register_objective
from nasengine.search.runner import SearchRequest, search
from nasengine.search.strategies import available_strategies, get_strategy, register_strategy

__all__ = ["OBJECTIVES", "Evaluation", "SearchRequest", "available_strategies", "bind_objectives", "get_strategy",
           "register_objective", "register_strategy", "search"]
