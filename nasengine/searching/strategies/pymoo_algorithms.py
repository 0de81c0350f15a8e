"""pymoo's evolutionary algorithms (NSGA-II, AGE-MOEA, NSGA-III) over option indices, ask-and-tell, with
variation operators that treat categorical genes as categories (nasengine.searching.variation)."""

from __future__ import annotations

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.algorithms.moo.nsga3 import NSGA3
from pymoo.core.algorithm import Algorithm
from pymoo.core.problem import Problem
from pymoo.core.termination import NoTermination
from pymoo.util.ref_dirs import get_reference_directions

from nasengine.errors import UserError
from nasengine.searching.problem import SearchProblem
from nasengine.searching.strategies.base import Strategy, register_strategy
from nasengine.searching.variation import GeneCrossover, GeneLayout, GeneMutation


def population_size(budget: int) -> int:
    """About six generations within the budget, between 8 and 64 individuals."""
    return int(np.clip(budget // 6, 8, 64))


class PymooStrategy(Strategy):
    """Runs a pymoo algorithm generation by generation; the first population holds the min and max archs.

    Uniform crossover and gene-aware mutation over option indices; duplicates within a generation are
    eliminated, re-proposals of known archs cost nothing.
    """

    max_stalled_generations = 25

    def make_algorithm(self, pop_size: int, n_obj: int, initial: np.ndarray) -> Algorithm:
        raise NotImplementedError

    def operators(self) -> dict[str, object]:
        return {"crossover": GeneCrossover(self.layout), "mutation": GeneMutation(self.layout),
                "eliminate_duplicates": True}

    def run(self, problem: SearchProblem, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.layout = GeneLayout(problem.space)
        pop_size = population_size(problem.plan)
        initial = np.stack([problem.encode(a) for a in problem.initial_archs(pop_size, rng)])
        xl, xu = problem.bounds()
        pm_problem = Problem(n_var=len(xl), n_obj=problem.n_obj, n_ieq_constr=problem.n_constr, xl=xl, xu=xu,
                             vtype=int)
        algorithm = self.make_algorithm(len(initial), problem.n_obj, initial)
        algorithm.setup(pm_problem, termination=NoTermination(), seed=seed, verbose=False)
        stalled = 0
        while not problem.done and stalled < self.max_stalled_generations:
            before = problem.distinct
            population = algorithm.ask()
            if population is None or len(population) == 0:
                return  # pymoo found no new offspring: a small space is exhausted
            F, G = problem.evaluate_vectors(population.get("X"))
            population.set("F", F)
            if problem.n_constr:
                population.set("G", G)
            algorithm.tell(infills=population)
            stalled = stalled + 1 if problem.distinct == before else 0


@register_strategy("nsga2")
class NSGA2Strategy(PymooStrategy):
    """NSGA-II: non-dominated sorting with crowding distance."""

    def make_algorithm(self, pop_size: int, n_obj: int, initial: np.ndarray) -> Algorithm:
        return NSGA2(pop_size=pop_size, sampling=initial, **self.operators())


@register_strategy("agemoea")
class AGEMOEAStrategy(PymooStrategy):
    """AGE-MOEA: survival by an estimate of the front's geometry (better spread on non-convex fronts)."""

    def make_algorithm(self, pop_size: int, n_obj: int, initial: np.ndarray) -> Algorithm:
        try:
            from pymoo.algorithms.moo.age import AGEMOEA
        except Exception:  # pymoo raises a bare Exception when numba is missing
            raise UserError("the agemoea strategy needs numba: pip install numba") from None
        return AGEMOEA(pop_size=pop_size, sampling=initial, **self.operators())


@register_strategy("nsga3")
class NSGA3Strategy(PymooStrategy):
    """NSGA-III: reference directions keep many-objective fronts (3+ objectives) well spread."""

    def make_algorithm(self, pop_size: int, n_obj: int, initial: np.ndarray) -> Algorithm:
        partitions = max(1, {2: pop_size - 1, 3: 6, 4: 4}.get(n_obj, 3))
        ref_dirs = get_reference_directions("das-dennis", n_obj, n_partitions=partitions)
        return NSGA3(ref_dirs=ref_dirs, pop_size=max(pop_size, len(ref_dirs)), sampling=initial, **self.operators())
