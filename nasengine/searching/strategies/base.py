"""Search strategies by name: a strategy proposes archs to a SearchProblem until its budget is spent."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

from nasengine.search_spaces.registry import Registry
from nasengine.searching.problem import SearchProblem


class Strategy(ABC):
    """Drives `problem` until `problem.done`; must be deterministic for a given seed and evaluation results,
    so that a resumed run replays cached evaluations and continues where it stopped."""

    name: str = ""

    @abstractmethod
    def run(self, problem: SearchProblem, seed: int) -> None: ...


_STRATEGIES: Registry[Callable[[], Strategy]] = Registry("search strategy")


def register_strategy(name: str) -> Callable[[Callable[[], Strategy]], Callable[[], Strategy]]:
    """Decorator: `factory() -> Strategy` becomes `--strategy name`."""
    return _STRATEGIES.register(name)


def get_strategy(name: str) -> Strategy:
    strategy = _STRATEGIES.get(name)()
    strategy.name = name
    return strategy


def available_strategies() -> list[str]:
    return _STRATEGIES.names()
