"""Search-free deployment of a sorted supernet: evaluate its nested members, nothing else."""

from __future__ import annotations

from nasengine.searching.problem import SearchProblem
from nasengine.searching.strategies.base import Strategy, register_strategy
from nasengine.search_spaces.samplers import nested_archs


@register_strategy("members")
class NestedMembers(Strategy):
    """The nested members of the space (`nested_archs`, as `--recipe sorted` trains them), smallest first; the
    Pareto set and `export --latency-budget` then pick the most accurate member that fits the device."""

    def run(self, problem: SearchProblem, seed: int) -> None:
        members = nested_archs(problem.space)
        problem.evaluate_archs(members[: problem.remaining])
