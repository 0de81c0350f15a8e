"""The search problem seen by every strategy: decode vectors, evaluate (cached), return objectives and constraints."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from nasengine.records import Evaluation
from nasengine.search.objectives import BoundObjective
from search_spaces.encoding import IntegerEncoding
from search_spaces.space import Arch, Space

PENALTY = 1e12  # objective value of candidates left unevaluated because the budget ran out


class SearchProblem:
    """Minimise `objectives` over `space` subject to latency <= budget, within `budget` distinct subnets.

    `evaluate_arch(arch) -> (Evaluation, was_new)` does the real work and its caching; this class counts
    distinct archs (cached ones included, so a resumed run replays to the same point and a finished run
    does nothing more), applies the budget and shapes the numbers for strategies.
    """

    def __init__(self, space: Space, evaluate_arch: Callable[[Arch], tuple[Evaluation, bool]],
                 objectives: Sequence[BoundObjective], budget: int, latency_budget_ms: float | None = None,
                 constrained_devices: Sequence[str] = (), on_new: Callable[[Evaluation], None] | None = None):
        self.space, self.objectives, self.budget = space, list(objectives), budget
        self._evaluate_arch, self._on_new = evaluate_arch, on_new
        self.latency_budget_ms = latency_budget_ms
        self.constrained_devices = list(constrained_devices) if latency_budget_ms is not None else []
        self.new_evaluations = 0
        self.calls = 0
        self.seen: set[str] = set()
        self.encoding = IntegerEncoding()

    @property
    def n_obj(self) -> int:
        return len(self.objectives)

    @property
    def n_constr(self) -> int:
        return len(self.constrained_devices)

    @property
    def distinct(self) -> int:
        """Distinct archs evaluated or recalled from the store so far."""
        return len(self.seen)

    @property
    def done(self) -> bool:
        return len(self.seen) >= self.budget

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.encoding.bounds(self.space)

    def encode(self, arch: Arch) -> np.ndarray:
        return self.encoding.encode(self.space, arch)

    def evaluate_archs(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """Objectives F (n, n_obj) and constraints G (n, n_constr, feasible when <= 0) of each arch."""
        F = np.full((len(archs), self.n_obj), PENALTY)
        G = np.full((len(archs), self.n_constr), PENALTY)
        for i, arch in enumerate(archs):
            if self.done:
                break
            evaluation, new = self._evaluate_arch(arch)
            self.calls += 1
            self.seen.add(evaluation.key)
            if new:
                self.new_evaluations += 1
                if self._on_new is not None:
                    self._on_new(evaluation)
            F[i] = [objective(evaluation) for objective in self.objectives]
            if self.n_constr:
                G[i] = [evaluation.latency[d].median_ms - self.latency_budget_ms for d in self.constrained_devices]
        return F, G

    def evaluate_vectors(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.evaluate_archs([self.space.decode(x) for x in np.asarray(X)])

    def initial_archs(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """The smallest and largest subnets first (they anchor the front), then uniform samples."""
        archs: list[Arch] = [self.space.min(), self.space.max()]
        seen = {self.space.key(a) for a in archs}
        tries = 0
        while len(archs) < n and tries < 100 * n:
            arch = self.space.sample(rng=rng)
            tries += 1
            if self.space.key(arch) not in seen:
                seen.add(self.space.key(arch))
                archs.append(arch)
        return archs[:n]

    def summary(self) -> dict[str, Any]:
        return {"distinct": len(self.seen), "new_evaluations": self.new_evaluations, "calls": self.calls,
                "budget": self.budget}
