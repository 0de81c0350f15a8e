"""Search strategies by name: a strategy proposes archs to a SearchProblem until its budget is spent."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

from nasengine.errors import UserError
from nasengine.search.problem import SearchProblem


class Strategy(ABC):
    """Drives `problem` until `problem.done`; must be deterministic for a given seed and evaluation results,
    so that a resumed run replays cached evaluations and continues where it stopped."""

    name: str = ""

    @abstractmethod
    def run(self, problem: SearchProblem, seed: int) -> None: ...


_STRATEGIES: dict[str, Callable[[], Strategy]] = {}


def register_strategy(name: str) -> Callable[[Callable[[], Strategy]], Callable[[], Strategy]]:
    def wrap(factory: Callable[[], Strategy]) -> Callable[[], Strategy]:
        _STRATEGIES[name] = factory
        return factory

    return wrap


def get_strategy(name: str) -> Strategy:
    try:
        strategy = _STRATEGIES[name]()
    except KeyError:
        raise UserError(f"unknown search strategy {name!r}; available: {', '.join(sorted(_STRATEGIES))}") from None
    strategy.name = name
    return strategy


def available_strategies() -> list[str]:
    return sorted(_STRATEGIES)
