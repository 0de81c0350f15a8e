"""Uniform random search: the baseline every other strategy must beat."""

from __future__ import annotations

import numpy as np

from nasengine.search.problem import SearchProblem
from nasengine.search.strategies.base import Strategy, register_strategy


@register_strategy("random")
class RandomSearch(Strategy):
    """The min and max archs, then uniform samples, in batches of 16."""

    def run(self, problem: SearchProblem, seed: int) -> None:
        rng = np.random.default_rng(seed)
        problem.evaluate_archs(problem.initial_archs(2, rng))
        stalled = 0
        while not problem.done and stalled < 1000:
            before = problem.distinct
            problem.evaluate_archs([problem.space.sample(rng=rng) for _ in range(16)])
            stalled = stalled + 1 if problem.distinct == before else 0
