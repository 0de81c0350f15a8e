"""Training recipes as data: a recipe is a list of phases, each a sub-space to sample and a share of the epochs.

Recipes never touch the model or the data; the loop runs any recipe on any supernet.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from nasengine.search_spaces.registry import Registry
from nasengine.search_spaces.samplers import nested_archs
from nasengine.search_spaces.space import Space


@dataclass(frozen=True)
class Phase:
    """Train `epochs` epochs sampling subnets from `space`; `tags` are the elastic dimensions switched on."""

    name: str
    epochs: int
    space: Space
    tags: frozenset[str]
    members: tuple[dict[str, Any], ...] | None = None  # sorted training: only these nested subnets are trained


class Recipe(ABC):
    name: str = ""

    @abstractmethod
    def phases(self, space: Space, epochs: int) -> list[Phase]:
        """Split `epochs` into phases over (sub-)spaces of `space`."""


class Sandwich(Recipe):
    """Every step trains the largest, the smallest and N random subnets; all but the largest distil from it."""

    name = "sandwich"

    def phases(self, space: Space, epochs: int) -> list[Phase]:
        tags = frozenset(g.tag for g in space.genes if g.tag and len(g) > 1)
        return [Phase("sandwich", epochs, space, tags)]


class ProgressiveShrinking(Recipe):
    """Once-for-all's schedule: the full network first, then elastic kernel, depth and expand ratio in turn.

    Elastic resolution (if any) is on from the start, as in OFA. A dimension not yet elastic is held
    at its largest choice; each later phase adds one dimension to the sampled sub-space.
    """

    name = "progressive"
    order: tuple[str, ...] = ("kernel", "depth", "expand", "width")

    def phases(self, space: Space, epochs: int) -> list[Phase]:
        present = [t for t in self.order if space.genes_tagged(t)]
        always = {g.tag for g in space.genes if g.tag and g.tag not in self.order and len(g) > 1}
        n_phases = len(present) + 1
        if epochs < n_phases:
            raise ValueError(f"progressive shrinking needs at least {n_phases} epochs, got {epochs}")
        shares = [epochs // n_phases + (1 if i < epochs % n_phases else 0) for i in range(n_phases)]
        phases = []
        for i, share in enumerate(shares):
            elastic = set(present[:i])
            frozen = {g.name: [g.options[-1]] for g in space.genes if g.tag in present and g.tag not in elastic}
            sub = space.restrict(by_name=frozen)
            name = "full" if i == 0 else f"+{present[i - 1]}"
            phases.append(Phase(name, share, sub, frozenset(elastic | always)))
        return phases


class Sorted(Recipe):
    """SortedNet / MatFormer: a few nested members (each gene at the same fraction of its options, see
    `nested_archs`) trained together, so that deployment under a budget is search-free: the largest member that
    fits. Every step trains the largest, the smallest and N other members; all but the largest distil from it."""

    name = "sorted"

    def phases(self, space: Space, epochs: int) -> list[Phase]:
        tags = frozenset(g.tag for g in space.genes if g.tag and len(g) > 1)
        return [Phase("sorted", epochs, space, tags, tuple(nested_archs(space)))]


class SingleArch(Recipe):
    """Train one fixed subnet alone (labels only): the from-scratch baseline that weight sharing is judged by."""

    name = "single"

    def __init__(self, arch: Mapping[str, Any] | None = None):
        self.arch = arch

    def phases(self, space: Space, epochs: int) -> list[Phase]:
        arch = space.validate(self.arch if self.arch is not None else space.max())
        sub = space.restrict(by_name={k: [v] for k, v in arch.items() if v is not None})
        return [Phase("single", epochs, sub, frozenset())]


RECIPES: Registry[Callable[[], Recipe]] = Registry("training recipe")
RECIPES.add(Sandwich.name, Sandwich)
RECIPES.add(ProgressiveShrinking.name, ProgressiveShrinking)
RECIPES.add(Sorted.name, Sorted)


def get_recipe(name: str) -> Recipe:
    return RECIPES.get(name)()
