"""Uniform random search: the baseline every other strategy must beat."""

from __future__ import annotations

import numpy as np

from nasengine.searching.problem import SearchProblem
from nasengine.searching.strategies.base import Strategy, register_strategy


@register_strategy("random")
class RandomSearch(Strategy):
    """The min and max archs, then distinct uniform samples, in rounds of `batch`."""

    batch = 16

    def run(self, problem: SearchProblem, seed: int) -> None:
        rng = np.random.default_rng(seed)
        problem.evaluate_archs(problem.initial_archs(2, rng))
        while not problem.done:
            archs = problem.unseen_samples(min(self.batch, problem.remaining), rng)
            if not archs:
                return  # the space is exhausted
            problem.evaluate_archs(archs)
