"""Multi-objective search of any space: metrics and objectives, strategies, the trial store, the Python API
(`nasengine.search`) and the CLI runner over a trained supernet."""

from nasengine.searching.api import SearchOptions, SearchResult, pareto_rows, search
from nasengine.searching.objectives import METRICS, Constraint, Metric, Objective, Row, register_metric
from nasengine.searching.strategies import available_strategies, get_strategy, register_strategy
from nasengine.searching.supernet_metrics import register_supernet_metric

__all__ = ["METRICS", "Constraint", "Metric", "Objective", "Row", "SearchOptions", "SearchResult",
           "available_strategies", "get_strategy", "pareto_rows", "register_metric", "register_strategy",
           "register_supernet_metric", "search"]
