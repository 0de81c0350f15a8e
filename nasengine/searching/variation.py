"""Variation operators over option indices that respect what a gene is: unordered categories are swapped and
resampled as categories, ordered genes (`Choice.ordered`) are mutated by steps to neighbouring options.

SBX and polynomial mutation on rounded integers (pymoo's integer recipe) treat `["relu", "gelu", "swish"]` as
0 < 1 < 2 and move mostly to neighbours, which means nothing for a category; these operators do not.
"""

from __future__ import annotations

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.mutation import Mutation

from nasengine.search_spaces.space import Space

LONG = 8  # a range gene with more values than this moves in steps proportional to its length


class GeneLayout:
    """Per gene of the integer encoding: its number of options and whether it is ordered."""

    def __init__(self, space: Space):
        self.sizes = np.array([len(g) for g in space.genes], dtype=np.int64)
        self.ordered = np.array([g.ordered for g in space.genes], dtype=bool)
        self.ranges = np.array([g.is_range for g in space.genes], dtype=bool)

    def mutate(self, X: np.ndarray, rng: np.random.Generator, rate: float | None = None) -> np.ndarray:
        """Mutate each gene with probability `rate` (default 1/genes, at least one gene per row): categorical
        genes to a different option drawn uniformly, ordered genes one step up or down (two steps with
        probability 1/4 where a gene has more than two options), reflected at the ends; a range gene (IntRange,
        FloatRange) of more than LONG values moves by a normal draw of 15 % of its length."""
        X = np.asarray(X, dtype=np.int64).copy()
        n, n_var = X.shape
        rate = 1.0 / max(n_var, 1) if rate is None else rate
        mutable = self.sizes > 1
        if not mutable.any():
            return X
        mask = (rng.random((n, n_var)) < rate) & mutable
        for i in np.flatnonzero(~mask.any(axis=1)):  # at least one change per row
            mask[i, rng.choice(np.flatnonzero(mutable))] = True
        rows, cols = np.nonzero(mask)
        sizes = self.sizes[cols]
        ordered, ranges = self.ordered[cols], self.ranges[cols]
        # categorical: a uniformly drawn *other* option
        shift = 1 + (rng.random(len(cols)) * (sizes - 1)).astype(np.int64)
        categorical_value = (X[rows, cols] + shift) % sizes
        # ordered: +-1 (or +-2) steps, reflected at the ends
        double = (rng.random(len(cols)) < 0.25) & (sizes > 2)  # two options: a double step would go nowhere
        step = np.where(rng.random(len(cols)) < 0.5, -1, 1) * np.where(double, 2, 1)
        long = ranges & (sizes > LONG)
        if long.any():  # drawn only then, so the mutations of spaces without long genes stay as they were
            spread = np.maximum(1, np.rint(np.abs(rng.normal(0.0, 0.15 * (sizes - 1))))).astype(np.int64)
            step = np.where(long, np.sign(step) * spread, step)
        moved = X[rows, cols] + step
        moved = np.where(moved < 0, X[rows, cols] + np.abs(step), moved)
        moved = np.where(moved >= sizes, X[rows, cols] - np.abs(step), moved)
        ordered_value = np.clip(moved, 0, sizes - 1)
        X[rows, cols] = np.where(ordered, ordered_value, categorical_value)
        return X

    def crossover(self, A: np.ndarray, B: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Uniform crossover: each gene comes from either parent with probability 1/2 (valid for any gene)."""
        swap = rng.random(A.shape) < 0.5
        return np.where(swap, B, A), np.where(swap, A, B)

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return (rng.random((n, len(self.sizes))) * self.sizes).astype(np.int64)


class GeneCrossover(Crossover):
    """pymoo crossover: uniform per gene over option indices."""

    def __init__(self, layout: GeneLayout, prob: float = 0.9):
        super().__init__(2, 2, prob=prob)
        self.layout = layout

    def _do(self, problem, X, *args, random_state=None, **kwargs):  # type: ignore[no-untyped-def,override]
        a, b = self.layout.crossover(X[0].astype(np.int64), X[1].astype(np.int64), random_state)
        return np.stack([a, b]).astype(X.dtype)


class GeneMutation(Mutation):
    """pymoo mutation: categorical genes resampled, ordered genes stepped (see GeneLayout.mutate)."""

    def __init__(self, layout: GeneLayout):
        super().__init__(prob=1.0)
        self.layout = layout

    def _do(self, problem, X, *args, random_state=None, **kwargs):  # type: ignore[no-untyped-def,override]
        return self.layout.mutate(X, random_state).astype(X.dtype)
